"""Label audit: where out-of-fold predictions of the pretrained encoder most confidently contradict the gold.

Every labelled sentence is embedded once by the base encoder (e5's recipe: `query: ` prefix, mean pooling,
L2 norm); a logistic regression per label group is cross-validated on those embeddings, so each sentence
gets probabilities from a model that never saw it; cleanlab's `find_label_issues` ranks the gold labels
those probabilities contradict most (self-confidence). The list is for a person to re-check against
`data/LABELS.md` and `data/GUIDELINES.md`: the audit never changes a label itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from fintag.data.build import load_split
from fintag.data.fsutil import write_jsonl
from fintag.data.taxonomy import TAXONOMY
from fintag.model.base import resolve_model
from fintag.train.config import AuditConfig

logger = logging.getLogger(__name__)


def embed(model_path: str, texts: list[str], batch_size: int = 64) -> np.ndarray:
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModel.from_pretrained(model_path, use_safetensors=True).eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for k in tqdm(range(0, len(order), batch_size), desc="embedding"):
            idx = order[k : k + batch_size]
            enc = tokenizer(
                [f"query: {texts[i]}" for i in idx],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
            out[idx] = pooled.numpy()
    return out


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: int, seed: int, multi: bool) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.multiclass import OneVsRestClassifier

    lr = LogisticRegression(max_iter=3000, C=4.0, class_weight="balanced", random_state=seed)
    clf = OneVsRestClassifier(lr) if multi else lr
    return cross_val_predict(clf, x, y, cv=folds, method="predict_proba")


def audit(cfg: AuditConfig) -> list[dict[str, Any]]:
    from cleanlab.filter import find_label_issues
    from cleanlab.multilabel_classification.filter import find_label_issues as find_multilabel_issues

    records = [
        {**r, "split": split}
        for split in ("train", "validation", "test")
        for r in load_split(cfg.dataset_dir, split)
    ]
    x = embed(resolve_model(cfg.model), [r["text"] for r in records])
    found: list[dict[str, Any]] = []
    for g in TAXONOMY:
        if g.multi_label:
            y = np.array([[label in r[g.name] for label in g.labels] for r in records], dtype=int)
            probs = out_of_fold(x, y, cfg.folds, cfg.seed, multi=True)
            ranked = find_multilabel_issues(
                labels=[[g.labels.index(lab) for lab in r[g.name]] for r in records],
                pred_probs=probs,
                return_indices_ranked_by="self_confidence",
            )
            for i in ranked:
                predicted = [lab for lab, p in zip(g.labels, probs[i]) if p >= 0.5]
                found.append(
                    _row(records[i], g.name, list(records[i][g.name]), predicted, probs[i], g.labels)
                )
        else:
            y = np.array([g.labels.index(r[g.name]) for r in records])
            present = sorted(set(y.tolist()))
            probs_present = out_of_fold(x, y, cfg.folds, cfg.seed, multi=False)
            probs = np.zeros((len(records), len(g.labels)))
            probs[:, present] = probs_present
            ranked = find_label_issues(
                labels=np.searchsorted(present, y),
                pred_probs=probs_present,
                return_indices_ranked_by="self_confidence",
            )
            for i in ranked:
                predicted = g.labels[int(probs[i].argmax())]
                found.append(_row(records[i], g.name, records[i][g.name], predicted, probs[i], g.labels))
    # Most confident contradictions first, over all groups.
    found.sort(key=lambda r: r["gold_probability"])
    top = found[: cfg.top]
    write_jsonl(Path(cfg.output), top)
    logger.info("%d suspected issues, the %d most confident written to %s", len(found), len(top), cfg.output)
    return top


def _row(
    record: dict[str, Any], group: str, gold: Any, predicted: Any, probs: np.ndarray, labels: tuple[str, ...]
) -> dict[str, Any]:
    if isinstance(gold, list):
        # The multi-label gold's probability: the least likely of its yes/no decisions.
        gold_p = float(min(p if lab in gold else 1 - p for lab, p in zip(labels, probs)))
    else:
        gold_p = float(probs[labels.index(gold)])
    return {
        "id": record.get("id"),
        "origin": record.get("origin"),
        "report_id": record.get("report_id"),
        "split": record["split"],
        "text": record["text"],
        "group": group,
        "gold": gold,
        "predicted": predicted,
        "gold_probability": round(gold_p, 4),
        "probabilities": {lab: round(float(p), 4) for lab, p in zip(labels, probs)},
    }
