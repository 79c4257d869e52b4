"""What an epoch cost: sentences per second and peak memory (the GPU's allocator on CUDA, RSS always)."""

from __future__ import annotations

import resource
import sys

import torch


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process and, on CUDA, the peak tensor memory of `device`, in MiB."""
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    peak = {"peak_rss_mb": rss_kb / (1024 * 1024 if sys.platform == "darwin" else 1024)}
    if device.type == "cuda":
        peak["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak
