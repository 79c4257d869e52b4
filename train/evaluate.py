"""`fintag evaluate`: the tagger against the TF-IDF baseline, per group, split, origin and language, and on
report sentences outside the corpus (`fintag.train.outside`).

Writes `eval/metrics.json`, `eval/report.md` and confusion matrices as PNG, so runs can be compared."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from fintag.data.build import available_splits, load_split, missing_split_message
from fintag.data.fsutil import write_json, write_text
from fintag.data.taxonomy import TAXONOMY, LabelGroup
from fintag.train.baseline import TfidfBaseline
from fintag.train.config import EvalConfig
from fintag.train.metrics import all_metrics
from fintag.train.outside import OUTSIDE, SLICE_KEYS, OutsideError, load_outside, resolve_outside
from fintag.train.probe import load_probe, probe_report, resolve_probe, score_probe

logger = logging.getLogger(__name__)


def _slices(records: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {"all": list(range(len(records)))}
    for key in keys:
        for i, r in enumerate(records):
            out.setdefault(f"{key}={r[key]}", []).append(i)
    return out


def _plot_confusions(metrics: dict[str, Any], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(22, 4.5))
    panels: list[tuple[LabelGroup, str, np.ndarray, list[str]]] = []
    for g in TAXONOMY:
        m = metrics[g.name]["confusion"]
        if g.multi_label:
            for label in g.labels:
                panels.append((g, f"themes: {label}", np.array(m[label]), ["no", "yes"]))
        else:
            panels.append((g, g.name, np.array(m), list(g.labels)))
    for ax, (_, name, cm, ticks) in zip(axes, panels):
        ax.imshow(cm, cmap="Blues")
        ax.set_title(name, fontsize=10)
        ax.set_xticks(range(len(ticks)), ticks, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(ticks)), ticks, fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("gold", fontsize=8)
        for (i, j), v in np.ndenumerate(cm):
            ax.text(
                j,
                i,
                str(v),
                ha="center",
                va="center",
                fontsize=8,
                color="black" if v < cm.max() / 2 else "white",
            )
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _row(name: str, model: float, baseline: float) -> str:
    return f"| {name} | {model:.4f} | {baseline:.4f} | {model - baseline:+.4f} |"


def side_by_side(results: dict[str, Any], split: str) -> str:
    rows = [
        f"| {split} | model macro-F1 | baseline macro-F1 | Δ |",
        "| --- | --- | --- | --- |",
    ]
    m, b = results[split]["model"]["all"], results[split]["baseline"]["all"]
    for g in TAXONOMY:
        rows.append(_row(g.name, m[g.name]["macro_f1"], b[g.name]["macro_f1"]))
    rows.append(_row("themes micro-F1", m["themes"]["micro_f1"], b["themes"]["micro_f1"]))
    rows.append(_row("mean", m["mean_macro_f1"], b["mean_macro_f1"]))
    return "\n".join(rows)


def _heading(name: str, outside: Path | None) -> str:
    if name == OUTSIDE and outside is not None:
        return f"## {name}: report sentences outside the corpus (`{outside.name}`, in no split)"
    return f"## {name}"


def _report(
    results: dict[str, Any], cfg: EvalConfig, sets: list[str], probe: Path | None, outside: Path | None
) -> str:
    lines = [
        "# fintag evaluation",
        "",
        f"Model: `{cfg.model}`. Baseline: {TfidfBaseline.name}, trained on the same train split.",
        f"Dataset: `{cfg.dataset_dir}`. Generated {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
    ]
    for split in sets:
        lines += [_heading(split, outside), "", side_by_side(results, split), ""]
        lines += ["### By slice (macro-F1: sentiment / themes / rating; model vs baseline)", ""]
        lines += ["| slice | n | model | baseline |", "| --- | --- | --- | --- |"]
        for name, m in results[split]["model"].items():
            b = results[split]["baseline"][name]
            fm = " / ".join(f"{m[g.name]['macro_f1']:.3f}" for g in TAXONOMY)
            fb = " / ".join(f"{b[g.name]['macro_f1']:.3f}" for g in TAXONOMY)
            lines.append(f"| {name} | {m['sentiment']['n']} | {fm} | {fb} |")
        lines += [
            "",
            "### Per class (model)",
            "",
            "| group | label | precision | recall | F1 | support |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for g in TAXONOMY:
            for label, pc in results[split]["model"]["all"][g.name]["per_class"].items():
                lines.append(
                    f"| {g.name} | {label} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} "
                    f"| {pc['support']} |"
                )
        lines += ["", "### Calibration (expected calibration error, 10 bins)", ""]
        for g in TAXONOMY:
            lines.append(
                f"- {g.name}: model {results[split]['model']['all'][g.name]['ece']:.4f}, "
                f"baseline {results[split]['baseline']['all'][g.name]['ece']:.4f}"
            )
        lines += ["", f"![confusion matrices, model, {split}](confusion_{split}_model.png)", ""]
        lines += [f"![confusion matrices, baseline, {split}](confusion_{split}_baseline.png)", ""]
    if probe is not None:
        lines += probe_report(results["probe"], probe)
    return "\n".join(lines)


class SplitError(ValueError):
    """A `--splits` name the dataset does not have (it has others): a usage error naming the valid ones."""


def check_splits(cfg: EvalConfig) -> list[str]:
    """The splits to evaluate, each one the dataset has. Raises `SplitError` for a name the dataset lacks
    (naming the splits it has), `FileNotFoundError` when there is no dataset (or no train split, which
    the baseline learns from)."""
    splits = cfg.split_names
    have = available_splits(cfg.dataset_dir)
    if have:
        unknown = [s for s in splits if s not in have]
        if unknown:
            example = ",".join(s for s in have if s != "train") or have[0]
            raise SplitError(
                f"--splits names {', '.join(map(repr, unknown))}, which {cfg.dataset_dir} does not have; its "
                f"splits are {', '.join(have)} (e.g. --splits {example})"
            )
    for split in ("train", *splits):
        if not (Path(cfg.dataset_dir) / f"{split}.jsonl").is_file():
            raise FileNotFoundError(missing_split_message(cfg.dataset_dir, split))
    return splits


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    from fintag.model.checkpoint import load_tagger
    from fintag.model.inference import batched_logits
    from fintag.model.labels import decode_records
    from fintag.model.ngram import blended

    splits = check_splits(cfg)  # a bad name fails before the model loads
    probe = resolve_probe(cfg.probe)
    probe_records = load_probe(probe) if probe is not None else []  # a bad probe fails before any work
    outside = resolve_outside(cfg.outside)
    if outside is not None and OUTSIDE in splits:
        raise OutsideError(
            f"--splits names {OUTSIDE!r}, the name the outside sentences' results take; rename that split, "
            "or pass --outside none"
        )
    outside_records = load_outside(outside) if outside is not None else []  # so does a bad outside file
    loaded = load_tagger(cfg.model, allow_pickle=cfg.allow_pickle)
    train_records = load_split(cfg.dataset_dir, "train")
    baseline = TfidfBaseline().fit(train_records)

    def predict(texts: list[str]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        logits = batched_logits(
            loaded.model, loaded.tokenizer, texts, batch_size=cfg.batch_size, max_length=loaded.max_length
        )
        return decode_records(blended(logits, texts, loaded.blend).numpy(), loaded.thresholds)

    out = Path(cfg.output_dir)
    results: dict[str, Any] = {}
    sets = [(split, load_split(cfg.dataset_dir, split), ("origin", "lang")) for split in splits]
    if outside is not None:
        sets.append((OUTSIDE, outside_records, SLICE_KEYS))
    for split, records, keys in sets:
        texts = [r["text"] for r in records]
        m_pred, m_prob = predict(texts)
        b_pred, b_prob = baseline.predict(texts)
        results[split] = {}
        for who, pred, prob in (("model", m_pred, m_prob), ("baseline", b_pred, b_prob)):
            results[split][who] = {
                name: all_metrics(
                    [records[i] for i in idx], [pred[i] for i in idx], {k: v[idx] for k, v in prob.items()}
                )
                for name, idx in _slices(records, keys).items()
            }
            _plot_confusions(
                results[split][who]["all"], f"{who} on {split}", out / f"confusion_{split}_{who}.png"
            )
    if probe is not None:
        texts = [r["text"] for r in probe_records]
        results["probe"] = {
            who: score_probe(probe_records, [p["rating"] for p in pred_fn(texts)[0]])
            for who, pred_fn in (("model", predict), ("baseline", baseline.predict))
        }
        m, b = results["probe"]["model"], results["probe"]["baseline"]
        logger.info(
            "rating probe (%s): model %d/%d, baseline %d/%d",
            probe.name,
            m["correct"],
            m["n"],
            b["correct"],
            b["n"],
        )
    write_json(out / "metrics.json", {"model": cfg.model, "baseline": TfidfBaseline.name, "results": results})
    sets_done = [name for name, _, _ in sets]
    write_text(out / "report.md", _report(results, cfg, sets_done, probe, outside))
    logger.info("wrote %s and %s", out / "metrics.json", out / "report.md")
    return results
