"""A seconds-to-train text classifier for the text path: TF-IDF + logistic regression.

Trained on the train split of :func:`aisec.data.text.python_docs` (which family of the Python
language reference a paragraph comes from). It exists so that explainability of text — LIME on
words, highlighted words in reports — runs end to end with no download.
"""

from __future__ import annotations

from typing import Any

from aisec.data.text import decode_texts, python_docs


def python_docs_classifier(*, seed: int = 0) -> Any:
    """A fitted scikit-learn ``Pipeline`` (word TF-IDF + logistic regression) over strings."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    train = python_docs(split="train")
    pipe = Pipeline([
        ("tfidf", TfidfVectorizer(sublinear_tf=True, min_df=2, token_pattern=r"(?u)\b\w+\b")),
        ("clf", LogisticRegression(C=10.0, max_iter=2000, random_state=seed)),
    ])
    return pipe.fit(decode_texts(train.x), train.y.numpy())


def python_docs_target(*, seed: int = 0) -> Any:
    """:func:`python_docs_classifier` as a :class:`~aisec.targets.text.TextPipelineTarget`."""
    from aisec.data.text import TOPIC_FAMILIES
    from aisec.targets.text import TextPipelineTarget

    return TextPipelineTarget(python_docs_classifier(seed=seed), num_classes=len(TOPIC_FAMILIES),
                              class_names=list(TOPIC_FAMILIES), name="python-docs-tfidf-logreg")
