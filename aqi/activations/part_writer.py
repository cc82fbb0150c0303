"""One window of a store's rows, written batch by batch into a part file: :class:`PartWriter`.

A :class:`~aqi.activations.writer.StoreWriter` opens a window with
:meth:`~aqi.activations.writer.StoreWriter.part`; the window's rows arrive in any order,
are written to a temporary file under ``<path>.partial/`` and become visible at once
when committed (the part-file protocol of :mod:`aqi.jobs.parts`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from ..jobs.parts import part_path, publish, tmp_name
from ._format import dataset_name, row_column_dtype, row_column_shape

if TYPE_CHECKING:  # the writer opens parts; a part only reads its folder, keys and spans
    from .writer import StoreWriter

__all__ = ["PartWriter"]


class PartWriter:
    """One window of rows, written batch by batch into a temporary part file.

    Rows may arrive in any order (capture sorts by length); memory stays at one batch.
    :meth:`commit` makes the window visible atomically (fsync, rename); leaving the
    ``with`` block without committing — an exception, a ``KeyboardInterrupt`` —
    deletes the temporary file, and a killed process leaves one that the next
    resume deletes.
    """

    def __init__(self, writer: StoreWriter, start: int, stop: int) -> None:
        self.writer = writer
        self.start, self.stop = start, stop
        self.final = part_path(writer.dir, start, stop)
        self.tmp = tmp_name(self.final)
        self._expected = set(writer.keys)
        self._written = np.zeros(stop - start, dtype=bool)
        self._seen: set[tuple[str, str]] = set()
        self._file: h5py.File | None = h5py.File(self.tmp, "w")

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, et: Any, e: Any, tb: Any) -> None:
        if self._file is not None:
            self.abort()

    def write(self, rows: np.ndarray, arrays: Mapping[tuple[str, str, str], np.ndarray]) -> None:
        """Write ``arrays[(layer, span, pooling)][i]`` to window row ``rows[i]`` (0-based)."""
        if self._file is None:
            raise RuntimeError("this part is already committed or aborted")
        rows = np.asarray(rows, dtype=np.int64)
        n = self.stop - self.start
        if rows.ndim != 1 or rows.size == 0 or rows.min() < 0 or rows.max() >= n:
            raise ValueError(f"rows must be indices in 0…{n - 1}, got {rows!r}")
        if set(arrays) != self._expected:
            missing = sorted(self._expected - set(arrays))[:3]
            extra = sorted(set(arrays) - self._expected)[:3]
            raise ValueError(
                f"write needs every (layer, span, pooling): missing {missing}, extra {extra}"
            )
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        if np.any(np.diff(sorted_rows) == 0):
            raise ValueError("rows contains duplicates")
        for (layer, sp, p), a in arrays.items():
            a = np.asarray(a, dtype=np.float32)
            if a.ndim != 2 or a.shape[0] != rows.size:
                raise ValueError(
                    f"array for ({layer!r}, {sp!r}, {p!r}) must be ({rows.size}, dim), got "
                    f"{a.shape}"
                )
            key = dataset_name(layer, p, sp)
            ds = self._file.get(key)
            if ds is None:
                ds = self._file.create_dataset(key, shape=(n, a.shape[1]), dtype="f4")
            elif ds.shape[1] != a.shape[1]:
                raise ValueError(f"{key}: dim {a.shape[1]}, earlier batches {ds.shape[1]}")
            if rows.size == n and np.array_equal(sorted_rows, np.arange(n)):
                ds[...] = a[order]
            else:
                ds[sorted_rows] = a[order]
        self._written[rows] = True

    def commit(
        self,
        *,
        token_count: np.ndarray | None = None,
        span_tokens: np.ndarray | None = None,
        truncated: np.ndarray | None = None,
    ) -> None:
        """Make the window visible: every row must have been written.

        ``span_tokens`` is ``(n, n_spans)`` (``(n,)`` is accepted for a single span).
        """
        if self._file is None:
            raise RuntimeError("this part is already committed or aborted")
        if not self._written.all():
            missing = np.flatnonzero(~self._written)[:5] + self.start
            raise RuntimeError(f"rows {missing.tolist()}… of this window were never written")
        n = self.stop - self.start
        defaults = {"token_count": -1, "span_tokens": -1, "truncated": False}
        cols = {"token_count": token_count, "span_tokens": span_tokens, "truncated": truncated}
        n_spans = len(self.writer.spans)
        for k, v in cols.items():
            shape = row_column_shape(k, n, n_spans)
            arr = np.full(shape, defaults[k]) if v is None else np.asarray(v)
            if k == "span_tokens" and arr.shape == (n,) and n_spans == 1:
                arr = arr.reshape(n, 1)
            if arr.shape != shape:
                raise ValueError(f"{k} must have shape {shape}, got {arr.shape}")
            self._file.create_dataset(f"rows/{k}", data=arr.astype(row_column_dtype(k)))
        self._file.close()
        self._file = None
        publish(self.tmp, self.final)

    def abort(self) -> None:
        """Discard the window (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)
