"""Label Studio round trip for teams that label there.

- `fintag review export-ls`: tagged sentences (the JSONL of `fintag tag` or of the page's download) become
  Label Studio tasks, `{"data": {"text", ...}, "predictions": [...]}`, the model's labels pre-filled and the
  most uncertain sentences first; the labelling config (one Choices block per label group of the taxonomy)
  is written beside them.
- `fintag review import-ls`: a Label Studio JSON export becomes reviews, appended to a reviews file (the
  format `fintag serve` writes and `fintag data build --reviews` reads); re-importing the same export adds
  nothing (each review's id is `ls-<task>-<annotation>`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from fintag.data.fsutil import write_json, write_text
from fintag.data.normalize import normalize_text
from fintag.data.reviews import append_reviews
from fintag.data.split import sentence_id
from fintag.data.taxonomy import TAXONOMY, check_labels

logger = logging.getLogger(__name__)

TEXT_FIELD = "text"
MODEL_VERSION = "fintag"


class LabelStudioError(Exception):
    """A file that cannot be exported or imported; the message names it, the problem and the fix."""


@dataclass
class ExportConfig:
    tags: list[str] = field(
        default_factory=list,
        metadata={"help": "JSONL of tagged sentences (`fintag tag` output or the page's JSONL download)"},
    )
    out: str = field(default="labelstudio_tasks.json", metadata={"help": "where the tasks are written"})
    config_out: str = field(
        default="labelstudio_config.xml", metadata={"help": "where the labelling config is written"}
    )
    limit: int = field(default=0, metadata={"help": "export only the N most uncertain sentences (0: all)"})


@dataclass
class ImportConfig:
    annotations: str = field(default="", metadata={"help": "Label Studio export (JSON, a list of tasks)"})
    reviews: str = field(default="reviews.jsonl", metadata={"help": "reviews file to append to"})
    reviewer: str = field(default="labelstudio", metadata={"help": "recorded as each review's reviewer"})


def label_config() -> str:
    """Label Studio's labelling config: the text and one Choices block per label group."""
    blocks = [f'<View>\n  <Text name="{TEXT_FIELD}" value="${TEXT_FIELD}"/>']
    for g in TAXONOMY:
        choice = "multiple" if g.multi_label else "single-radio"
        required = "false" if g.multi_label else "true"
        options = "\n".join(f"    <Choice value={quoteattr(label)}/>" for label in g.labels)
        blocks.append(
            f'  <Header value={quoteattr(g.description)}/>\n  <Choices name="{g.name}" toName="{TEXT_FIELD}" '
            f'choice="{choice}" required="{required}">\n{options}\n  </Choices>'
        )
    return "\n".join(blocks) + "\n</View>\n"


def _uncertainty(record: dict[str, Any]) -> float:
    """The closest call over the label groups, 0..1 (as the page's "needs review" order)."""
    out = 0.0
    for g in TAXONOMY:
        scores = list(record[g.name]["scores"].values())
        if g.multi_label:
            out = max(out, *(1 - abs(2 * p - 1) for p in scores))
        else:
            top = sorted(scores, reverse=True)
            out = max(out, 1 - (top[0] - (top[1] if len(top) > 1 else 0.0)))
    return out


def _labels(record: dict[str, Any], group: Any) -> list[str]:
    value = record[group.name]
    return list(value["labels"]) if group.multi_label else [value["label"]]


def to_task(record: dict[str, Any]) -> dict[str, Any]:
    """One tagged sentence as a Label Studio task with the model's labels as its prediction."""
    result = [
        {
            "from_name": g.name,
            "to_name": TEXT_FIELD,
            "type": "choices",
            "value": {"choices": _labels(record, g)},
        }
        for g in TAXONOMY
        if _labels(record, g)
    ]
    unc = _uncertainty(record)
    return {
        "data": {
            TEXT_FIELD: record["text"],
            "sentence_id": sentence_id(normalize_text(record["text"])),
            "report_id": record.get("report_id", "report"),
            "start": record.get("start"),
            "end": record.get("end"),
            "lang": record.get("lang"),
            "uncertainty": round(unc, 4),
        },
        "predictions": [{"model_version": MODEL_VERSION, "score": round(1 - unc, 4), "result": result}],
    }


def read_tagged(paths: list[str]) -> list[dict[str, Any]]:
    """The tagged sentences of JSONL files (summary records and headings are skipped)."""
    out: list[dict[str, Any]] = []
    for path in paths:
        p = Path(path)
        if not p.is_file():
            raise LabelStudioError(f"{p}: no such file; pass the JSONL that `fintag tag --out` wrote")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelStudioError(f"{p}:{n}: not JSON ({exc.msg}); pass a JSONL file") from exc
            if record.get("type", "sentence") != "sentence" or record.get("kind") == "heading":
                continue
            if not all(isinstance(record.get(g.name), dict) for g in TAXONOMY) or "text" not in record:
                raise LabelStudioError(
                    f"{p}:{n}: not a tagged sentence (needs text and {', '.join(g.name for g in TAXONOMY)}); "
                    "pass `fintag tag` JSONL output"
                )
            out.append(record)
    return out


def export_tasks(cfg: ExportConfig) -> int:
    """Write the tasks (most uncertain first) and the labelling config; return the number of tasks."""
    if not cfg.tags:
        raise LabelStudioError("no input: pass --tags FILE.jsonl (the output of `fintag tag`)")
    tasks = sorted((to_task(r) for r in read_tagged(cfg.tags)), key=lambda t: -t["data"]["uncertainty"])
    if cfg.limit > 0:
        tasks = tasks[: cfg.limit]
    write_json(cfg.out, tasks)
    write_text(cfg.config_out, label_config())
    logger.info("%d tasks written to %s, labelling config to %s", len(tasks), cfg.out, cfg.config_out)
    return len(tasks)


def _choices(results: list[dict[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in results:
        if r.get("type") == "choices" and isinstance(r.get("value", {}).get("choices"), list):
            out[r["from_name"]] = list(r["value"]["choices"])
    return out


def task_review(task: dict[str, Any], reviewer: str) -> dict[str, Any] | None:
    """The review of a task's latest submitted annotation (None when it has none)."""
    annotations = [
        a for a in task.get("annotations") or [] if not a.get("was_cancelled") and a.get("result") is not None
    ]
    if not annotations:
        return None
    annotation = max(
        annotations, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), a.get("id", 0))
    )
    chosen = _choices(annotation["result"])
    data = task.get("data") or {}
    text = normalize_text(str(data.get(TEXT_FIELD, "")))
    predicted = _choices((task.get("predictions") or [{}])[0].get("result", []))
    labels: dict[str, Any] = {}
    for g in TAXONOMY:
        picked = chosen.get(g.name)
        if g.multi_label:
            labels[g.name] = sorted(set(picked or []))
        elif picked:
            labels[g.name] = picked[0]
        else:
            labels[g.name] = g.default if g.default is not None else None
    model = {g.name: predicted.get(g.name) for g in TAXONOMY} if predicted else None
    return {
        "id": sentence_id(text),
        "review_id": f"ls-{task.get('id', 'task')}-{annotation.get('id', 'annotation')}",
        "report_id": str(data.get("report_id") or "labelstudio"),
        "text": text,
        "start": data.get("start"),
        "end": data.get("end"),
        "lang": data.get("lang"),
        **labels,
        "model": model,
        "reviewer": reviewer,
        "reviewed_at": str(annotation.get("updated_at") or datetime.now(timezone.utc).isoformat()),
    }


def import_annotations(cfg: ImportConfig) -> dict[str, int]:
    """Append the annotated tasks of a Label Studio export as reviews; return counts."""
    path = Path(cfg.annotations)
    if not path.is_file():
        raise LabelStudioError(f"{path}: no such file; pass --annotations with Label Studio's JSON export")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LabelStudioError(f"{path}: not JSON ({exc.msg}); export the project as JSON") from exc
    if not isinstance(tasks, list):
        raise LabelStudioError(f"{path}: expected a list of tasks; export the project as JSON (not JSON-MIN)")
    reviews: list[dict[str, Any]] = []
    problems: list[str] = []
    skipped = 0
    for n, task in enumerate(tasks, 1):
        review = task_review(task, cfg.reviewer)
        if review is None:
            skipped += 1
            continue
        bad = check_labels(review)
        if not review["text"]:
            bad.append("the task has no text")
        if bad:
            problems.append(f"task {task.get('id', n)}: " + "; ".join(bad))
            continue
        reviews.append(review)
    if problems:
        raise LabelStudioError(
            f"{path}: annotations that are not valid labels (nothing imported):\n  " + "\n  ".join(problems)
        )
    added = append_reviews(cfg.reviews, reviews)
    logger.info(
        "%d reviews appended to %s (%d already there, %d tasks without annotation)",
        added,
        cfg.reviews,
        len(reviews) - added,
        skipped,
    )
    return {"annotated": len(reviews), "added": added, "unannotated": skipped}
