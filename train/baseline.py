"""The baseline: TF-IDF over character n-grams with logistic regression, one model per label group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from fintag.data.taxonomy import TAXONOMY
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline


class TfidfBaseline:
    name = "TF-IDF char 1-3-gram + logistic regression"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.models: dict[str, Pipeline] = {}

    def _pipe(self, multi: bool) -> Pipeline:
        lr = LogisticRegression(max_iter=2000, C=10.0, class_weight="balanced", random_state=self.seed)
        vec = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 3), min_df=1, sublinear_tf=True, lowercase=True
        )
        return make_pipeline(vec, OneVsRestClassifier(lr) if multi else lr)

    def fit(self, records: Sequence[dict[str, Any]]) -> TfidfBaseline:
        texts = [r["text"] for r in records]
        for g in TAXONOMY:
            pipe = self._pipe(g.multi_label)
            if g.multi_label:
                y = np.array([[label in r[g.name] for label in g.labels] for r in records], dtype=int)
            else:
                y = np.array([r[g.name] for r in records])
            self.models[g.name] = pipe.fit(texts, y)
        return self

    def predict(self, texts: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
        preds: list[dict[str, Any]] = [{} for _ in texts]
        probs: dict[str, np.ndarray] = {}
        for g in TAXONOMY:
            model = self.models[g.name]
            p = model.predict_proba(list(texts))
            if g.multi_label:
                probs[g.name] = p
                for i, row in enumerate(p >= 0.5):
                    preds[i][g.name] = [label for label, on in zip(g.labels, row) if on]
            else:
                classes = list(model.classes_)
                full = np.zeros((len(texts), len(g.labels)))
                for k, c in enumerate(classes):
                    full[:, g.labels.index(c)] = p[:, k]
                probs[g.name] = full
                for i, k in enumerate(full.argmax(axis=1)):
                    preds[i][g.name] = g.labels[k]
        return preds, probs
