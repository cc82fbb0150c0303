"""Lexical control: surface-wording features of the prompt texts.

If safe and unsafe prompts separate as well in a bag of words as in a deep
layer, the "alignment" the deep layer shows may be nothing more than wording.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bag_of_words"]


def bag_of_words(texts: Sequence[str], *, max_features: int = 2048) -> np.ndarray:
    """L2-normalised TF-IDF of unigrams and bigrams, dense ``(n, ≤ max_features)`` float64.

    Examples
    --------
    >>> bag_of_words(["how do I bake bread", "how do I poison bread"]).shape
    (2, 10)
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(texts) == 0:
        raise ValueError("texts is empty")
    vec = TfidfVectorizer(ngram_range=(1, 2), max_features=max_features, sublinear_tf=True)
    return vec.fit_transform(list(texts)).toarray().astype(np.float64)
