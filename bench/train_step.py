"""Training step time of the two models `make demo` trains, on the CPU or a GPU (`--device`), in one run:

- the optimiser: fused AdamW (the project's, `--fused_optimizer true`) against torch's per-tensor loop (the
  named baseline, torch's CPU default), both fp32;
- the precision: bf16 autocast (`--mixed_precision bf16`) against fp32 (the named baseline, what `auto`
  picks on a CPU), both with the fused optimiser;
- the student's word embeddings: only the rows its sentences reach trained (`fintag.train.compact`, the
  project's default) against the whole matrix (the named baseline, `--compact_embeddings false`), both fp32,
  fused, with the fast tier's moving average of the weights.

The models:

- the default (e5-small's shape: 12 layers x 384, the base's 67,608-piece vocabulary, embeddings frozen,
  batch 16);
- the fast tier's student (preset fast: 4 layers x 128, the same vocabulary, batch 32).

    python bench/train_step.py --num_threads 2
    python bench/train_step.py --device cuda --default_batch_size 64   # on a GPU, a larger batch too

Random weights (speed only), the seed reports' sentences through the converted base's tokenizer, the
project's own optimiser (`fintag.train.optim`). Prints milliseconds per step (median of `--steps` after
3 warm-up steps; on a GPU the clock waits for the device), the ratios, and whether this CPU has native bf16
(elsewhere bf16 is emulated and slower).
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import corpus_sentences
from fintag.cli.args import parse_settings
from fintag.cli.main import setup_logging

logger = logging.getLogger("bench.train_step")


@dataclass
class TrainStepBenchConfig:
    steps: int = field(default=12, metadata={"help": "timed steps per path (after 3 warm-up steps)"})
    num_threads: int = field(default=0, metadata={"help": "torch threads (0: all cores)"})
    rounds: int = field(default=2, metadata={"help": "alternating rounds; each path's best median counts"})
    device: str = field(default="cpu", metadata={"help": "cpu or cuda"})
    default_batch_size: int = field(default=16, metadata={"help": "sentences per step of the default"})
    student_batch_size: int = field(default=32, metadata={"help": "sentences per step of the student"})


def _batches(tokenizer: Any, sentences: list[str], size: int, n: int, device: str) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        chunk = [sentences[(i * size + j) % len(sentences)] for j in range(size)]
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=128, return_tensors="pt")
        out.append({k: v.to(device) for k, v in enc.items()})
    return out


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _step_time(
    model: Any, optimizer: Any, batches: list[dict[str, Any]], bf16: bool, device: str, ema: Any = None
) -> float:
    import torch

    times = []
    for i, batch in enumerate(batches):
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        target = torch.zeros_like(logits, dtype=torch.float32)
        torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if ema is not None:
            ema.update_parameters(model)
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv: list[str]) -> None:
    import torch
    from fintag.model.base import resolve_model
    from fintag.model.checkpoint import build_from_scratch
    from fintag.model.labels import LABEL_SPACE
    from fintag.train.compact import train_reachable_rows
    from fintag.train.config import SCRATCH, TrainConfig
    from fintag.train.ema import averaged_model
    from fintag.train.loop import cpu_has_native_bf16
    from fintag.train.optim import build_optimizer
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    setup_logging()
    (cfg,) = parse_settings((TrainStepBenchConfig,), argv, Path(__file__).name)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    base_dir = resolve_model("e5-small")
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    # The default's shape with the tagger's head: the base's config plus the label space's fields.
    default_config = BertConfig(
        **{**BertConfig.from_pretrained(base_dir).to_dict(), **LABEL_SPACE.config_fields()}
    )
    sentences = corpus_sentences()
    n = cfg.steps + 3

    def default(bf16: bool, fused: bool = True) -> float:
        torch.manual_seed(0)
        model = BertForSequenceClassification(default_config).to(cfg.device)
        model.get_input_embeddings().weight.requires_grad_(False)
        model.train()
        optimizer = build_optimizer(model, TrainConfig(output_dir="/nonexistent", fused_optimizer=fused))
        batches = _batches(tokenizer, sentences, cfg.default_batch_size, n, cfg.device)
        return _step_time(model, optimizer, batches, bf16, cfg.device)

    def student(bf16: bool, fused: bool = True, compact: bool | None = None) -> float:
        """`compact` None: the full matrix, no moving average; True/False: with the fast tier's average,
        the reachable rows or the full matrix."""
        torch.manual_seed(0)
        model = build_from_scratch("fast", tokenizer).to(cfg.device)
        model.train()
        batches = _batches(tokenizer, sentences, cfg.student_batch_size, n, cfg.device)
        if compact:
            reachable = torch.cat([b["input_ids"].flatten().cpu() for b in batches]).unique().tolist()
            train_reachable_rows(model, [*reachable, *tokenizer.all_special_ids])
        train_cfg = TrainConfig(model=SCRATCH, output_dir="/nonexistent", fused_optimizer=fused)
        optimizer = build_optimizer(model, train_cfg)
        ema = averaged_model(model, 0.999) if compact is not None else None
        return _step_time(model, optimizer, batches, bf16, cfg.device, ema)

    results: dict[str, float] = {}
    for _ in range(cfg.rounds):
        for name, run in (
            ("default fp32 loop", lambda: default(False, fused=False)),
            ("default fp32", lambda: default(False)),
            ("default bf16", lambda: default(True)),
            ("student fp32 loop", lambda: student(False, fused=False)),
            ("student fp32", lambda: student(False)),
            ("student bf16", lambda: student(True)),
            ("student fp32 full matrix", lambda: student(False, compact=False)),
            ("student fp32 reachable rows", lambda: student(False, compact=True)),
        ):
            ms = run()
            results[name] = min(ms, results.get(name, float("inf")))
            logger.info("%s: %.0f ms per step", name, ms)
    threads = torch.get_num_threads()
    if cfg.device == "cuda":
        logger.info("device: %s", torch.cuda.get_device_name())
    else:
        logger.info("native bf16 on this CPU: %s; %d threads", cpu_has_native_bf16(), threads)
    sizes = {"default": cfg.default_batch_size, "student": cfg.student_batch_size}
    for model in ("default", "student"):
        loop, fp32, bf16 = results[f"{model} fp32 loop"], results[f"{model} fp32"], results[f"{model} bf16"]
        logger.info(
            "%s (batch %d, fp32): per-tensor AdamW %.1f, fused AdamW %.1f ms per step: fused %.2fx faster",
            model,
            sizes[model],
            loop,
            fp32,
            loop / fp32,
        )
        logger.info(
            "%s (batch %d): fp32 %.1f, bf16 %.1f ms per step: bf16 %.2fx faster; %.0f and %.0f sentences/s",
            model,
            sizes[model],
            fp32,
            bf16,
            fp32 / bf16,
            sizes[model] * 1000 / fp32,
            sizes[model] * 1000 / bf16,
        )

    full, rows = results["student fp32 full matrix"], results["student fp32 reachable rows"]
    logger.info(
        "student (batch %d, fp32, moving average): full embedding matrix %.1f, reachable rows %.1f ms per "
        "step: reachable rows %.2fx faster",
        sizes["student"],
        full,
        rows,
        full / rows,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
