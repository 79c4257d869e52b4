"""Batched inference: the one place that turns sentences into logits (used by training, evaluation,
batch tagging and the server). Sentences are sorted by length, padded per batch, batched by count and
by tokens, and run under `torch.inference_mode`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

MAX_CHARS_PER_TOKEN = 101


# A batch stops taking (shorter) sentences once the next one is this much shorter than the batch's longest:
# padding is then at most this fraction of the batch's tokens. Small calls (the server's micro-batches, a
# report of a few dozen sentences) otherwise pad like random batches; sorted, a whole archive barely pads.
PAD_SLACK = 0.125


def length_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int, pad_slack: float = PAD_SLACK
) -> Iterator[list[int]]:
    """Indices in batches of similar length: at most `batch_size` rows and `max_tokens` padded tokens each,
    and no row shorter than `(1 - pad_slack)` of the batch's longest (`pad_slack` 1: no such bound)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batch: list[int] = []
    width = 0
    for i in order:
        w = max(width, lengths[i])
        full = len(batch) >= batch_size or w * (len(batch) + 1) > max_tokens
        if batch and (full or lengths[i] < width * (1.0 - pad_slack)):
            yield batch
            batch, w = [], lengths[i]
        batch.append(i)
        width = w
    if batch:
        yield batch


def pad_rows(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows padded to the longest with `pad`: (input_ids, attention_mask)."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, row in enumerate(rows):
        ids[k, : len(row)] = torch.tensor(row)
        mask[k, : len(row)] = 1
    return ids, mask


def batched_logits(model: Any, tokenizer: Any, texts: Sequence[str], **options: Any) -> torch.Tensor:
    """Logits for `texts`, in input order, shape (len(texts), num_labels); `options` as `batched_outputs`."""
    return batched_outputs(model, tokenizer, texts, **options)[0]


@torch.inference_mode()
def batched_outputs(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int = 64,
    max_length: int = 128,
    max_tokens: int = 8192,
    progress: str | None = None,
    pad_slack: float = PAD_SLACK,
    first_token_states: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits for `texts` in input order, shape (len(texts), num_labels), and with `first_token_states`
    (a transformers model only) the last layer's state of each sentence's first token, (len(texts),
    hidden size): what a distilled student's sentence state learns (`fintag.train.hidden`)."""
    num_labels = model.config.num_labels
    states = torch.empty(len(texts), model.config.hidden_size) if first_token_states else None
    if not texts:
        return torch.empty(0, num_labels), states
    # Tokenizing a 1 MB run-on "sentence" takes seconds only to be truncated. WordPiece makes at least one
    # token of each word's first 100 characters (longer words become [UNK]) and normalised text has single
    # spaces, so the first `max_length * MAX_CHARS_PER_TOKEN` characters already give every kept token.
    clip = max_length * MAX_CHARS_PER_TOKEN
    enc = tokenizer([t[:clip] for t in texts], truncation=True, max_length=max_length)["input_ids"]
    lengths = [len(x) for x in enc]
    # transformers models and `fintag.model.onnx.OnnxModel` both say where their inputs go.
    device = getattr(model, "device", None) or next(model.parameters()).device
    pad = tokenizer.pad_token_id or 0
    out = torch.empty(len(texts), num_labels)
    bar = tqdm(total=len(texts), desc=progress, disable=progress is None)
    for idx in length_batches(lengths, batch_size, max_tokens, pad_slack):
        ids, mask = pad_rows([enc[i] for i in idx], pad)
        kwargs = {"output_hidden_states": True} if states is not None else {}
        result = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs)
        rows = torch.tensor(idx)
        out[rows] = result.logits.float().cpu()
        if states is not None:
            states[rows] = result.hidden_states[-1][:, 0].float().cpu()
        bar.update(len(idx))
    bar.close()
    return out, states
