"""ONNX Runtime inference: export a tagger to ONNX, fuse its graph, quantise it to int8, and run it.

`export_onnx` writes the standard graph (`input_ids`, `attention_mask` -> `logits`, batch and sequence
dynamic) with torch's TorchScript exporter and eager attention: one file, and the attention pattern
onnxruntime's BERT optimiser recognises. `optimize_onnx` fuses attention, layer norms and GELU into
onnxruntime's contrib operators (still served by plain onnxruntime, no fintag needed); `quantize_onnx`
stores the matrix weights in int8 with dynamically quantised activations. `OnnxModel` wraps a session
so that `fintag.model.inference.batched_logits` runs it like a transformers model.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fintag.model.backend import INT8_FILE, ONNX_FILE

__all__ = [
    "INT8_FILE",
    "ONNX_FILE",
    "OnnxError",
    "OnnxModel",
    "export_onnx",
    "optimize_onnx",
    "quantize_onnx",
    "session",
]

logger = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask")
OUTPUT = "logits"
OPSET = 17


class OnnxError(RuntimeError):
    """An ONNX export or session that cannot be made; the message says why and what to do."""


def export_onnx(model: Any, path: str | Path) -> Path:
    """Write `model` (a transformers sequence classifier) as an ONNX graph at `path`; eval mode, CPU."""
    target = Path(path)
    model = model.eval()
    config = model.config
    previous = getattr(config, "_attn_implementation", None)
    # Eager attention exports as plain MatMul/Softmax, which onnxruntime fuses; SDPA would not fuse.
    config._attn_implementation = "eager"
    ids = torch.full((2, 8), 5, dtype=torch.long)
    mask = torch.ones_like(ids)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings about shape-dependent Python branches
            torch.onnx.export(
                model,
                (ids, mask),
                str(target),
                input_names=list(INPUTS),
                output_names=[OUTPUT],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    OUTPUT: {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
    except Exception as exc:
        raise OnnxError(
            f"exporting {type(model).__name__} to ONNX failed ({type(exc).__name__}: {exc}); use "
            "--backend torch for this model"
        ) from exc
    finally:
        config._attn_implementation = previous
    return target


def optimize_onnx(src: str | Path, dst: str | Path, config: Any) -> bool:
    """Fuse the BERT graph at `src` into onnxruntime's fused operators at `dst`. False (and `dst` a copy of
    `src`) when the graph is not one the optimiser knows."""
    from onnxruntime.transformers import optimizer

    heads, hidden = config.num_attention_heads, config.hidden_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimizer.optimize_model(
                str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
            )
        fused = optimized.get_fused_operator_statistics()
        optimized.save_model_to_file(str(dst))
    except Exception as exc:  # an unknown architecture: keep the plain graph, which runs as well
        logger.warning("onnxruntime's BERT optimiser failed (%s); keeping the unfused graph", exc)
        Path(dst).write_bytes(Path(src).read_bytes())
        return False
    logger.info("fused ONNX graph: %s", {k: v for k, v in fused.items() if v})
    return bool(fused.get("Attention") or fused.get("MultiHeadAttention"))


def quantize_onnx(src: str | Path, dst: str | Path) -> Path:
    """Dynamic int8 quantisation of the matrix products of the graph at `src` (weights int8, activations
    quantised per call), written to `dst`."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    # onnxruntime's quantiser logs a line per tensor through the root logger: keep its warnings only.
    root.setLevel(max(level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(src),
                str(dst),
                weight_type=QuantType.QInt8,
                # Fused contrib operators have no ONNX shape inference: their outputs are fp32 tensors.
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        root.setLevel(level)
    return Path(dst)


def session(path: str | Path, num_threads: int | None = None) -> Any:
    """An onnxruntime CPU session with full graph optimisation and `num_threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = num_threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise OnnxError(
            f"onnxruntime cannot load {path} ({type(exc).__name__}: {exc}); export it again with "
            "`fintag export`"
        ) from exc


@dataclass
class _Output:
    logits: torch.Tensor


class OnnxModel:
    """An onnxruntime session that `batched_logits` calls like a transformers model (CPU only)."""

    def __init__(self, sess: Any, config: Any, path: str = "<memory>") -> None:
        names = {i.name for i in sess.get_inputs()}
        if not set(INPUTS) <= names:
            raise OnnxError(f"{path} takes inputs {sorted(names)}, not {list(INPUTS)}: not a fintag export")
        self.session = sess
        self.config = config
        self.path = path
        self.device = torch.device("cpu")

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> _Output:
        feed = {
            "input_ids": input_ids.cpu().numpy().astype(np.int64, copy=False),
            "attention_mask": attention_mask.cpu().numpy().astype(np.int64, copy=False),
        }
        (logits,) = self.session.run([OUTPUT], feed)
        return _Output(logits=torch.from_numpy(logits))
