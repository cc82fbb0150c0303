"""Shared figure helpers: colour-blind-safe colours (Okabe–Ito), figures without pyplot,
names for people."""

from __future__ import annotations

from pathlib import PurePath

from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["COLORS", "MARKERS", "axes", "display_name", "label_color", "short"]

#: Okabe & Ito (2008) colour-blind-safe palette.
COLORS = {
    "safe": "#0072B2",  # blue
    "unsafe": "#D55E00",  # vermillion
    "neutral": "#999999",
    "accent": "#009E73",  # bluish green
    "null": "#CC79A7",  # reddish purple
    "warn": "#E69F00",  # orange
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def label_color(label: str) -> str:
    return COLORS.get(label, COLORS["neutral"])


def axes(ax: Axes | None, size: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax``'s figure, or a new standalone :class:`Figure` (not registered with pyplot,
    so nothing accumulates in global state) with one axes."""
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def short(layer: str) -> str:
    """Tick label of a layer: its last dotted component (``model.layers.12`` -> ``12``)."""
    return layer.rsplit(".", 1)[-1]


def display_name(name: str) -> str:
    """A model name for people: a local checkpoint path shows as its folder name.

    Examples
    --------
    >>> display_name("/ckpt/runs/llama-7b-dpo/")
    'llama-7b-dpo'
    >>> display_name("HuggingFaceTB/SmolLM2-135M-Instruct")
    'SmolLM2-135M-Instruct'
    >>> display_name("gpt2")
    'gpt2'
    """
    return PurePath(name).name if ("/" in name or "\\" in name) and name.strip("/") else name
