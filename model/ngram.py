"""The character n-gram half of a blended tagger.

A checkpoint may carry, beside its encoder, the TF-IDF baseline's character n-gram features and
logistic-regression heads (`ngram.json`: vectoriser settings and vocabulary; `ngram.safetensors`: idf,
weights and biases per label group; no pickle), and in its config the weight of the encoder per group
(`fintag_ngram_blend`). Its probabilities are then `w * encoder + (1 - w) * n-gram` per group, turned
back into logits (`LabelSpace.blend`) and decoded by the one logits-to-labels path with thresholds tuned
on the blend. Training chooses the weights on validation (`fintag.train.blend`); a weight of 1 is the
encoder alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fintag.data.taxonomy import TAXONOMY

logger = logging.getLogger(__name__)

NGRAM_JSON = "ngram.json"
NGRAM_WEIGHTS = "ngram.safetensors"
BLEND_KEY = "fintag_ngram_blend"
# A class the n-gram heads never saw in training gets this bias: probability 0 after the softmax.
ABSENT_BIAS = -1e4
# The vectoriser settings that are stored and restored (the rest are scikit-learn's defaults).
VECTORIZER_FIELDS = ("analyzer", "ngram_range", "lowercase", "sublinear_tf", "norm", "use_idf", "smooth_idf")


class NgramError(ValueError):
    """Damaged or missing n-gram files; the message says what to do."""


def _vectorizer(params: Mapping[str, Any], vocabulary: Sequence[str], idf: np.ndarray) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    kwargs = dict(params)
    kwargs["ngram_range"] = tuple(kwargs["ngram_range"])
    vec = TfidfVectorizer(vocabulary={term: i for i, term in enumerate(vocabulary)}, **kwargs)
    vec.idf_ = idf
    return vec


@dataclass
class NgramHeads:
    """TF-IDF character n-gram features and one linear head per label group, in taxonomy label order."""

    params: dict[str, Any]
    vocabulary: list[str]
    idf: np.ndarray
    weights: dict[str, np.ndarray]  # group -> (labels, features)
    biases: dict[str, np.ndarray]  # group -> (labels,)

    def __post_init__(self) -> None:
        self._vec = _vectorizer(self.params, self.vocabulary, self.idf)
        # Every group's head side by side in logit order, cast once: one sparse product per call.
        self._w = np.concatenate([self.weights[g.name] for g in TAXONOMY]).T.astype(np.float64)
        self._b = np.concatenate([self.biases[g.name] for g in TAXONOMY]).astype(np.float64)

    @classmethod
    def from_pipelines(cls, pipelines: Mapping[str, Any]) -> NgramHeads:
        """From fitted scikit-learn pipelines (TF-IDF vectoriser, then logistic regression, one-vs-rest for
        the multi-label group), one per group, all with the same vectoriser (`fintag.train.baseline`)."""
        vecs = [pipelines[g.name].steps[0][1] for g in TAXONOMY]
        first = vecs[0]
        vocabulary = [t for t, _ in sorted(first.vocabulary_.items(), key=lambda kv: kv[1])]
        for v in vecs[1:]:
            if v.vocabulary_ != first.vocabulary_ or not np.array_equal(v.idf_, first.idf_):
                raise NgramError("the groups' TF-IDF vectorisers differ; fit them on the same texts")
        params = {k: first.get_params()[k] for k in VECTORIZER_FIELDS}
        params["ngram_range"] = list(params["ngram_range"])
        weights: dict[str, np.ndarray] = {}
        biases: dict[str, np.ndarray] = {}
        n = len(vocabulary)
        for g in TAXONOMY:
            clf = pipelines[g.name].steps[-1][1]
            w = np.zeros((len(g.labels), n), dtype=np.float32)
            b = np.full(len(g.labels), ABSENT_BIAS, dtype=np.float32)
            if g.multi_label:
                for k, est in enumerate(clf.estimators_):
                    if hasattr(est, "coef_"):
                        w[k], b[k] = est.coef_[0], est.intercept_[0]
                    else:  # a label constant in training: scikit-learn's constant predictor
                        b[k] = -ABSENT_BIAS if float(np.ravel(est.y_)[0]) > 0.5 else ABSENT_BIAS
            else:
                rows = [g.labels.index(c) for c in clf.classes_]
                if len(rows) == 2:  # binary: scikit-learn keeps one row for the second class
                    w[rows[1]], b[rows[1]] = clf.coef_[0], clf.intercept_[0]
                    b[rows[0]] = 0.0
                else:
                    for k, r in enumerate(rows):
                        w[r], b[r] = clf.coef_[k], clf.intercept_[k]
            weights[g.name], biases[g.name] = w, b
        return cls(params, vocabulary, np.asarray(first.idf_, dtype=np.float64), weights, biases)

    def logits(self, texts: Sequence[str]) -> torch.Tensor:
        """The heads' decision values in the tagger's logit layout, (len(texts), labels)."""
        x = self._vec.transform(list(texts))
        return torch.from_numpy(np.asarray(x @ self._w) + self._b)

    def probabilities(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Per group: softmax (single-choice) or sigmoid (multi-label) probabilities, (len(texts), labels),
        through the label space's one logits-to-probabilities path."""
        from fintag.model.labels import LABEL_SPACE

        return {k: v.numpy() for k, v in LABEL_SPACE.probabilities(self.logits(texts)).items()}

    def save(self, folder: str | Path) -> None:
        """Write `ngram.json` and `ngram.safetensors` into `folder` (inside an atomic directory)."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        (folder / NGRAM_JSON).write_text(
            json.dumps({"vectorizer": self.params, "vocabulary": self.vocabulary}, ensure_ascii=False),
            encoding="utf-8",
        )
        tensors = {"idf": self.idf}
        for g in TAXONOMY:
            tensors[f"{g.name}.weight"] = self.weights[g.name]
            tensors[f"{g.name}.bias"] = self.biases[g.name]
        save_file(tensors, str(folder / NGRAM_WEIGHTS))

    @classmethod
    def load(cls, json_path: str | Path, weights_path: str | Path) -> NgramHeads:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            meta = json.loads(Path(json_path).read_text(encoding="utf-8"))
            tensors = load_file(str(weights_path))
            heads = cls(
                meta["vectorizer"],
                list(meta["vocabulary"]),
                tensors["idf"],
                {g.name: tensors[f"{g.name}.weight"] for g in TAXONOMY},
                {g.name: tensors[f"{g.name}.bias"] for g in TAXONOMY},
            )
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
            raise NgramError(
                f"the n-gram heads {json_path} / {weights_path} cannot be read ({type(exc).__name__}: "
                f"{str(exc)[:200]}); copy the checkpoint again or re-export it with `fintag train`"
            ) from exc
        for g in TAXONOMY:
            if heads.weights[g.name].shape != (len(g.labels), len(heads.vocabulary)):
                raise NgramError(
                    f"{weights_path}: the {g.name} head has shape {heads.weights[g.name].shape}, expected "
                    f"{(len(g.labels), len(heads.vocabulary))}; re-export the checkpoint with `fintag train`"
                )
        return heads


@dataclass
class Blend:
    """The n-gram heads and the encoder's weight per group: what turns a checkpoint's logits into the
    blended tagger's."""

    heads: NgramHeads
    weights: dict[str, float]

    def apply(self, logits: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        return self.mix(logits, self.heads.logits(texts))

    def mix(self, logits: torch.Tensor, ngram_logits: torch.Tensor) -> torch.Tensor:
        """The encoder's `logits` blended with the heads' `ngram_logits` (both in the tagger's layout)."""
        from fintag.model.labels import LABEL_SPACE

        probs = {k: v.numpy() for k, v in LABEL_SPACE.probabilities(ngram_logits).items()}
        return LABEL_SPACE.blend(logits, probs, self.weights)


def blended(logits: torch.Tensor, texts: Sequence[str], blend: Blend | None) -> torch.Tensor:
    """`logits` as the tagger decodes them: blended with the n-gram heads where the checkpoint has them."""
    return logits if blend is None else blend.apply(logits, texts)


def load_blend(target: str, config: Any) -> Blend | None:
    """The blend a checkpoint's config asks for (`fintag_ngram_blend`), with its n-gram files from the
    checkpoint folder or hub repository `target`; None when the config asks for none."""
    weights = getattr(config, BLEND_KEY, None)
    if not weights:
        return None
    from transformers.utils import cached_file

    try:
        paths = [cached_file(target, name) for name in (NGRAM_JSON, NGRAM_WEIGHTS)]
    except OSError as exc:
        raise NgramError(
            f"{target}'s config blends n-gram heads ({BLEND_KEY}) but {NGRAM_JSON} or {NGRAM_WEIGHTS} is "
            f"missing ({str(exc).splitlines()[0][:200]}); copy the whole checkpoint folder"
        ) from exc
    if any(p is None for p in paths):
        raise NgramError(
            f"{target}'s config blends n-gram heads ({BLEND_KEY}) but {NGRAM_JSON} or {NGRAM_WEIGHTS} is "
            "missing; copy the whole checkpoint folder"
        )
    missing = [g.name for g in TAXONOMY if g.name not in weights]
    if missing:
        raise NgramError(f"{target}: {BLEND_KEY} has no weight for {missing}; re-export with `fintag train`")
    return Blend(NgramHeads.load(paths[0], paths[1]), {k: float(v) for k, v in weights.items()})
