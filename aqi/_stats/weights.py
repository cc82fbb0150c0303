"""Bootstrap resamples as count matrices: plain, stratified (chunk by chunk), and replayable
(paired across passes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .._progress import bar

_CHUNK_ELEMENTS = 4_000_000  # ~32 MB of float64 weights per chunk


def resample_counts(
    m: int, b: int, rng: np.random.Generator, dtype: type = np.float64
) -> np.ndarray:
    """``(b, m)`` multiplicities of ``b`` bootstrap resamples of ``m`` rows (rows sum to ``m``).

    int32 draws (``Generator.integers``, exactly uniform; the same stream as int64
    draws) counted one resample at a time straight into ``dtype``: at 1,000 x 84k
    draws this is ~2.4x faster than one ``bincount`` over offset int64 indices (no
    700 MB index array, no cast). ``float32`` holds counts exactly.

    Examples
    --------
    >>> M = resample_counts(5, 3, np.random.default_rng(0))
    >>> M.shape, M.sum(axis=1).tolist()
    ((3, 5), [5.0, 5.0, 5.0])
    """
    draws = rng.integers(0, m, size=(b, m), dtype=np.int32)
    out = np.empty((b, m), dtype=dtype)
    for i in range(b):
        out[i] = np.bincount(draws[i], minlength=m)
    return out


def stratified_weights(
    sizes: Sequence[int],
    n_boot: int,
    rng: np.random.Generator,
    dtype: type = np.float64,
    *,
    chunk_elements: int = _CHUNK_ELEMENTS,
) -> Iterable[np.ndarray]:
    """Yield ``(b, sum(sizes))`` bootstrap multiplicities, chunk by chunk (``Σ b = n_boot``).

    Rows are resampled with replacement *within* each stratum (consecutive blocks
    of ``sizes`` rows), so every resample keeps the strata sizes — e.g. the
    in-distribution and the shifted set of a detection problem, or the safe and
    unsafe rows of an AQI. A chunk holds at most ``chunk_elements`` weights; within
    a chunk the strata are drawn one after the other. Over more than
    :data:`aqi._progress.ROWS_FOR_A_BAR` rows a terminal shows a progress bar.

    Examples
    --------
    >>> (W,) = stratified_weights([3, 2], 4, np.random.default_rng(0))
    >>> W.shape, W[:, :3].sum(1).tolist(), W[:, 3:].sum(1).tolist()
    ((4, 5), [3.0, 3.0, 3.0, 3.0], [2.0, 2.0, 2.0, 2.0])
    """
    total = int(sum(sizes))
    step = max(1, min(n_boot, chunk_elements // max(total, 1)))
    chunks = (
        np.concatenate([resample_counts(m, min(n_boot, a + step) - a, rng, dtype) for m in sizes],
                       axis=1)
        for a in range(0, n_boot, step)
    )  # fmt: skip
    return bar(chunks, desc="bootstrap", total=n_boot, unit="resample", rows=total, weight=len)


@dataclass(frozen=True)
class PairedWeights:
    """Stratified resampling weights that can be replayed: every pass yields the same chunks.

    Iterating draws the weights afresh from ``seed``, so two statistics evaluated in
    separate passes (two models, or every layer of a store, read one at a time) see
    exactly the same resamples — a *paired* bootstrap — without holding all
    ``n_boot × Σ sizes`` weights in memory.

    Examples
    --------
    >>> pw = PairedWeights(sizes=(3, 2), n_boot=4, seed=0)
    >>> all((a == b).all() for a, b in zip(pw, pw))
    True
    """

    sizes: tuple[int, ...]
    n_boot: int
    seed: int | None
    dtype: type = np.float64

    def __iter__(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return iter(stratified_weights(self.sizes, self.n_boot, rng, self.dtype))
