"""Atomic parts: the ``<path>.partial/`` folder of an unfinished write, and resuming it.

While a job runs, the rows it has committed live next to its output in
``<path>.partial/``: ``manifest.h5`` written once, and one
``part-<start>-<stop>.h5`` per committed window, each written under a
temporary name, fsync'ed and atomically renamed (:func:`~aqi._outputs.publish`). A
part file therefore exists whole or not at all. On resume every part is read back
(:func:`damaged_parts`); one that cannot be read back whole (truncated, missing a
dataset, rows short) is moved beside the output as ``<output>.<part>.damaged``
(:func:`set_aside`) and its rows are written again; :func:`pending_ranges` says which
rows no part holds. A partial folder holding anything else is not ours
(:func:`check_partial_ours`).
"""

from __future__ import annotations

import itertools
import os
import re
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import h5py

from .._outputs import publish, tmp_name

__all__ = [
    "MANIFEST",
    "atomic_h5",
    "check_partial_ours",
    "damaged_parts",
    "list_parts",
    "manifest_path",
    "part_path",
    "partial_dir",
    "pending_ranges",
    "publish",
    "set_aside",
    "tmp_name",
]

MANIFEST = "manifest.h5"
_PART_RE = re.compile(r"^part-(\d{10})-(\d{10})\.h5$")
# Names a partial folder of ours may hold; anything else means it is not ours.
_OURS_RE = re.compile(r"^(manifest\.h5|part-\d{10}-\d{10}\.h5)(\.tmp-\d+)?$")


def partial_dir(path: Path) -> Path:
    """Where the committed parts of an unfinished write of ``path`` live."""
    return path.with_name(path.name + ".partial")


def manifest_path(path: Path) -> Path:
    """The manifest of an unfinished write of ``path``."""
    return partial_dir(path) / MANIFEST


def part_path(d: Path, start: int, stop: int) -> Path:
    """The part file holding rows ``[start, stop)`` in the partial folder ``d``."""
    return d / f"part-{start:010d}-{stop:010d}.h5"


def list_parts(d: Path) -> list[tuple[int, int, Path]]:
    """Committed parts of an unfinished write, sorted; overlapping parts are an error."""
    parts = []
    for p in d.iterdir() if d.is_dir() else ():
        m = _PART_RE.match(p.name)
        if m:
            parts.append((int(m.group(1)), int(m.group(2)), p))
    parts.sort()
    for (_a0, a1, pa), (b0, _, pb) in itertools.pairwise(parts):
        if b0 < a1:
            raise ValueError(f"store parts overlap: {pa.name} and {pb.name}; the store is damaged")
    return parts


def pending_ranges(d: Path, n_rows: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` of ``0 … n_rows`` that no committed part in ``d`` holds."""
    todo, at = [], 0
    for a, b, _ in list_parts(d):
        if a > at:
            todo.append((at, a))
        at = max(at, b)
    if at < n_rows:
        todo.append((at, n_rows))
    return todo


def atomic_h5(final: Path, fill: Callable[[h5py.File], Any]) -> None:
    """Write an HDF5 file under a temporary name, fsync it and rename it into place."""
    tmp = tmp_name(final)
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        publish(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _part_problem(path: Path, n: int, keys: Iterable[str]) -> str | None:
    """Why the part at ``path`` (``n`` rows, datasets ``keys``) is damaged; ``None`` if whole."""
    try:
        with h5py.File(path, "r") as f:
            for key in keys:
                if key not in f:
                    return f"{key} is missing"
                data = f[key][()]  # reads every chunk: truncation and checksums surface here
                if data.shape[0] != n:
                    return f"{key} has {data.shape[0]} rows, expected {n}"
    except (OSError, ValueError, KeyError) as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


def damaged_parts(d: Path, keys: Iterable[str]) -> list[tuple[Path, str]]:
    """Parts in ``d`` that cannot be read back whole, with the reason for each.

    ``keys`` are the datasets every part must hold, each with one entry per row of
    the part, checked in this order.
    """
    keys = list(keys)
    out = []
    for a, b, path in list_parts(d):
        problem = _part_problem(path, b - a, keys)
        if problem is not None:
            out.append((path, problem))
    return out


def set_aside(path: Path, reason: str) -> Path:
    """Move a damaged part beside the output as ``<output>.<part>.damaged`` and warn naming it.

    It is kept (outside the partial folder, which is removed once the job
    completes) so that the damage can be inspected.
    """
    stem = path.parent.name.removesuffix(".partial")
    target = path.parent.parent / f"{stem}.{path.name}.damaged"
    for i in itertools.count(1):
        if not target.exists():
            break
        target = path.parent.parent / f"{stem}.{path.name}.damaged-{i}"
    os.replace(path, target)
    warnings.warn(
        f"part file {str(path)!r} is damaged ({reason}); moved it to {str(target)!r} and "
        "its rows will be captured again",
        stacklevel=3,
    )
    return target


def check_partial_ours(path: Path) -> None:
    """Refuse (``ValueError`` naming it) a partial folder of ``path`` holding files not ours."""
    d = partial_dir(path)
    if d.exists() and not (d.is_dir() and all(_OURS_RE.match(p.name) for p in d.iterdir())):
        raise ValueError(
            f"refusing to overwrite {str(d)!r}: it holds files an aqi capture did not write; "
            "choose another path, or delete it yourself"
        )
