"""The Python API: `Tagger.load(path_or_hub_id)`, `tag(str | list[str])`, `tag_report(text)`.

Inputs are normalised with the project's one normaliser and reports split with its one splitter
(`fintag.data`), so tagging sees text exactly as training did.
"""

from __future__ import annotations

import logging
import os
from typing import Any, overload

import torch
from fintag.data.normalize import normalize_text
from fintag.data.split import Sentence, segment
from fintag.model.backend import load_backend
from fintag.model.inference import MAX_CHARS_PER_TOKEN, PAD_SLACK, batched_logits
from fintag.model.labels import LABEL_SPACE
from fintag.model.ngram import Blend, blended
from fintag.model.presets import usable_positions
from fintag.serve.summary import summarize

logger = logging.getLogger(__name__)


class EmptyReportError(ValueError):
    """A report with no sentence left after normalisation and filtering."""


class TaggerSettingsError(ValueError):
    """A setting the loaded model cannot run with (e.g. a max_length beyond its positions)."""


def max_length_problem(max_length: int, positions: int | None) -> str | None:
    """What is wrong with `max_length` for a model of `positions` usable positions (None: fine)."""
    if positions is None or max_length <= positions:
        return None
    return (
        f"max_length {max_length} is longer than the model's {positions} positions; pass --max_length "
        f"{positions} or less (the checkpoint was trained at its saved fintag_max_length)"
    )


def sentence_results(sentences: list[Sentence], preds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each split sentence's text as written in the report (`text`) and as the model read it
    (`text_normalized`), its offsets, kind and language, with its labels."""
    return [
        {
            "text": s.original,
            "text_normalized": s.text,
            "start": s.start,
            "end": s.end,
            "kind": s.kind,
            "lang": s.lang,
            **p,
        }
        for s, p in zip(sentences, preds, strict=True)
    ]


class Tagger:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        thresholds: dict[str, float] | None = None,
        batch_size: int = 16,
        max_length: int = 128,
        max_tokens: int = 2048,
        source: str = "<memory>",
        pad_slack: float = PAD_SLACK,
        blend: Blend | None = None,
    ) -> None:
        config = getattr(model, "config", None)
        keys = ("max_position_embeddings", "model_type", "pad_token_id")
        problem = max_length_problem(
            max_length, usable_positions({k: getattr(config, k, None) for k in keys})
        )
        if problem:
            raise TaggerSettingsError(problem)
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.thresholds = dict(thresholds or {})
        self.batch_size = batch_size
        self.max_length = max_length
        self.max_tokens = max_tokens
        self.pad_slack = pad_slack
        self.source = source
        self.blend = blend

    @classmethod
    def load(
        cls,
        name_or_path: str | os.PathLike[str],
        allow_pickle: bool = False,
        device: str | None = None,
        num_threads: int | None = None,
        quantize: bool | None = None,
        backend: str = "auto",
        **kwargs: Any,
    ) -> Tagger:
        """Load a trained checkpoint (folder or hub id) or a `fintag export` folder; refuses pickled weights
        and remote code.

        `backend`: `torch`, `onnx` (onnxruntime, CPU) or `auto` (`fintag.model.backend.DEFAULT_CPU_BACKEND`
        on a CPU, torch on a GPU). `quantize`: int8 linear layers on either backend (CPU only; faster,
        near-same labels); None takes `fintag.model.backend.DEFAULT_QUANTIZE`."""
        if num_threads:
            torch.set_num_threads(num_threads)
        loaded = load_backend(
            name_or_path, backend=backend, quantize=quantize, device=device, num_threads=num_threads,
            allow_pickle=allow_pickle,
        )  # fmt: skip
        # None (as `fintag tag` passes when --max_length is not given) means the checkpoint's.
        if kwargs.get("max_length") is None:
            kwargs["max_length"] = loaded.max_length
        kwargs.setdefault("blend", loaded.blend)
        return cls(loaded.model, loaded.tokenizer, loaded.thresholds, source=loaded.source, **kwargs)

    def token_count(self, text: str) -> int:
        """Tokens the model sees for `text` (special tokens included, truncation applied)."""
        clip = self.max_length * MAX_CHARS_PER_TOKEN
        ids = self.tokenizer(text[:clip], truncation=True, max_length=self.max_length)["input_ids"]
        return len(ids)

    def _predict(self, texts: list[str]) -> list[dict[str, Any]]:
        if not texts:  # a chunk of reports with no taggable sentence, or an empty list
            return []
        logits = batched_logits(
            self.model,
            self.tokenizer,
            texts,
            batch_size=self.batch_size,
            max_length=self.max_length,
            max_tokens=self.max_tokens,
            pad_slack=self.pad_slack,
        )
        return LABEL_SPACE.decode(blended(logits, texts, self.blend), self.thresholds)

    def tag_normalized(self, texts: list[str]) -> list[dict[str, Any]]:
        """Labels of texts already normalised by `fintag.data` (e.g. `Sentence.text`), in order, unchecked.

        The server's micro-batcher calls this with the sentences of many requests at once."""
        return self._predict(texts)

    @overload
    def tag(self, inputs: str) -> dict[str, Any]: ...
    @overload
    def tag(self, inputs: list[str]) -> list[dict[str, Any]]: ...

    def tag(self, inputs: str | list[str]) -> dict[str, Any] | list[dict[str, Any]]:
        """Labels of one sentence (a dict) or of a list of sentences (a list of dicts, same order)."""
        single = isinstance(inputs, str)
        items = [inputs] if single else inputs
        if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
            raise TypeError("tag() takes a str or a list of str")
        texts = [normalize_text(x) for x in items]
        empty = [i for i, t in enumerate(texts) if not t]
        if empty:
            raise ValueError(f"input(s) {empty[:10]} are empty after normalisation; pass sentences with text")
        out = self._predict(texts)
        return out[0] if single else out

    def tag_sentences(self, sentences: list[Sentence]) -> list[dict[str, Any]]:
        """Tag split sentences; each result carries its text, kind and offsets in the original report."""
        return sentence_results(sentences, self._predict([s.text for s in sentences]))

    def tag_reports(self, reports: list[tuple[str, str]], by_line: bool = False) -> list[dict[str, Any]]:
        """Tag several (report_id, text) pairs in one batched pass; one result per report.

        `by_line`: every non-empty line is one sentence, not split further (`segment(by_line=True)`)."""
        split = [(rid, segment(text, by_line=by_line)) for rid, text in reports]
        tagged = self.tag_sentences([s for _, seg in split for s in seg.sentences])
        out: list[dict[str, Any]] = []
        k = 0
        for rid, seg in split:
            mine = tagged[k : k + len(seg.sentences)]
            k += len(seg.sentences)
            out.append({"report_id": rid, "sentences": mine, "summary": summarize(mine, seg.title)})
        return out

    def tag_report(self, text: str, report_id: str = "report") -> dict[str, Any]:
        """Split a report with the project's splitter, tag every sentence, and add the summary."""
        if not isinstance(text, str):
            raise TypeError("tag_report() takes the report's text as str")
        result = self.tag_reports([(report_id, text)])[0]
        if not result["sentences"]:
            raise EmptyReportError(
                f"report {report_id!r} has no sentences after normalisation and filtering; check that it "
                "holds report text, not only tables or page furniture"
            )
        return result
