"""How many characters traditional-to-simplified conversion changes in the dataset's sentences, per language:
plain OpenCC t2s on every sentence (the named baseline, what `normalize` did before) against the
normaliser's rule (t2s only on lines that read as traditional, `KEEP_WORDS` kept).

Reads the original text of every sentence of `fintag data build`'s output (`text_original`, NFKC-folded as
`normalize` does first). A character changed in a simplified sentence is a word rewritten that was already
right (昇腾 -> 升腾); in a traditional one it is the conversion doing its job.

    fintag data build && python bench/t2s_changes.py
"""

from __future__ import annotations

import json
import logging
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import opencc
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging
from fintag.data.normalize import CJK_RE, to_simplified

logger = logging.getLogger("bench.t2s_changes")


@dataclass
class T2sConfig:
    dataset_dir: str = field(default="data/dataset", metadata={"help": "output of `fintag data build`"})
    top: int = field(default=10, metadata={"help": "most frequent character changes listed per language"})


def changes(before: str, after: str) -> list[tuple[str, str]]:
    if len(before) != len(after):
        return [(before, after)]
    return [(a, b) for a, b in zip(before, after) if a != b]


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    (cfg,) = parse_settings((T2sConfig,), list(sys.argv[1:] if argv is None else argv), Path(__file__).name)
    files = sorted(Path(cfg.dataset_dir).glob("*.jsonl"))
    if not files:
        logger.error("no *.jsonl in %s; run `fintag data build` first", cfg.dataset_dir)
        return 1
    plain = opencc.OpenCC("t2s")
    sentences: Counter[str] = Counter()
    cjk: Counter[str] = Counter()
    changed: dict[str, Counter[str]] = {"t2s": Counter(), "normaliser": Counter()}
    touched: dict[str, Counter[str]] = {"t2s": Counter(), "normaliser": Counter()}
    pairs: dict[tuple[str, str], Counter[tuple[str, str]]] = {}
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            lang = row["lang"]
            text = unicodedata.normalize("NFKC", row["text_original"])
            sentences[lang] += 1
            cjk[lang] += len(CJK_RE.findall(text))
            for name, converted in (("t2s", plain.convert(text)), ("normaliser", to_simplified(text))):
                diff = changes(text, converted)
                changed[name][lang] += len(diff)
                touched[name][lang] += bool(diff)
                pairs.setdefault((name, lang), Counter()).update(diff)
    sys.stdout.write(
        f"dataset {cfg.dataset_dir}: characters changed by traditional-to-simplified conversion\n\n"
        "| lang | sentences | CJK chars | t2s: chars changed | t2s: sentences changed "
        "| normaliser: chars changed | normaliser: sentences changed |\n"
        "| --- | --- | --- | --- | --- | --- | --- |\n"
    )
    for lang in sorted(sentences):
        sys.stdout.write(
            f"| {lang} | {sentences[lang]} | {cjk[lang]} | {changed['t2s'][lang]} | {touched['t2s'][lang]} "
            f"| {changed['normaliser'][lang]} | {touched['normaliser'][lang]} |\n"
        )
    sys.stdout.write("\nmost frequent changes (before>after: count)\n")
    for (name, lang), counter in sorted(pairs.items()):
        top = ", ".join(f"{a}>{b}: {n}" for (a, b), n in counter.most_common(cfg.top))
        sys.stdout.write(f"  {name:<10} {lang:<8} {top or '(none)'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
