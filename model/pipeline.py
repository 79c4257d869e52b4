"""The transformers pipeline task `fintag-tagging`, registered when `fintag.model` is imported.

    import fintag.model
    from transformers import pipeline
    tagger = pipeline("fintag-tagging", model="artifacts/run/model")
    tagger("投资评级:买入(维持)")        # the dict `Tagger.tag` returns
    tagger(["…", "…"], batch_size=16)    # a list of them, in order

`pipeline("text-classification")` on a fintag checkpoint applies a sigmoid to all twelve logits
(`problem_type` is multi-label) and ignores the label groups and the tuned thresholds; this task decodes
with `fintag.model.labels` (the one logits-to-labels path), normalises inputs with `fintag.data`'s
normaliser, truncates where the checkpoint was trained (`fintag_max_length`, as `Tagger`), and blends the
n-gram heads of a checkpoint that has them (`fintag.model.ngram`), so it returns what `Tagger` returns. No
remote code: the pipeline class is this module's, loaded only by importing fintag.
"""

from __future__ import annotations

import logging
from typing import Any

from fintag.data.normalize import normalize_text
from fintag.model.inference import MAX_CHARS_PER_TOKEN
from fintag.model.labels import LABEL_SPACE, THRESHOLDS_KEY, trained_max_length
from fintag.model.ngram import Blend, load_blend
from transformers import AutoModelForSequenceClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

logger = logging.getLogger(__name__)

TASK = "fintag-tagging"


class FintagTaggingPipeline(Pipeline):
    """Sentences in, fintag's per-group labels out (sentiment, themes, rating)."""

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    _blend: Blend | bool | None = False  # False: not looked up yet

    def blend(self) -> Blend | None:
        """The checkpoint's n-gram blend (None without one), read once."""
        if self._blend is False:
            self._blend = load_blend(self.model.name_or_path, self.model.config)
        return self._blend  # type: ignore[return-value]

    def __call__(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, list) and not inputs:  # transformers' Pipeline indexes the first item
            return []
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(self, max_length: int | None = None, **kwargs: Any):
        preprocess = {} if max_length is None else {"max_length": max_length}
        return preprocess, {}, {}

    def preprocess(self, inputs: str, max_length: int | None = None) -> dict[str, Any]:
        if max_length is None:
            max_length = trained_max_length(self.model.config)
        if not isinstance(inputs, str):
            raise TypeError(f"the {TASK} pipeline takes a str or a list of str, not {type(inputs).__name__}")
        text = normalize_text(inputs)
        if not text:
            raise ValueError(f"input {inputs[:40]!r} is empty after normalisation; pass sentences with text")
        clip = max_length * MAX_CHARS_PER_TOKEN
        enc = self.tokenizer(text[:clip], truncation=True, max_length=max_length, return_tensors="pt")
        inputs = dict(enc)
        blend = self.blend()
        if blend is not None:
            # The n-gram heads' logits travel as one row, batched and unbatched like the model's.
            inputs["ngram"] = blend.heads.logits([text])
        return inputs

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        ngram = model_inputs.pop("ngram", None)
        out = {"logits": self.model(**model_inputs).logits}
        if ngram is not None:
            out["ngram"] = ngram
        return out

    def postprocess(self, model_outputs: dict[str, Any]) -> dict[str, Any]:
        thresholds = dict(getattr(self.model.config, THRESHOLDS_KEY, {}) or {})
        logits = model_outputs["logits"]
        blend = self.blend()
        if blend is not None:
            logits = blend.mix(logits, model_outputs["ngram"])
        return LABEL_SPACE.decode(logits, thresholds)[0]


def register() -> None:
    """Register `fintag-tagging` with transformers (idempotent)."""
    if TASK in PIPELINE_REGISTRY.get_supported_tasks():
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK, pipeline_class=FintagTaggingPipeline, pt_model=AutoModelForSequenceClassification, type="text"
    )
    logger.debug("registered the %s pipeline task", TASK)
