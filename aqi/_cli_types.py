"""The argument types of the command line: whole numbers in a range, resample counts,
probabilities, positive numbers, and layer and span lists. Each raises
:class:`argparse.ArgumentTypeError` naming what it expected and what it got."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

from ._stats import MAX_RESAMPLES, MIN_RESAMPLES, min_resamples


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[low, high]``."""
    accepted = f">= {low}" if high is None else f"in [{low}, {high}]"

    def whole(value: str) -> int:
        try:
            v = int(value)
        except ValueError:
            v = None
        if v is None or v < low or (high is not None and v > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {accepted}, got {value!r}")
        return v

    return whole


_positive_int = _whole(1)
#: Seeds feed numpy, torch and scikit-learn; scikit-learn takes [0, 2**32 - 1].
_seed = _whole(0, 2**32 - 1)


def _nproc(value: str) -> int:
    n = _positive_int(value)
    cores = os.cpu_count() or 1
    if n > max(cores, 1):
        raise argparse.ArgumentTypeError(
            f"expected a whole number in [1, {cores}] (the CPU cores here), got {value!r}"
        )
    return n


def _resamples(minimum: int, gives: str) -> Callable[[str], int]:
    """An argparse type: ``0`` (none) or a resample count in ``[minimum, MAX_RESAMPLES]``."""

    def resamples(value: str) -> int:
        try:
            v = int(value)
        except ValueError:
            v = None
        if v is None or not (v == 0 or minimum <= v <= MAX_RESAMPLES):
            why = (f": fewer than {minimum} cannot give {gives} (docs/audit.md, Resampling)"
                   if v is not None and 0 < v < minimum else "")
            raise argparse.ArgumentTypeError(
                f"expected 0 (none) or a whole number in [{minimum}, {MAX_RESAMPLES}], got "
                f"{value!r}{why}"
            )
        return v

    return resamples


_n_boot = _resamples(min_resamples(0.95), "a 95% interval")  # the CLI's level
_n_perm = _resamples(MIN_RESAMPLES, "a permutation p-value below 0.05")


def _open_unit(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        v = math.nan
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), e.g. 0.05, got {value!r}")
    return v


def _positive_float(value: str) -> float:
    try:
        v = float(value)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {value!r}")
    return v


def _layers_arg(value: str) -> list[str | int] | str:
    if value in ("blocks", "all", "embeddings", "final_norm"):
        return value
    out: list[str | int] = []
    for item in value.split(","):
        item = item.strip()
        out.append(int(item) if item.lstrip("-").isdigit() else item)
    return out


def _spans_arg(value: str) -> list[str]:
    """Comma-separated span names (checked where the capture starts: parsing imports no torch)."""
    return [v.strip() for v in value.split(",") if v.strip()]
