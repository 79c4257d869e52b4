import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from fintag.model.labels import LABEL_SPACE
from fintag.train.data import Collator, LengthGroupedBatchSampler, SentenceDataset, class_weights
from fintag.train.loop import RunError, _latest_checkpoint, train
from fintag.train.metrics import expected_calibration_error, group_metrics

from .conftest import ROOT, cli_args, run_train_cli, tiny_train_config


def test_loss_falls_after_a_few_steps(tiny_tokenizer, mini_dataset):
    from fintag.data.build import load_split
    from fintag.model.checkpoint import build_from_scratch
    from fintag.model.labels import LABEL_SPACE

    torch.manual_seed(0)
    records = load_split(mini_dataset, "train")[:32]
    model = build_from_scratch("tiny", tiny_tokenizer)
    ds = SentenceDataset(records, tiny_tokenizer, 64)
    batch = Collator(tiny_tokenizer.pad_token_id)([ds[i] for i in range(len(ds))])
    targets = {g.name: batch[f"y_{g.name}"] for g in LABEL_SPACE.groups}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        return LABEL_SPACE.loss(
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits, targets
        )

    model.eval()
    with torch.no_grad():
        before = loss().item()
    model.train()
    for _ in range(25):
        opt.zero_grad()
        loss().backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = loss().item()
    assert after < 0.7 * before


def test_length_grouped_batches_cover_everything_once_and_are_reproducible():
    lengths = [5, 60, 7, 61, 8, 59, 6, 62] * 10
    s = LengthGroupedBatchSampler(lengths, batch_size=8, seed=3, mega=2)
    s.set_epoch(1)
    first = list(s)
    s.set_epoch(1)
    assert list(s) == first
    flat = sorted(i for b in first for i in b)
    assert flat == list(range(len(lengths)))
    spread = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first]
    assert np.mean(spread) < 30  # random batches would mix 5s and 60s
    s.set_epoch(2)
    assert list(s) != first


def test_class_weights_favour_rare_classes(small_dataset):
    from fintag.data.build import load_split

    w = class_weights(load_split(small_dataset, "train"), "sqrt")
    rating = dict(zip(["buy", "outperform", "neutral", "underperform", "sell", "none"], w["rating"].tolist()))
    assert rating["sell"] > rating["buy"] > rating["none"]
    assert class_weights([], "none") is None


def test_metrics_and_calibration():
    from fintag.data.taxonomy import SENTIMENT, THEMES

    m = group_metrics(
        SENTIMENT,
        ["positive", "negative", "neutral", "positive"],
        ["positive", "neutral", "neutral", "positive"],
    )
    assert m["per_class"]["positive"]["f1"] == 1.0 and m["per_class"]["negative"]["recall"] == 0.0
    assert m["macro_f1"] == pytest.approx((1.0 + 0.0 + 2 / 3) / 3)
    t = group_metrics(THEMES, [["compute"], [], ["robotaxi"]], [["compute"], ["compute"], []])
    assert t["micro_f1"] == pytest.approx(0.5)
    # compute F1 2/3, robotaxi 0; domestic_substitution is in no gold row, so it is not averaged.
    assert t["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    # A set without robotaxi (like the seeds' sentences): perfect on what it holds scores 1, and a false
    # robotaxi shows in micro-F1 and robotaxi's precision rather than in the macro average.
    clean = group_metrics(THEMES, [["compute"], []], [["compute"], []])
    assert clean["macro_f1"] == pytest.approx(1.0)
    stray = group_metrics(THEMES, [["compute"], []], [["compute"], ["robotaxi"]])
    assert stray["macro_f1"] == pytest.approx(1.0) and stray["micro_f1"] == pytest.approx(2 / 3)
    assert stray["per_class"]["robotaxi"]["precision"] == 0.0
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([1.0, 1.0])) == pytest.approx(0.1)


def test_a_theme_validation_separates_gets_the_threshold_halfway_across_the_gap():
    from fintag.data.taxonomy import THEMES
    from fintag.train.metrics import tune_thresholds

    gold = [["compute"]] * 4 + [[]] * 6
    probs = np.zeros((10, len(THEMES.labels)))
    probs[:4, THEMES.labels.index("compute")] = 0.92
    probs[4:, THEMES.labels.index("compute")] = 0.3
    # Every threshold from 0.35 to 0.9 is perfect; the middle of those twelve (the lower of two) is 0.6.
    assert tune_thresholds(THEMES, gold, probs)["themes:compute"] == pytest.approx(0.6)
    # Without a tie the best threshold wins: one positive at 0.4 makes only 0.35 and 0.4 perfect.
    probs[0, THEMES.labels.index("compute")] = 0.4
    assert tune_thresholds(THEMES, gold, probs)["themes:compute"] == pytest.approx(0.35)


def test_rating_threshold_is_tuned_to_drop_unsure_ratings_only_when_that_helps():
    from fintag.data.taxonomy import RATING
    from fintag.train.metrics import tune_min_score

    def probs(top: str, p: float) -> list[float]:
        row = [(1 - p) / (len(RATING.labels) - 1)] * len(RATING.labels)
        row[RATING.index(top)] = p
        return row

    # Sure ratings are right; the unsure ones (0.6) are false: the tuned threshold sits above 0.6.
    gold = ["buy", "sell", "outperform", "none", "none", "none"]
    p = np.array(
        [probs("buy", 0.97), probs("sell", 0.9), probs("outperform", 0.95)]
        + [probs("buy", 0.6)] * 2
        + [probs("none", 0.9)]
    )
    th = tune_min_score(RATING, gold, p)
    assert set(th) == {f"rating:{label}" for label in RATING.labels if label != "none"}
    assert 0.6 < th["rating:buy"] <= 0.9 and len(set(th.values())) == 1
    # When the unsure ratings are right, abstaining would only lose them: no threshold.
    assert set(tune_min_score(RATING, ["buy", "sell", "outperform", "buy", "buy", "none"], p).values()) == {
        0.0
    }


def test_train_exports_a_loadable_tagger_and_refuses_to_overwrite(tmp_path, mini_dataset):
    from fintag.serve.tagger import Tagger

    cfg = tiny_train_config(mini_dataset, tmp_path / "run")
    path = train(cfg)
    tagger = Tagger.load(path)
    ratings = {f"rating:{label}" for label in ("buy", "outperform", "neutral", "underperform", "sell")}
    themes = {"themes:compute", "themes:domestic_substitution", "themes:robotaxi"}
    assert set(tagger.thresholds) == themes | ratings
    assert len({tagger.thresholds[k] for k in ratings}) == 1  # one tuned threshold for every rating
    summary = json.loads((path / "training_summary.json").read_text())
    assert summary["global_step"] == 2 * 6  # 96 sentences / 16 per batch, 2 epochs
    card = (path / "README.md").read_text()
    assert "fintag_label_groups" in card and "sentiment" in card
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in log if "val_mean_macro_f1" in r]
    assert [r["epoch"] for r in epochs] == [1, 2]
    # What each epoch cost: 96 sentences per epoch, their rate and the peak memory.
    for r in epochs:
        assert r["samples_per_second"] * r["train_seconds"] == pytest.approx(96)
        assert 50 < r["peak_rss_mb"] < 64_000 and "peak_gpu_memory_mb" not in r
    with pytest.raises(RunError, match="--resume"):
        train(cfg)


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, mini_dataset):
    from safetensors.torch import load_file

    # With a moving average of the weights (--ema_decay), whose state must survive the kill too.
    ref_cfg = tiny_train_config(mini_dataset, tmp_path / "ref", epochs=3, save_every_steps=2, ema_decay=0.9)
    ref = run_train_cli(cli_args(ref_cfg), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert ref.wait(timeout=300) == 0
    cfg = tiny_train_config(mini_dataset, tmp_path / "killed", epochs=3, save_every_steps=2, ema_decay=0.9)
    proc = run_train_cli(cli_args(cfg), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "state"
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.name in ("ckpt-8", "ckpt-10") for p in state.glob("ckpt-*")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "model" / "config.json").exists(), "killed too late to test resume"
    # What resume picks is whole: a kill before the rename leaves a `.tmp-` folder, which it never reads.
    latest = _latest_checkpoint(state)
    assert latest is not None and latest.name.startswith("ckpt-")
    assert (latest / "trainer_state.json").exists() and (latest / "model.safetensors").exists()
    resumed = run_train_cli([*cli_args(cfg), "--resume"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err.decode()[-2000:]
    assert b"resumed from" in err
    # It continued from a checkpoint rather than starting over, reached the same step count, and its
    # loss curve tracks the uninterrupted run (resume is not bit-exact: see docs/reliability.md).
    ref_sum = json.loads((tmp_path / "ref" / "model" / "training_summary.json").read_text())
    got_sum = json.loads((tmp_path / "killed" / "model" / "training_summary.json").read_text())
    assert got_sum["global_step"] == ref_sum["global_step"] == 18
    # The average counts every step of both processes: restored from the checkpoint, not restarted.
    final = torch.load(
        tmp_path / "killed" / "state" / "ckpt-18" / "custom_checkpoint_0.pkl", weights_only=True
    )
    assert final["n_averaged"].item() == 18

    def epoch_losses(run: str) -> list[float]:
        rows = [json.loads(x) for x in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
        return [r["train_loss"] for r in rows if "train_loss" in r]

    ref_losses, got_losses = epoch_losses("ref"), epoch_losses("killed")
    assert len(got_losses) == len(ref_losses) == 3
    # Epoch 2 was interrupted: the resumed process's mean covers only the batches it ran, so it is not
    # comparable. Epochs 1 and 3 ran whole in both runs (same batches, same token masks).
    assert [got_losses[0], got_losses[2]] == pytest.approx([ref_losses[0], ref_losses[2]], rel=0.01)
    a = load_file(tmp_path / "ref" / "model" / "model.safetensors")
    b = load_file(tmp_path / "killed" / "model" / "model.safetensors")
    assert a.keys() == b.keys()
    drift = max((a[k] - b[k]).abs().max().item() for k in a)
    assert drift < 0.05


def test_two_process_accelerate_run(tmp_path, mini_dataset):
    from fintag.serve.tagger import Tagger

    cfg = tiny_train_config(mini_dataset, tmp_path / "ddp", epochs=1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--multi_gpu",
        "-m",
        "fintag.serve.cli",
        "train",
        *cli_args(cfg),
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    summary = json.loads((tmp_path / "ddp" / "model" / "training_summary.json").read_text())
    # 96 sentences, 16 per process per step, 2 processes: 3 steps per epoch (6 in one process).
    assert summary["global_step"] == 3
    tagger = Tagger.load(tmp_path / "ddp" / "model")
    out = tagger.tag(["投资评级:买入(维持)", "风险提示:需求不及预期。"])
    assert len(out) == 2 and all(set(r) == {"sentiment", "themes", "rating"} for r in out)


def test_recombined_clauses_are_new_sentences_made_of_training_clauses():
    from fintag.data.normalize import CJK_RE
    from fintag.train.augment import clauses, recombine_clauses

    texts = [
        "公司维持买入评级,算力订单饱满,毛利率同比提升2.1个百分点。",
        "国产GPU渗透率持续提升;但高端制程受限,短期出货承压。",
        "萝卜快跑全无人订单占比超过70%,单位经济模型已经转正。",
        "We maintain Outperform, as AI server demand keeps rising, and margins expand.",
        "Robotaxi fleets grew 40% quarter on quarter, but utilisation fell.",
    ]
    made = recombine_clauses(texts, 40, seed=3)
    out = [t for t, _ in made]
    assert len(out) == len(set(out)) and len(out) >= 20
    assert not set(out) & set(texts)
    for sentence, sources in made:
        parts = [c.strip() for c in clauses(sentence)]
        from_sources = {c.strip() for i in sources for c in clauses(texts[i])}
        assert set(parts) <= from_sources, sentence  # made only of whole clauses of its sources
        has_cjk = [CJK_RE.search(p) is not None for p in parts]
        assert all(has_cjk) or not any(has_cjk), sentence  # never Chinese head with English tail
    assert recombine_clauses(texts, 40, seed=3) == made  # reproducible
    assert recombine_clauses(["没有逗号的句子。"], 5, seed=0) == []


def test_rating_word_variants_put_another_rating_word_of_the_same_language_in_its_place():
    from fintag.data.taxonomy import RATING_WORDS_EN, RATING_WORDS_NOT_SWAPPED, RATING_WORDS_ZH
    from fintag.train.augment import swap_rating_words

    texts = [
        "维持英维克“增持”评级,液冷业务有望步入收获期。",
        "下调福莱特至“减持”,光伏玻璃价格已跌破部分产线现金成本。",
        "Rating: BUY (from HOLD); we upgrade on AI server demand.",
        "The company will buy back shares while holders sell.",  # lower case: verbs, not ratings
        "市场整体看好算力板块。",  # 看好 is an opinion far more often than a rating: left alone
    ]
    turned = {1: texts[1].replace("下调", "上调"), 2: texts[2].replace("upgrade", "downgrade")}
    made = swap_rating_words(texts, 30, seed=1)
    out = [t for t, _ in made]
    assert len(out) == len(set(out)) and not set(out) & set(texts)
    assert {i for _, i in made} == {0, 1, 2}
    words = {
        "zh": set(RATING_WORDS_ZH) - RATING_WORDS_NOT_SWAPPED,
        "en": set(RATING_WORDS_EN) - RATING_WORDS_NOT_SWAPPED,
    }
    put: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}
    flipped = set()
    for new, i in made:
        lang = "en" if i == 2 else "zh"
        matches = []
        for base in (texts[i], turned.get(i)):
            for old in sorted(words[lang], key=len, reverse=True):
                for form in (old, old.upper()):
                    at = base.find(form) if base else -1
                    if at < 0:
                        continue
                    head, tail = base[:at], base[at + len(form) :]
                    middle = new[len(head) : len(new) - len(tail)]
                    if new.startswith(head) and new.endswith(tail) and middle != form:
                        if middle in words[lang] or middle.title() in words[lang]:
                            assert middle.isupper() == form.isupper(), new  # BUY -> SELL, not Sell
                            matches.append((base, middle))
        assert matches, new  # exactly one rating word changed (and perhaps the direction turned)
        put[i].add(matches[0][1])
        flipped |= {i for base, _ in matches if base is turned.get(i)}
    assert len(put[0]) >= 12 and len(put[2]) >= 6  # most levels, not one favourite
    assert flipped == {1, 2}  # some variants turn the change around
    assert swap_rating_words(texts, 30, seed=1) == made  # reproducible
    assert swap_rating_words(texts[3:], 5, seed=0) == []
    # A swap word inside a level that is not swapped stays (no 审慎买入, no "Sector Sell"); one beside it
    # is swapped.
    inside = [
        "行业评级:审慎增持(维持)",
        "评级:谨慎增持",
        "Rating: Sector Outperform",
        "SECTOR UNDERPERFORM (from Sector Perform)",
    ]
    assert swap_rating_words(inside, 5, seed=0) == []
    beside = swap_rating_words(["由“增持”下调至“审慎增持”"], 10, seed=0)
    assert beside and all(t.endswith("至“审慎增持”") and "由“增持”" not in t for t, _ in beside)


def test_distillation_set_keeps_gold_rows_and_adds_teacher_probabilities(mini_dataset):
    from fintag.data.build import load_split
    from fintag.model.labels import LABEL_SPACE
    from fintag.train.augment import distillation_set, swap_rating_words

    train_records = load_split(mini_dataset, "train")
    n = len(train_records)
    gold = LABEL_SPACE.encode(train_records)
    every = tuple(g.name for g in LABEL_SPACE.groups)
    for groups in (None, ("sentiment", "themes")):  # None: the default, which distils every group
        kwargs = {} if groups is None else {"groups": groups}
        records, targets, states = distillation_set(train_records, per_sentence=2, seed=0, **kwargs)
        assert states is None
        groups = every if groups is None else groups
        assert records[:n] == train_records and len(records) > n
        for g in LABEL_SPACE.groups:
            t = targets[g.name]
            assert t.shape == (len(records), len(g.labels))
            if g.multi_label:
                assert torch.equal(t[:n], gold[g.name])
            else:
                assert torch.equal(t[:n].argmax(1), gold[g.name])
                assert torch.equal(t[:n].sum(1), torch.ones(n))
            if g.name not in groups:
                assert torch.isnan(t[n:]).all()  # no target: this group's loss sees gold sentences only
                continue
            assert ((t >= 0) & (t <= 1)).all()
            assert ((t[n:] > 0) & (t[n:] < 1)).any()  # soft, not one-hot
            if not g.multi_label:
                assert torch.allclose(t[n:].sum(1), torch.ones(len(records) - n), atol=1e-5)
    assert torch.isnan(targets["rating"][n:]).all() and not torch.isnan(targets["sentiment"]).any()
    # Rating-word variants come after the recombined sentences, labelled by the same teacher.
    with_swaps, swap_targets, _ = distillation_set(train_records, per_sentence=2, seed=0, rating_swaps=2)
    variants = {t for t, _ in swap_rating_words([r["text"] for r in train_records], 2, seed=0)}
    assert with_swaps[: len(records)] == records and len(with_swaps) > len(records)
    assert {r["text"] for r in with_swaps[len(records) :]} <= variants
    assert swap_targets["sentiment"].shape == (len(with_swaps), 3)
    # The soft rows train through the ordinary loss.
    ds = SentenceDataset(records, _tokenizer_for(records), 64, targets=targets)
    batch = Collator(0)([ds[i] for i in range(n, n + 8)])
    logits = torch.zeros(8, LABEL_SPACE.size, requires_grad=True)
    loss = LABEL_SPACE.loss(logits, {g.name: batch[f"y_{g.name}"] for g in LABEL_SPACE.groups})
    loss.backward()
    assert torch.isfinite(loss) and logits.grad.abs().sum() > 0


def _tokenizer_for(records):
    from fintag.model.tokenizer import train_wordpiece

    return train_wordpiece([r["text"] for r in records], vocab_size=800)


def test_train_with_distillation_runs_more_steps_per_epoch(tmp_path, mini_dataset):
    cfg = tiny_train_config(mini_dataset, tmp_path / "run", epochs=1, distill_augment=1)
    path = train(cfg)
    summary = json.loads((path / "training_summary.json").read_text())
    assert summary["global_step"] == 12  # 96 gold + 96 recombined sentences / 16 per batch


def test_sharpen_keeps_the_teachers_choice_and_makes_it_more_confident():
    from fintag.train.augment import sharpen

    p = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    s = sharpen(p, multi_label=False, temperature=0.5)
    assert torch.allclose(s.sum(1), torch.ones(2))
    assert torch.equal(s.argmax(1), p.argmax(1))
    assert (s.max(1).values > p.max(1).values).all()
    assert torch.allclose(s[0], torch.tensor([0.36, 0.09, 0.01]) / 0.46)
    m = sharpen(torch.tensor([[0.5, 0.8, 0.1]]), multi_label=True, temperature=0.5)
    assert m[0, 0] == pytest.approx(0.5) and m[0, 1] > 0.8 and m[0, 2] < 0.1
    assert torch.equal(sharpen(p, multi_label=False, temperature=1.0), p)


def test_loss_leaves_out_rows_without_a_target():
    import torch.nn.functional as F
    from fintag.model.labels import LABEL_SPACE

    torch.manual_seed(0)
    logits = torch.randn(4, LABEL_SPACE.size)
    targets = {
        g.name: torch.rand(4, len(g.labels))
        if g.multi_label
        else torch.softmax(torch.randn(4, len(g.labels)), dim=1)
        for g in LABEL_SPACE.groups
    }
    holed = {k: v.clone() for k, v in targets.items()}
    holed["rating"][2:] = float("nan")
    want = torch.zeros(())
    for g, s in zip(LABEL_SPACE.groups, LABEL_SPACE.slices().values(), strict=True):
        rows = slice(0, 2) if g.name == "rating" else slice(None)
        loss = F.binary_cross_entropy_with_logits if g.multi_label else F.cross_entropy
        want = want + loss(logits[rows, s], targets[g.name][rows])
    got = LABEL_SPACE.loss(logits, holed)
    assert got == pytest.approx(want.item(), rel=1e-6)
    assert got != pytest.approx(LABEL_SPACE.loss(logits, targets).item(), rel=1e-3)
    holed["rating"][:] = float("nan")  # no rating target at all: the group adds nothing
    assert torch.isfinite(LABEL_SPACE.loss(logits, holed))


def test_token_masks_depend_on_seed_epoch_and_sentence_not_on_batch_history():
    items = [{"input_ids": list(range(1, 41)), "index": i} for i in range(6)]
    collate = Collator(0, mask_token_id=99, mask_prob=0.3, seed=5)
    together = collate(items)["input_ids"]
    collate(items)  # more batches before: a shared generator would now give other masks
    alone = collate([items[4]])["input_ids"][0]
    assert torch.equal(together[4], alone)
    masked = together == 99
    assert 0.15 < masked.float().mean() < 0.45 and not torch.equal(masked[0], masked[1])
    assert not masked[:, 0].any() and not masked[:, -1].any()  # never [CLS] or the closing [SEP]
    collate.set_epoch(1)
    assert not torch.equal(collate([items[4]])["input_ids"][0], alone)


def test_distill_groups_flag_is_parsed_and_checked():
    from fintag.cli.args import parse_settings
    from fintag.train.config import TrainConfig

    assert TrainConfig().distill_group_names == ("sentiment", "themes", "rating")
    (cfg,) = parse_settings((TrainConfig,), ["--distill_groups", "sentiment, themes"], "train")
    assert cfg.distill_group_names == ("sentiment", "themes")
    for bad in ("sentiment,price", ","):
        with pytest.raises(ValueError, match="comma-separated subset of sentiment,themes,rating"):
            TrainConfig(distill_groups=bad)


def test_train_cli_refuses_a_bad_setting_with_a_message_not_a_traceback(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fintag.serve.cli",
            "train",
            "--output_dir",
            str(tmp_path / "run"),
            "--distill_groups",
            "rating,price",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "--distill_groups takes a comma-separated subset" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()


def test_fine_tuning_a_pretrained_folder_freezes_embeddings_and_exports_what_stock_transformers_loads(
    tmp_path, mini_dataset, tiny_pretrained
):
    from fintag.model.checkpoint import load_tagger
    from fintag.model.labels import MAX_LENGTH_KEY
    from fintag.serve.tagger import Tagger
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = tiny_train_config(
        mini_dataset, tmp_path / "run", model=str(tiny_pretrained), max_length=48, learning_rate=1e-3
    )
    path = train(cfg)
    base = load_file(tiny_pretrained / "model.safetensors")["embeddings.word_embeddings.weight"]
    tuned = load_file(path / "model.safetensors")
    assert torch.equal(tuned["bert.embeddings.word_embeddings.weight"], base)  # --freeze_embeddings
    assert not torch.equal(
        tuned["bert.encoder.layer.0.attention.self.query.weight"],
        load_file(tiny_pretrained / "model.safetensors")["encoder.layer.0.attention.self.query.weight"],
    )
    assert json.loads((path / "config.json").read_text())[MAX_LENGTH_KEY] == 48
    tagger = Tagger.load(path)
    assert tagger.max_length == 48 and load_tagger(path).max_length == 48
    # Stock transformers, no fintag code: the same logits as the Tagger's path.
    texts = ["国产算力芯片需求旺盛,维持买入评级。", "The robotaxi fleet grew 30% quarter on quarter."]
    stock = AutoModelForSequenceClassification.from_pretrained(path).eval()
    enc = AutoTokenizer.from_pretrained(path)(
        texts, padding=True, truncation=True, max_length=48, return_tensors="pt"
    )
    with torch.inference_mode():
        ref = stock(**enc).logits
    from fintag.model.inference import batched_logits

    ours = batched_logits(tagger.model, tagger.tokenizer, texts, max_length=tagger.max_length)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_the_fast_tier_learns_from_a_checkpoint_teacher(tmp_path, mini_dataset, tiny_pretrained):
    """Distillation from a trained checkpoint: recombined sentences carry that model's probabilities."""
    from fintag.data.build import load_split
    from fintag.train.augment import CheckpointTeacher, distillation_set

    teacher = train(
        tiny_train_config(mini_dataset, tmp_path / "teacher", model=str(tiny_pretrained), epochs=1)
    )
    records = load_split(mini_dataset, "train")
    mixed, targets, _ = distillation_set(records, 1, seed=3, teacher=str(teacher))
    extra = [r["text"] for r in mixed[len(records) :]]
    assert extra and all(t not in {r["text"] for r in records} for t in extra)
    _, probs = CheckpointTeacher(str(teacher)).predict(extra)
    for g in LABEL_SPACE.groups:
        assert torch.allclose(targets[g.name][len(records) :], torch.as_tensor(probs[g.name]), atol=1e-6)
    # The one torch pass that also gives sentence states labels the same sentences alike (onnx vs torch).
    same, with_states, states = distillation_set(records, 1, seed=3, teacher=str(teacher), with_states=True)
    assert same == mixed and states is not None and states.shape == (len(mixed), 32)
    for g in LABEL_SPACE.groups:
        assert torch.allclose(with_states[g.name], targets[g.name], atol=1e-4)
    student = train(
        tiny_train_config(mini_dataset, tmp_path / "fast", teacher=str(teacher), distill_augment=1, epochs=1)
    )
    summary = json.loads((student / "training_summary.json").read_text())
    assert summary["global_step"] == math.ceil(len(mixed) / 16)


def test_label_audit_ranks_contradicted_gold_labels(tmp_path, mini_dataset, tiny_pretrained):
    """The audit's out-of-fold probabilities: each listed row's gold label is less likely than its
    prediction, rows come most-contradicted first, and nothing in the dataset changes."""
    from fintag.train.audit import audit
    from fintag.train.config import AuditConfig

    before = {p.name: p.read_bytes() for p in mini_dataset.glob("*.jsonl")}
    rows = audit(
        AuditConfig(
            dataset_dir=str(mini_dataset),
            model=str(tiny_pretrained),
            output=str(tmp_path / "audit.jsonl"),
            top=15,
            folds=3,
        )
    )
    assert 0 < len(rows) <= 15
    assert [r["gold_probability"] for r in rows] == sorted(r["gold_probability"] for r in rows)
    for r in rows:
        assert r["gold"] != r["predicted"]
        if r["group"] != "themes":
            assert r["probabilities"][r["gold"]] < r["probabilities"][r["predicted"]]
    written = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert written == rows
    assert {p.name: p.read_bytes() for p in mini_dataset.glob("*.jsonl")} == before


def test_projected_embeddings_keep_the_geometry_of_a_low_rank_matrix():
    """PCA down to the student's width loses nothing when the matrix has at most that rank: distances
    between rows survive up to one global scale, and the result has the initialiser's spread."""
    from fintag.model.student import INIT_STD, project_embeddings

    torch.manual_seed(1)
    weight = torch.randn(300, 6) @ torch.randn(6, 48) + 3.0  # rank 6 plus an offset, 48 wide
    out = project_embeddings(weight, 8)
    assert out.shape == (300, 8)
    assert abs(out.std().item() - INIT_STD) < 1e-4
    before, after = torch.cdist(weight, weight), torch.cdist(out, out)
    scale = (after.sum() / before.sum()).item()
    assert torch.allclose(after, before * scale, atol=1e-4)
    # A rank-6 matrix squeezed to 3 dimensions cannot keep them: the test can fail.
    small = project_embeddings(weight, 3)
    after3 = torch.cdist(small, small)
    assert not torch.allclose(after3, before * (after3.sum() / before.sum()).item(), atol=1e-3)
    with pytest.raises(ValueError, match="cannot project"):
        project_embeddings(weight, 64)


def test_a_student_starts_from_the_pretrained_tokenizer_and_projected_embeddings(
    tmp_path, mini_dataset, tiny_pretrained
):
    from fintag.model.student import build_student, project_embeddings
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    model, tokenizer = build_student(str(tiny_pretrained), "tiny", dropout=0.1, seed=3)
    source = AutoTokenizer.from_pretrained(tiny_pretrained)
    text = "国产算力芯片需求旺盛,维持买入评级。Robotaxi fleets grew."
    assert tokenizer.tokenize(text) == source.tokenize(text)
    weight = load_file(tiny_pretrained / "model.safetensors")["embeddings.word_embeddings.weight"]
    expected = project_embeddings(weight, model.config.hidden_size, seed=3)
    assert torch.allclose(model.get_input_embeddings().weight, expected)
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 32

    path = train(
        tiny_train_config(mini_dataset, tmp_path / "fast", student_embeddings=str(tiny_pretrained), epochs=1)
    )
    assert not (tmp_path / "fast" / "tokenizer").exists()  # no WordPiece trained
    exported = AutoTokenizer.from_pretrained(path)
    assert exported.tokenize(text) == source.tokenize(text)
    assert "PCA-projected" in (path / "README.md").read_text()
    with pytest.raises(ValueError, match="only applies to --model scratch"):
        tiny_train_config(mini_dataset, tmp_path / "x", model=str(tiny_pretrained), student_embeddings="a")


def test_training_only_the_reachable_embedding_rows_gives_the_full_matrix_result(
    tmp_path, mini_dataset, tiny_pretrained
):
    """`--compact_embeddings` (the default) trains the rows the sentences reach and scales the rest by the
    decay they missed: the export, a moving average at that, equals training the whole matrix."""
    from fintag.model.student import build_student
    from safetensors.torch import load_file

    def run(name: str, compact: bool) -> dict[str, torch.Tensor]:
        cfg = tiny_train_config(
            mini_dataset,
            tmp_path / name,
            student_embeddings=str(tiny_pretrained),
            compact_embeddings=compact,
            weight_decay=5.0,  # large, so that a missed decay of the untrained rows would show
            ema_decay=0.9,
            save_every_steps=0,
        )
        return load_file(train(cfg) / "model.safetensors")

    full, compact = run("full", False), run("compact", True)
    assert full.keys() == compact.keys()
    for k in full:
        assert torch.allclose(full[k], compact[k], atol=1e-5), k
    key = "bert.embeddings.word_embeddings.weight"
    start = build_student(str(tiny_pretrained), "tiny", dropout=0.1, seed=7)[0].get_input_embeddings().weight
    unchanged = (compact[key] - start.detach()).abs().amax(dim=1) < 1e-6
    # The test split holds pieces that training and validation do not: their rows only decayed.
    assert 0 < int((~unchanged).sum()) and int(unchanged.sum()) <= 1  # padding's row never moves
    log = (tmp_path / "compact" / "metrics.jsonl").read_text()
    assert log.count("train_loss") == 2
    # A resume must use the layout the run's checkpoints hold (here: the whole matrix).
    cfg = tiny_train_config(
        mini_dataset, tmp_path / "full", student_embeddings=str(tiny_pretrained), resume=True, epochs=3
    )
    with pytest.raises(RunError, match="resume with --compact_embeddings false"):
        train(cfg)


def test_hidden_loss_reads_the_first_token_only():
    """Zero when the projected first-token states equal the teacher's, whatever the other tokens hold."""
    from fintag.train.hidden import hidden_loss

    torch.manual_seed(0)
    projection = torch.nn.Linear(4, 6)
    student = torch.randn(2, 5, 4)
    with torch.no_grad():
        teacher = projection(student[:, 0])
    student[:, 1:] = 100.0
    assert hidden_loss(student, teacher, projection).item() < 1e-10
    teacher[1] += 1.0  # one sentence off by 1 in each of 6 dims: mean over 2 sentences x 6 dims
    assert hidden_loss(student, teacher, projection).item() == pytest.approx(0.5, rel=1e-5)


def test_hidden_distillation_learns_the_teachers_sentence_states(tmp_path, mini_dataset, tiny_pretrained):
    """The teacher's first-token states and logits, batched by length, equal its own sentence by sentence; the
    collator stacks them in batch order; a student with the teacher's tokenizer trains with them and
    exports a plain classifier; a student with another tokenizer is refused."""
    from fintag.data.build import load_split
    from fintag.model.checkpoint import load_tagger
    from fintag.train.hidden import TokenizerMismatchError, teacher_pass

    teacher = train(
        tiny_train_config(mini_dataset, tmp_path / "teacher", model=str(tiny_pretrained), epochs=1)
    )
    loaded = load_tagger(teacher)
    texts = [r["text"] for r in load_split(mini_dataset, "train")[:20]]
    ids = loaded.tokenizer(texts, truncation=True, max_length=64)["input_ids"]
    logits, states = teacher_pass(str(teacher), texts, max_length=64, batch_size=8)
    assert states.shape == (20, 32) and states.dtype == torch.float16
    assert logits.shape == (20, LABEL_SPACE.size)
    with torch.inference_mode():
        for k in (0, 7, 19):
            alone = loaded.model(input_ids=torch.tensor([ids[k]]), output_hidden_states=True)
            assert torch.allclose(states[k].float(), alone.hidden_states[-1][0, 0], atol=2e-2)
            assert torch.allclose(logits[k], alone.logits[0], atol=1e-4)
    # Under bf16 autocast (the student's precision where bf16 is native): close to fp32, not the same.
    logits16, states16 = teacher_pass(str(teacher), texts, max_length=64, batch_size=8, bf16=True)
    assert torch.allclose(logits16, logits, atol=0.1) and not torch.equal(logits16, logits)
    assert torch.nn.functional.cosine_similarity(states16.float(), states.float()).min() > 0.99

    ds = SentenceDataset(load_split(mini_dataset, "train")[:20], loaded.tokenizer, 64)
    ds.hidden = states
    batch = Collator(loaded.tokenizer.pad_token_id)([ds[k] for k in (5, 2, 9)])
    assert torch.equal(batch["teacher_hidden"], states[[5, 2, 9]])

    def student(name: str, **overrides: object) -> Path:
        return train(
            tiny_train_config(
                mini_dataset,
                tmp_path / name,
                teacher=str(teacher),
                distill_augment=1,
                distill_hidden=1.0,
                epochs=1,
                **overrides,
            )
        )

    path = student("fast", student_embeddings=str(tiny_pretrained))
    from safetensors.torch import load_file

    keys = set(load_file(path / "model.safetensors"))
    assert keys and not any("projection" in k for k in keys)  # the projection stays behind
    assert load_tagger(path).model.config.hidden_size == 32
    assert "Sentence-state distillation: weight 1.0" in (path / "README.md").read_text()
    with pytest.raises(TokenizerMismatchError, match="--student_embeddings"):
        student("wordpiece")  # a WordPiece tokenizer trained on the data: other pieces
    with pytest.raises(ValueError, match="needs a trained checkpoint"):
        tiny_train_config(mini_dataset, tmp_path / "x", distill_hidden=1.0)


def test_moving_average_follows_early_weights_then_decays_slowly():
    from fintag.train.ema import averaged_model

    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = averaged_model(net, 0.5)
    seen = []
    for value in (1.0, 1.0, 1.0):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update_parameters(net)
        seen.append(ema.module.weight.item())
    # The first update copies the weights; the next two use the warm-up decay (1+n)/(10+n) = 2/11, 3/12,
    # below 0.5, so the average is at the new weights instead of holding on to the initial 0.
    assert seen == pytest.approx([1.0, 1.0, 1.0])
    with torch.no_grad():
        net.weight.fill_(0.0)
    for _ in range(10):
        ema.update_parameters(net)
    # Warm-up while (1+n)/(10+n) < 0.5 (n < 8), then the decay itself: the average keeps that share of 1.
    expected = math.prod(min(0.5, (1 + n) / (10 + n)) for n in range(3, 13))
    assert ema.module.weight.item() == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(0.5**10) and expected > 1e-4
    with pytest.raises(ValueError, match="--ema_decay"):
        averaged_model(net, 1.0)


def test_training_with_a_moving_average_exports_the_averaged_weights(tmp_path, mini_dataset):
    from safetensors.torch import load_file

    # The full embedding matrix, so that checkpoint and export hold the same tensors (the reachable-rows
    # default has its own test with a moving average).
    cfg = tiny_train_config(
        mini_dataset, tmp_path / "ema", epochs=1, ema_decay=0.9, save_every_steps=0, compact_embeddings=False
    )
    path = train(cfg)
    exported = load_file(path / "model.safetensors")
    (ckpt,) = (tmp_path / "ema" / "state").glob("ckpt-*")
    raw = load_file(ckpt / "model.safetensors")
    averaged = torch.load(ckpt / "custom_checkpoint_0.pkl", weights_only=True)
    assert averaged["n_averaged"].item() == 6  # one update per optimiser step: 96 sentences / 16
    moved = [k for k in exported if not torch.equal(exported[k], raw[k])]
    assert moved, "the export holds the raw weights, not the average"
    for k in exported:
        assert torch.equal(exported[k], averaged[f"module.{k}"]), k


def test_fused_optimizer_makes_the_per_tensor_update_with_the_projects_groups():
    from fintag.train.config import TrainConfig
    from fintag.train.optim import build_optimizer
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        **LABEL_SPACE.config_fields(),
    )  # fmt: skip
    runs = {}
    for fused in (False, True):
        torch.manual_seed(0)
        model = BertForSequenceClassification(config)
        start = torch.cat([p.detach().flatten() for p in model.parameters()])
        cfg = TrainConfig(model="some/pretrained", output_dir="/nonexistent", fused_optimizer=fused)
        opt = build_optimizer(model, cfg)
        assert bool(opt.defaults["fused"]) is fused
        # Decay only on matrices; the new head at head_lr_scale times the rate.
        rates = {(g["weight_decay"], g["lr"]) for g in opt.param_groups}
        assert rates == {(0.0, 1e-4), (0.01, 1e-4), (0.0, 1e-3), (0.01, 1e-3)}
        gen = torch.Generator().manual_seed(1)
        for _ in range(20):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=gen) * 1e-2
            opt.step()
        runs[fused] = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (runs[False] - start).abs().max() > 1e-3  # the steps did move the weights
    assert torch.allclose(runs[True], runs[False], atol=1e-6, rtol=0)


# ---------------------------------------------------------------- flags checked before any work


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--preset", "bogus"], "--preset must be one of tiny, small, fast, medium, base, not 'bogus'"),
        (["--learning_rate", "-1"], "--learning_rate must be positive"),
        (["--learning_rate", "nan"], "--learning_rate must be positive"),
        (["--num_threads", "-3"], "--num_threads must be 0 (all cores) or more"),
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--max_steps", "0"], "--max_steps must be -1 (no limit) or at least 1"),
        (["--batch_size", "0"], "--batch_size must be at least 1"),
        (["--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1"),
        (["--token_mask_prob", "1.5"], "--token_mask_prob must be between 0.0 and 1.0"),
        (["--dropout", "1"], "--dropout must be between 0.0 and 1.0 (below 1.0)"),
        (["--warmup_ratio", "-0.5"], "--warmup_ratio must be between 0.0 and 1.0"),
        (["--max_length", "100000"], "--max_length must be between 3 and 512"),
        (["--max_length", "2"], "--max_length must be between 3 and 512"),
        (["--model", "scratch", "--preset", "tiny", "--max_length", "300"], "256 positions of --preset tiny"),
        (["--head_lr_scale", "0"], "--head_lr_scale"),
        (["--weight_decay", "-0.1"], "--weight_decay must be 0 (off) or positive"),
        (["--patience", "0"], "--patience must be at least 1"),
        (["--seed", "-1"], "--seed must be between 0 and 4294967295"),
        (["--vocab_size", "0"], "--vocab_size must be at least 1"),
        (["--save_every_steps", "-5"], "--save_every_steps must be 0"),
        (["--distill_temperature", "inf"], "--distill_temperature must be a finite number"),
    ],
)
def test_train_refuses_a_bad_value_before_reading_data_or_writing_the_run(tmp_path, capsys, args, says):
    from fintag.cli.main import main

    run = tmp_path / "run"
    argv = ["train", "--output_dir", str(run), "--dataset_dir", str(tmp_path / "no_dataset"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err, err
    assert err.startswith("usage: fintag train") and "Traceback" not in err
    assert not run.exists()  # no state/, no train_config.json


def test_presets_are_checked_against_the_registry(monkeypatch):
    from fintag.model.presets import PRESETS, Preset
    from fintag.train.config import TrainConfig

    with pytest.raises(ValueError, match="--preset must be one of"):
        TrainConfig(preset="wide")
    monkeypatch.setitem(PRESETS, "wide", Preset(64, 1, 2, 128, max_position_embeddings=64))
    assert TrainConfig(model="scratch", preset="wide", max_length=64).preset == "wide"
    with pytest.raises(ValueError, match="64 positions of --preset wide"):
        TrainConfig(model="scratch", preset="wide", max_length=65)


def test_max_length_is_checked_against_the_base_models_positions_before_the_run(tmp_path, capsys):
    from fintag.cli.main import main
    from fintag.model.presets import usable_positions

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 64}))
    run = tmp_path / "run"
    argv = ["train", "--model", str(base), "--output_dir", str(run), "--dataset_dir", str(tmp_path / "none")]
    assert main([*argv, "--max_length", "100"]) == 2
    err = capsys.readouterr().err
    assert f"--max_length 100 is longer than the 64 positions of --model {base}" in err
    assert err.startswith("usage: fintag train") and not run.exists()
    # XLM-R numbers positions after its padding id: 514 embeddings, 512 usable.
    assert (
        usable_positions({"model_type": "xlm-roberta", "max_position_embeddings": 514, "pad_token_id": 1})
        == 512
    )
    assert usable_positions({"model_type": "bert", "max_position_embeddings": 512}) == 512
    assert usable_positions({"model_type": "bert"}) is None


def test_a_missing_base_model_gets_base_model_advice_before_the_run(tmp_path, caplog):
    from fintag.cli.main import main

    run = tmp_path / "run"
    missing = tmp_path / "nonexistent" / "model"
    argv = [
        "train",
        "--model",
        str(missing),
        "--output_dir",
        str(run),
        "--dataset_dir",
        str(tmp_path / "none"),
    ]
    assert main(argv) == 1
    (message,) = [r.getMessage() for r in caplog.records if str(missing) in r.getMessage()]
    assert message.startswith("--model: base model folder") and "does not exist" in message
    assert "hub id" in message and "fintag base" in message and "config.json" in message
    assert "written by `fintag train`" not in message
    assert not run.exists()


def test_token_masks_work_for_every_allowed_seed_and_keep_those_of_small_seeds():
    collate = Collator(0, mask_token_id=99, mask_prob=0.3, seed=2**32 - 1)
    collate.set_epoch(4)
    assert collate._uniform(123, 8).shape == (8,)  # overflowed the generator's 64-bit seed before
    small = Collator(0, mask_token_id=99, mask_prob=0.3, seed=42)
    small.set_epoch(1)
    g = torch.Generator().manual_seed((42 * 1_000_003 + 1) * 1_000_000_007 + 5)
    assert torch.equal(small._uniform(5, 8), torch.rand(8, generator=g))


def test_a_training_run_folder_as_teacher_is_named_with_its_own_flag(tmp_path, tiny_checkpoint_dir):
    from fintag.model.paths import ModelPathError
    from fintag.train.config import TrainConfig, check_model_fits

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint_dir, run / "model")
    cfg = TrainConfig(model="scratch", preset="tiny", teacher=str(run), distill_augment=1)
    with pytest.raises(ModelPathError) as info:
        check_model_fits(cfg)
    message = str(info.value)
    assert message.startswith("--teacher:") and f"pass --teacher {run / 'model'}" in message
    assert "--model" not in message


def test_a_missing_dataset_is_named_before_anything_is_written(tmp_path, caplog):
    from fintag.cli.main import main

    run = tmp_path / "run"
    argv = ["train", "--model", "scratch", "--preset", "tiny", "--output_dir", str(run)]
    assert main([*argv, "--dataset_dir", str(tmp_path / "none")]) == 1
    assert any("fintag data build" in r.getMessage() for r in caplog.records)
    assert not run.exists()
