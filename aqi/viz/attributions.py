"""Draw token attributions (:func:`aqi.probes.token_attributions`) as a heat map."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..probes.attributions import TokenAttribution
from .style import axes

__all__ = ["plot_token_attributions"]


def _clean(tok: str) -> str:
    return tok.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "⏎").replace("##", "")


def plot_token_attributions(
    attr: TokenAttribution, *, ax: Axes | None = None, span_only: bool = True
) -> Figure:
    """Token heat map: vermillion pushes toward unsafe, blue toward safe."""
    from matplotlib import colormaps
    from matplotlib.colors import TwoSlopeNorm

    if not isinstance(attr, TokenAttribution):
        raise TypeError(
            "attr must be a TokenAttribution (aqi.probes.token_attributions), got "
            f"{type(attr).__name__}"
        )

    a, b = attr.span if span_only else (0, len(attr.tokens))
    toks = [_clean(t) for t in attr.tokens[a:b]]
    s = attr.scores[a:b]
    lim = float(np.max(np.abs(s))) or 1.0
    norm = TwoSlopeNorm(0.0, -lim, lim)
    cmap = colormaps["RdBu_r"]
    per_line, n_lines = 12, (len(toks) + 11) // 12
    fig, ax = axes(ax, (7.0, 0.45 * n_lines + 0.9))
    ax.axis("off")
    ax.set_xlim(0, per_line)
    ax.set_ylim(n_lines, -0.6)
    for i, (t, v) in enumerate(zip(toks, s, strict=True)):
        x, y = i % per_line, i // per_line
        ax.text(x + 0.5, y + 0.35, t.strip() or "␣", ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round,pad=0.25", "fc": cmap(norm(v)), "ec": "none"})  # fmt: skip
    ax.set_title(
        f"token attributions at {attr.layer}: projection {attr.value:.2f} "
        f"(baseline {attr.baseline_value:.2f}; IG error {attr.delta:.2g})", fontsize=8,
    )  # fmt: skip
    return fig
