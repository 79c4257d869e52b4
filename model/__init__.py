"""Model layer of fintag: the only code that knows how labels map to logits and how checkpoints load.

Importing it registers the transformers pipeline task `fintag-tagging` (`fintag.model.pipeline`). Loading
`transformers.pipelines` costs seconds, so the task is registered when that module is first imported
(by `transformers.pipeline(...)`), or at once if it already is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any

_PIPELINES = "transformers.pipelines"


def _register() -> None:
    from fintag.model.pipeline import register

    register()


class _RegisterOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps the real loader of `transformers.pipelines` to register fintag's task
    right after that module has run."""

    def find_spec(self, name: str, path: Any, target: ModuleType | None = None) -> Any:
        if name != _PIPELINES:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _register()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if _PIPELINES in sys.modules:
    _register()
elif not any(isinstance(f, _RegisterOnImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterOnImport())
