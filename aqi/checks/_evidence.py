"""What every check shares: a readable count of prompts, finiteness, and the summary of
a check that cannot decide (*not computed*)."""

from __future__ import annotations

import numpy as np

from .._stats import min_resamples


def _need(n: float) -> str:
    return "more prompts than practical" if not np.isfinite(n) else f"about {n:.0f} prompts"


def _finite(*values: float) -> bool:
    return all(np.isfinite(v) for v in values)


def _not_computed(what: str, n: int | None, confidence: float = 0.95,
                  two_sided: bool = True) -> str:  # fmt: skip
    """The summary of a check that cannot decide: ``not computed (why)``."""
    if n is None:
        return f"not computed ({what} is undefined on this data)"
    need = min_resamples(confidence, two_sided=two_sided)
    asked = "no resamples asked" if n == 0 else f"{n} resamples, fewer than the {need} it needs"
    return f"not computed ({what}: {asked}); the check cannot decide without it"
