import json

import pytest
import torch
from fintag.data.taxonomy import TAXONOMY
from fintag.model.checkpoint import CheckpointError, load_tagger
from fintag.model.labels import CONFIG_KEY, LABEL_SPACE, LabelMismatchError


def _plain_bert_config(tokenizer):
    """A one-layer BERT config with no fintag labels: a stand-in for a hub base model."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )


def test_config_explains_its_labels(tiny_checkpoint_dir):
    config = json.loads((tiny_checkpoint_dir / "config.json").read_text())
    names = [f"{g.name}:{label}" for g in TAXONOMY for label in g.labels]
    assert [config["id2label"][str(i)] for i in range(len(names))] == names
    groups = config[CONFIG_KEY]
    assert sorted(groups, key=lambda g: groups[g]["offset"]) == [g.name for g in TAXONOMY]
    assert [groups[g.name]["offset"] for g in TAXONOMY] == [0, 3, 6]
    assert groups["themes"]["multi_label"] is True and groups["rating"]["labels"][-1] == "none"
    assert (tiny_checkpoint_dir / "model.safetensors").exists()
    assert not list(tiny_checkpoint_dir.glob("*.bin"))


def test_plain_transformers_loads_the_export(tiny_checkpoint_dir, tagger):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_checkpoint_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_checkpoint_dir)
    batch = tok(["投资评级:优于大市(维持)"], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    ours = tagger.tag("投资评级:优于大市(维持)")
    decoded = LABEL_SPACE.decode(logits, tagger.thresholds)[0]
    assert decoded["rating"]["label"] == ours["rating"]["label"]
    assert decoded["sentiment"]["score"] == pytest.approx(ours["sentiment"]["score"], abs=1e-5)


def test_save_then_load_gives_identical_predictions(tmp_path, tiny_checkpoint_dir, tagger, sentences):
    from fintag.model.checkpoint import save_tagger
    from fintag.serve.tagger import Tagger

    loaded = load_tagger(tiny_checkpoint_dir)
    save_tagger(loaded.model, loaded.tokenizer, tmp_path / "copy")
    again = Tagger.load(tmp_path / "copy")
    assert again.tag(sentences[:40]) == tagger.tag(sentences[:40])


def test_decode_respects_groups():
    logits = torch.tensor([[3.0, 0.0, 0.0, 2.0, -2.0, 0.1, 0, 0, 0, 0, 0, 5.0]])
    (row,) = LABEL_SPACE.decode(logits, {"themes:robotaxi": 0.6})
    assert row["sentiment"]["label"] == "positive"
    assert sum(row["sentiment"]["scores"].values()) == pytest.approx(1.0, abs=1e-4)
    assert row["themes"]["labels"] == ["compute"]  # robotaxi: sigmoid(0.1)=0.52 < its 0.6 threshold
    assert row["rating"]["label"] == "none"


def test_refuses_folder_without_weights(tiny_checkpoint):
    (tiny_checkpoint / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        load_tagger(tiny_checkpoint)


def test_refuses_pickled_weights_unless_allowed(tiny_checkpoint):
    from safetensors.torch import load_file

    state = load_file(tiny_checkpoint / "model.safetensors")
    (tiny_checkpoint / "model.safetensors").unlink()
    torch.save(state, tiny_checkpoint / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickled"):
        load_tagger(tiny_checkpoint)
    loaded = load_tagger(tiny_checkpoint, allow_pickle=True)
    assert loaded.model.config.num_labels == LABEL_SPACE.size


def test_refuses_remote_code(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "evil.EvilModel"}
    (tiny_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="remote code"):
        load_tagger(tiny_checkpoint)


def test_refuses_mismatched_labels(tiny_checkpoint):
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    config[CONFIG_KEY]["rating"]["labels"][0] = "strong_buy"
    (tiny_checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(LabelMismatchError, match="do not match"):
        load_tagger(tiny_checkpoint)


def test_refuses_plain_base_model_without_fintag_labels(tmp_path, tiny_tokenizer):
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification(_plain_bert_config(tiny_tokenizer))
    model.save_pretrained(tmp_path / "base")
    tiny_tokenizer.save_pretrained(tmp_path / "base")
    with pytest.raises(LabelMismatchError, match="not a fintag tagger"):
        load_tagger(tmp_path / "base")


def test_missing_checkpoint_and_unreachable_hub(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_tagger(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="hub"):
        load_tagger("hfl/chinese-roberta-wwm-ext")


def test_fine_tuning_start_from_a_local_bert_folder(tmp_path, tiny_tokenizer):
    """The `--model PATH` path: any BERT-family checkpoint gets a fresh head over the taxonomy."""
    from fintag.model.checkpoint import build_from_pretrained
    from transformers import BertModel

    BertModel(_plain_bert_config(tiny_tokenizer)).save_pretrained(tmp_path / "encoder")
    tiny_tokenizer.save_pretrained(tmp_path / "encoder")
    model, tok = build_from_pretrained(str(tmp_path / "encoder"))
    LABEL_SPACE.check_config(model.config)
    assert model.config.num_labels == LABEL_SPACE.size and len(tok) == len(tiny_tokenizer)


def test_rating_below_its_threshold_decodes_as_none_with_the_probability_of_none():
    from fintag.model.labels import LABEL_SPACE

    logits = torch.zeros(2, LABEL_SPACE.size)
    rating = LABEL_SPACE.slices()["rating"]
    logits[0, rating.start] = 3.0  # buy, p ≈ 0.8
    logits[1, rating.start] = 6.0  # buy, p ≈ 0.99
    th = {f"rating:{label}": 0.9 for label in ("buy", "outperform", "neutral", "underperform", "sell")}
    unsure, sure = LABEL_SPACE.decode(logits, th)
    assert unsure["rating"]["label"] == "none" and sure["rating"]["label"] == "buy"
    assert unsure["rating"]["score"] == unsure["rating"]["scores"]["none"] < 0.1
    assert unsure["rating"]["scores"]["buy"] > 0.7  # the probabilities themselves are kept
    # Without thresholds (older checkpoints) the top label is given.
    assert [r["rating"]["label"] for r in LABEL_SPACE.decode(logits)] == ["buy", "buy"]
    # Sentiment does not abstain, whatever the thresholds say.
    logits[0, LABEL_SPACE.slices()["sentiment"].start] = 0.5
    assert LABEL_SPACE.decode(logits, {"sentiment:positive": 0.99})[0]["sentiment"]["label"] == "positive"


def test_tokenizer_keeps_cjk_characters_as_single_tokens(tiny_tokenizer):
    tokens = tiny_tokenizer.tokenize("国产算力GPU出货")
    assert tokens[:4] == ["国", "产", "算", "力"]


def test_int8_quantisation_keeps_labels_and_replaces_linear_layers(tiny_checkpoint_dir, tagger, sentences):
    from fintag.model.quantize import QuantizeError, quantize_int8
    from fintag.serve.tagger import Tagger

    quantized = Tagger.load(tiny_checkpoint_dir, quantize=True, backend="torch")
    float_linears = [m for m in quantized.model.modules() if type(m) is torch.nn.Linear]
    assert not float_linears  # every linear layer is an int8 one now
    texts = sentences[:200]
    want, got = tagger.tag(texts), quantized.tag(texts)
    same = [
        (a["sentiment"]["label"], a["rating"]["label"], a["themes"]["labels"])
        == (b["sentiment"]["label"], b["rating"]["label"], b["themes"]["labels"])
        for a, b in zip(want, got, strict=True)
    ]
    assert sum(same) / len(same) >= 0.9
    worst = max(
        abs(a[g.name]["scores"][k] - b[g.name]["scores"][k])
        for a, b in zip(want, got, strict=True)
        for g in TAXONOMY
        for k in g.labels
    )
    assert 0 < worst < 0.05  # changed (really quantised), but only a little
    model = load_tagger(tiny_checkpoint_dir).model.to("meta")
    with pytest.raises(QuantizeError, match="CPU only"):
        quantize_int8(model)


@pytest.mark.parametrize("slack", [1.0, 0.25, 0.125, 0.0])
def test_length_batches_cover_every_index_once_within_their_limits(slack):
    import random

    from fintag.model.inference import length_batches

    rng = random.Random(7)
    lengths = [rng.randint(3, 128) for _ in range(300)]
    batches = list(length_batches(lengths, batch_size=16, max_tokens=1024, pad_slack=slack))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[i] for i in b)
        assert len(b) <= 16 and width * len(b) <= 1024
        assert min(lengths[i] for i in b) >= width * (1 - slack)
    if slack == 0.0:  # no padding at all: every batch holds one length
        assert all(len({lengths[i] for i in b}) == 1 for b in batches)


def test_padding_slack_pads_less_and_keeps_the_logits(tagger, sentences):
    """Bounded padding changes which sentences share a forward pass, not what comes out of it."""
    from fintag.model.inference import batched_logits, length_batches

    texts = sentences * 3
    lengths = [tagger.token_count(t) for t in texts]

    def padded(slack: float) -> int:
        return sum(max(lengths[i] for i in b) * len(b) for b in length_batches(lengths, 64, 8192, slack))

    assert padded(0.125) < padded(1.0)
    assert padded(0.125) <= sum(lengths) / (1 - 0.125)

    def logits(slack: float) -> torch.Tensor:
        m, tok = tagger.model, tagger.tokenizer
        return batched_logits(m, tok, texts, max_length=tagger.max_length, pad_slack=slack)

    assert torch.allclose(logits(1.0), logits(0.125), atol=1e-5)


def test_model_path_messages_give_the_advice_of_the_folder_expected(tmp_path):
    """A base model to fine-tune is not made by `fintag train`: its advice names the hub, `fintag base` and a
    Hugging Face folder; a trained checkpoint's advice stays `fintag train`'s model/ folder."""
    from fintag.model.paths import ModelPathError, resolve_model

    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "file.bin").write_bytes(b"")
    for value in (tmp_path / "nonexistent" / "model", empty, tmp_path / "file.bin"):
        with pytest.raises(ModelPathError) as base:
            resolve_model(value, what="base model")
        message = str(base.value)
        assert "hub id" in message and "`fintag base`" in message and "config.json" in message, message
        assert "written by `fintag train`" not in message and "artifacts/run/model" not in message
        with pytest.raises(ModelPathError, match="e5-small"):
            resolve_model(value, what="embedding source")
    with pytest.raises(ModelPathError, match=r"written by `fintag train` \(the model/ subfolder"):
        resolve_model(tmp_path / "nonexistent" / "model")
    with pytest.raises(ModelPathError, match="the base model is empty; pass a hub id"):
        resolve_model("", what="base model")


def test_a_saved_tagger_is_readable_by_other_users(tmp_path, tiny_tokenizer):
    """Checkpoints and exports are written through atomic_directory: not 0700 / 0600 as mkdtemp makes them."""
    import os
    import stat

    from fintag.model.checkpoint import build_from_scratch, save_tagger

    model = build_from_scratch("tiny", tiny_tokenizer)
    old = os.umask(0o022)
    try:
        path = save_tagger(model, tiny_tokenizer, tmp_path / "model", card="# tiny")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes
