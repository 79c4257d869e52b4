"""The inference backend setting shared by `Tagger.load`, `fintag tag` and `fintag serve`.

`backend`: `torch` (transformers in fp32, or int8 with `quantize`), `onnx` (onnxruntime on a fused graph,
or int8 with `quantize`), or `auto`: `DEFAULT_CPU_BACKEND` on a CPU, torch on a GPU. `quantize` picks int8
on either backend; its default is `DEFAULT_QUANTIZE`. The two constants are the one place to change the
default path (e.g. to int8 once its labels are shown to agree with fp32 on the trained default model:
`bench/backend_agreement.py`).

A folder written by `fintag export` (with `model.onnx`) runs on onnxruntime without torch weights; a
standard checkpoint asked to run on onnx is exported at load (seconds) into a cache (`onnx_cache_root()`,
keyed by the checkpoint's files and the library versions), so later loads and other workers reuse it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fintag.model.paths import cache_root, folder_stamp

if TYPE_CHECKING:
    from fintag.model.checkpoint import Loaded

# No torch or onnxruntime at import: settings classes read the defaults below.
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx"]
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx")
# The default inference path on a CPU. onnx gives the logits of torch fp32 (within 1e-5) 2-4x faster.
DEFAULT_CPU_BACKEND: Literal["torch", "onnx"] = "onnx"
# int8 by default? Only once its labels agree with fp32 on >= 99% of the test split per group.
DEFAULT_QUANTIZE = False


class BackendError(ValueError):
    """A backend that cannot run here; the message says why and what to do."""


def resolve_backend(backend: str, device: str | None) -> Literal["torch", "onnx"]:
    """The concrete backend for `backend` on `device` (None: CPU)."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    on_cpu = device is None or device == "cpu"
    if backend == "auto":
        return DEFAULT_CPU_BACKEND if on_cpu else "torch"
    if backend == "onnx" and not on_cpu:
        raise BackendError(f"the onnx backend runs on the CPU only, not {device}; use --backend torch")
    return backend  # type: ignore[return-value]


def is_onnx_export(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is a folder written by `fintag export`."""
    return (Path(path) / ONNX_FILE).is_file()


def write_onnx_files(model: Any, folder: Path, int8: bool) -> dict[str, Any]:
    """Export `model` into `folder`: the fused fp32 graph (`model.onnx`) and, if `int8`, its dynamic int8
    quantisation (`model.int8.onnx`). Returns what was done."""
    from fintag.model.onnx import export_onnx, optimize_onnx, quantize_onnx

    raw = folder / "model.raw.onnx"
    export_onnx(model, raw)
    fused = optimize_onnx(raw, folder / ONNX_FILE, model.config)
    raw.unlink()
    if int8:
        quantize_onnx(folder / ONNX_FILE, folder / INT8_FILE)
    return {"fused_attention": fused, "int8": int8}


def _load_export(path: Path, quantize: bool, num_threads: int | None) -> Loaded:
    from fintag.model.checkpoint import CheckpointError, CheckpointLabelError, Loaded
    from fintag.model.labels import LABEL_SPACE, LabelMismatchError
    from fintag.model.ngram import NgramError, load_blend
    from fintag.model.onnx import OnnxModel, quantize_onnx, session
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
        LABEL_SPACE.check_config(config)
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        blend = load_blend(str(path), config)
    except LabelMismatchError as exc:
        raise CheckpointLabelError(f"{path}: {exc}") from None
    except NgramError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} has {ONNX_FILE} but its config.json or tokenizer cannot be read ({exc}); export it "
            "again with `fintag export`"
        ) from exc
    graph = path / (INT8_FILE if quantize else ONNX_FILE)
    if not graph.is_file():
        with tempfile.TemporaryDirectory(prefix="fintag-onnx-") as tmp:
            logger.info("%s has no %s: quantising %s now", path, INT8_FILE, ONNX_FILE)
            sess = session(quantize_onnx(path / ONNX_FILE, Path(tmp) / INT8_FILE), num_threads)
    else:
        sess = session(graph, num_threads)
    model = OnnxModel(sess, config, str(graph))
    return Loaded(model=model, tokenizer=tokenizer, source=str(path), blend=blend)


def onnx_cache_root() -> Path:
    """Where graphs exported at load are kept: `$FINTAG_ONNX_CACHE`, else `onnx/` in fintag's cache
    (`$FINTAG_CACHE`, `$XDG_CACHE_HOME/fintag` or `~/.cache/fintag`)."""
    if os.environ.get("FINTAG_ONNX_CACHE"):
        return Path(os.environ["FINTAG_ONNX_CACHE"]).expanduser()
    return cache_root() / "onnx"


def _cache_folder(name_or_path: str | os.PathLike[str], quantize: bool) -> Path | None:
    """The cache folder of a local checkpoint's export: keyed by its path, the size and time of its files,
    and the torch/onnxruntime versions, so a changed checkpoint or library is exported again. None for a
    hub id."""
    import onnxruntime
    import torch

    stamp = folder_stamp(name_or_path)
    if stamp is None:
        return None
    path = Path(name_or_path).expanduser()
    key = repr((str(path.resolve()), stamp, torch.__version__, onnxruntime.__version__, quantize))
    return onnx_cache_root() / hashlib.sha256(key.encode()).hexdigest()[:24]


def _export_at_load(model: Any, cached: Path | None, quantize: bool, num_threads: int | None) -> Any:
    """Export `model` into the cache (atomically; a temporary folder when the cache is not writable) and
    open a session on it. Several server workers starting together may each export; the last one stays."""
    from fintag.data.fsutil import atomic_directory
    from fintag.model.onnx import session

    graph = INT8_FILE if quantize else ONNX_FILE
    if cached is not None:
        try:
            with atomic_directory(cached) as tmp:
                write_onnx_files(model, tmp, int8=quantize)
            return session(cached / graph, num_threads)
        except OSError as exc:
            logger.warning("cannot write the ONNX cache %s (%s); using a temporary folder", cached, exc)
    with tempfile.TemporaryDirectory(prefix="fintag-onnx-") as tmp:
        write_onnx_files(model, Path(tmp), int8=quantize)
        # The session holds the graph in memory: the files can go.
        return session(Path(tmp) / graph, num_threads)


def load_backend(
    name_or_path: str | os.PathLike[str],
    backend: str = "auto",
    quantize: bool | None = None,
    device: str | None = None,
    num_threads: int | None = None,
    allow_pickle: bool = False,
) -> Loaded:
    """A tagger's model and tokenizer on the chosen backend (see the module docstring)."""
    from fintag.model.checkpoint import Loaded, load_tagger
    from fintag.model.onnx import OnnxModel, session

    quantize = DEFAULT_QUANTIZE if quantize is None else quantize
    if is_onnx_export(name_or_path):
        if backend == "torch":
            raise BackendError(
                f"{name_or_path} is an ONNX export without torch weights; use --backend onnx (or auto), or "
                "pass the checkpoint it was exported from"
            )
        resolve_backend("onnx", device)
        return _load_export(Path(name_or_path), quantize, num_threads)
    kind = resolve_backend(backend, device)
    loaded = load_tagger(name_or_path, allow_pickle=allow_pickle, device=device)
    if kind == "torch":
        if quantize:
            from fintag.model.quantize import quantize_int8

            loaded.model = quantize_int8(loaded.model)
        return loaded
    graph = INT8_FILE if quantize else ONNX_FILE
    cached = _cache_folder(name_or_path, quantize)
    if cached is not None and (cached / graph).is_file():
        sess = session(cached / graph, num_threads)
        logger.info("ONNX graph of %s from the cache %s", loaded.source, cached)
    else:
        sess = _export_at_load(loaded.model, cached, quantize, num_threads)
        logger.info("%s exported to ONNX%s at load", loaded.source, " int8" if quantize else "")
    model = OnnxModel(sess, loaded.model.config, f"{loaded.source} (onnx{' int8' if quantize else ''})")
    return Loaded(model=model, tokenizer=loaded.tokenizer, source=loaded.source, blend=loaded.blend)
