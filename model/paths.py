"""The one resolver of `--model` values, used by `fintag tag`, `evaluate`, `serve`, `train` and `Tagger.load`.

A value is a local folder when it exists or looks like a path; otherwise a hub id. Every way a local
value can be wrong gets one message, the same in every command: the folder does not exist (with the
folder it was looked for in), it is a file, it is a training run folder (use its `model/`), or it holds
no `config.json`. Nothing here imports torch or transformers.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

RUN_MODEL_SUBFOLDER = "model"  # where `fintag train --output_dir RUN` writes the checkpoint
# The checkpoint `make demo` trains: what `fintag tag`, `evaluate`, `export` and `serve` use unless told.
DEFAULT_CHECKPOINT = "artifacts/run/model"
# What the hub accepts as a repository id: "name" or "namespace/name".
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(?:/[\w.-]+)?$")


class ModelPathError(ValueError):
    """A `--model` value that names no usable checkpoint; the message says why and what to pass."""


def folder_stamp(path: str | os.PathLike[str]) -> list[tuple[str, int, int]] | None:
    """The name, size and modification time of each file of a checkpoint folder: a checkpoint retrained or
    replaced in place has another stamp. None for a hub id (not a folder)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return None
    return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())


def cache_root() -> Path:
    """fintag's cache folder on this machine (the converted base, ONNX graphs exported at load):
    `$FINTAG_CACHE`, else `$XDG_CACHE_HOME/fintag`, else `~/.cache/fintag`."""
    if os.environ.get("FINTAG_CACHE"):
        return Path(os.environ["FINTAG_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "fintag"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _in_hub_cache(repo_id: str) -> bool:
    """Whether a hub repository's config.json is in the local cache (what an offline load can use)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def looks_like_path(value: str) -> bool:
    """A value the hub could not take: it starts like a path or has more than one '/'."""
    return value.startswith((".", "/", "~", "\\")) or "\\" in value or _HUB_ID_RE.match(value) is None


# What to pass instead, by the `what` of `resolve_model`: a trained tagger comes from `fintag train`; a base
# model to fine-tune (`fintag train --model`) is a hub id, the converted default or any Hugging Face folder;
# an embedding source (`--student_embeddings`) is a local folder of either kind. ("e5-small" is
# fintag.model.base.BASE_ALIAS, spelled out: that module imports this one.)
_ADVICE = {
    "checkpoint": "the folder written by `fintag train` (the model/ subfolder of its --output_dir)",
    "base model": "a hub id (e.g. intfloat/multilingual-e5-small), e5-small (the default base, converted by "
    "`fintag base`), or a folder that holds config.json and safetensors weights",
    "embedding source": "e5-small (the default base, converted by `fintag base`), or a local folder that "
    "holds config.json, a tokenizer and safetensors weights (e.g. the model/ subfolder of a `fintag train` "
    "run)",
}


def advice(what: str) -> str:
    """What to pass instead of a bad `--model` value, for the kind of folder `what` names."""
    return _ADVICE.get(what, "a folder that holds config.json and safetensors weights")


def resolve_model(
    value: str | os.PathLike[str], what: str = "checkpoint", flag: str = "--model"
) -> tuple[str, bool]:
    """(value to load, is_local) for a `--model` value (or another flag's: `flag` names it in the fix);
    raises `ModelPathError` naming the fix.

    `what` names the expected folder in messages, and picks the advice: "checkpoint" (a trained tagger),
    "base model" (what `fintag train` fine-tunes) or "embedding source" (`--student_embeddings`)."""
    source = os.fspath(value)
    if not source.strip():
        if what == "checkpoint":
            raise ModelPathError(
                "the checkpoint is empty; pass --model with the folder written by `fintag train` (e.g. "
                "artifacts/run/model) or a hub id"
            )
        raise ModelPathError(f"the {what} is empty; pass {advice(what)}")
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelPathError(
                f"{source} is a file; pass the {what} folder that holds config.json "
                + ("(e.g. artifacts/run/model)" if what == "checkpoint" else f"({advice(what)})")
            )
        if (path / "config.json").is_file():
            return str(path), True
        nested = path / RUN_MODEL_SUBFOLDER
        if (nested / "config.json").is_file():
            raise ModelPathError(
                f"{source} is a training run folder; its {what} is {nested}: pass {flag} {nested}"
            )
        raise ModelPathError(
            f"{source} has no config.json, so it is not a Hugging Face {what} folder; pass {advice(what)}"
        )
    if looks_like_path(source) or (_offline() and not _in_hub_cache(source)):
        where = f"looked for {path.absolute()} from the current folder {Path.cwd()}"
        hub = (
            "; as a hub id it is not in the local hub cache, and HF_HUB_OFFLINE is set"
            if not looks_like_path(source)
            else ""
        )
        raise ModelPathError(
            f"{what} folder {source} does not exist ({where}){hub}. Pass {advice(what)}"
            + ("" if path.is_absolute() else ", or an absolute path")
        )
    return source, False
