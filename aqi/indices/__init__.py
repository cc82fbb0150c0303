"""Cluster-quality indices and the Alignment Quality Index (AQI).

Index functions take ``(X, labels)``; :func:`score` and :func:`compare` work on
activation stores. Formulas and references: ``docs/aqi.md``.
"""

from .alignment_quality import AQIResult, alignment_quality_index
from .cluster import (
    DunnResult,
    calinski_harabasz_index,
    davies_bouldin_index,
    dunn_index,
    generalized_dunn_index,
    silhouette_index,
    xie_beni_index,
)
from .compare import AQIDifference, Comparison, compare
from .formulations import VARIANTS, aqi_variant, paper_pipeline, project_3d
from .layer_weights import LayerWeights, learn_layer_weights, sparsemax
from .lexical import bag_of_words
from .profile import AQIProfile, score
from .validation import DegenerateInputWarning

__all__ = [
    "VARIANTS",
    "AQIDifference",
    "AQIProfile",
    "AQIResult",
    "Comparison",
    "DegenerateInputWarning",
    "DunnResult",
    "LayerWeights",
    "alignment_quality_index",
    "aqi_variant",
    "bag_of_words",
    "calinski_harabasz_index",
    "compare",
    "davies_bouldin_index",
    "dunn_index",
    "generalized_dunn_index",
    "learn_layer_weights",
    "paper_pipeline",
    "project_3d",
    "score",
    "silhouette_index",
    "sparsemax",
    "xie_beni_index",
]
