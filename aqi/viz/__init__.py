"""Figures: projections, AQI profiles, comparison, index table, layer weights,
reliability diagrams, OOD histograms and ROC curves, jailbreak drift, token
attributions, the alignment series of a training run. Every function returns a matplotlib
``Figure`` built without pyplot's global state; colours are the Okabe–Ito colour-blind-safe
palette (safe = blue, unsafe = vermillion)."""

from ..probes.attributions import TokenAttribution, token_attributions
from .attributions import plot_token_attributions
from .figures import (
    index_table,
    plot_comparison,
    plot_drift,
    plot_index_table,
    plot_layer_weights,
    plot_ood_histogram,
    plot_profile,
    plot_reliability,
    plot_roc,
    plot_two_axes,
)
from .projection import plot_projection, project
from .style import COLORS
from .training import plot_alignment_series, read_series

__all__ = [
    "COLORS",
    "TokenAttribution",
    "index_table",
    "plot_alignment_series",
    "plot_comparison",
    "plot_drift",
    "plot_index_table",
    "plot_layer_weights",
    "plot_ood_histogram",
    "plot_profile",
    "plot_projection",
    "plot_reliability",
    "plot_roc",
    "plot_token_attributions",
    "plot_two_axes",
    "project",
    "read_series",
    "token_attributions",
]
