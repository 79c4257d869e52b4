"""Masked-language-model pre-training of a from-scratch encoder on the training text.

A BERT trained from random weights on a few thousand labelled sentences learns little language; a
short MLM phase on the same text first gives the classifier a better start (as domain-adaptive
pre-training does for real checkpoints)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


def pretrain_mlm(
    config: Any,
    tokenizer: Any,
    texts: Sequence[str],
    accelerator: Any,
    epochs: int,
    batch_size: int,
    max_length: int,
    learning_rate: float,
    seed: int,
) -> dict[str, torch.Tensor]:
    """Train `BertForMaskedLM` on `texts`; return the encoder's state dict (keys under `bert.`)."""
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    mlm = BertForMaskedLM(config)
    enc = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    items = [{"input_ids": ids} for ids in enc]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(items, batch_size=batch_size, shuffle=True, collate_fn=collator, generator=generator)
    optimizer = torch.optim.AdamW(mlm.parameters(), lr=learning_rate, weight_decay=0.01)
    total = epochs * math.ceil(len(loader))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * total), total)
    mlm, optimizer, loader, scheduler = accelerator.prepare(mlm, optimizer, loader, scheduler)
    mlm.train()
    bar = tqdm(
        total=epochs * len(loader), desc="MLM pre-training", disable=not accelerator.is_local_main_process
    )
    for epoch in range(epochs):
        running = 0.0
        for batch in loader:
            loss = mlm(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(mlm.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            running += loss.item()
            bar.update(1)
        logger.info("MLM epoch %d: loss %.3f", epoch + 1, running / max(1, len(loader)))
    bar.close()
    encoder = accelerator.unwrap_model(mlm).bert.state_dict()
    accelerator.free_memory()
    return {f"bert.{k}": v.detach().cpu().clone() for k, v in encoder.items()}
