"""The store's side of the partial-folder protocol of :mod:`aqi.jobs.parts`.

What only an activation store adds to the shared protocol: which files at a store
path are ours (an aqi store, or a partial folder of aqi's files), and which
datasets each of its parts must hold (the activations and the per-row columns).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from ..jobs.guard import check_target
from ..jobs.parts import check_partial_ours, list_parts, partial_dir
from ..jobs.parts import damaged_parts as _damaged_parts
from ._format import ROW_COLUMNS, is_aqi_store

__all__ = ["check_ours", "damaged_parts", "list_parts", "partial_dir", "remove_ours"]


def _not_a_store(path: Path) -> str | None:
    return None if is_aqi_store(path) else "no readable 'format' attribute"


def check_ours(path: Path) -> None:
    """Refuse (``ValueError`` naming it) a ``path`` or partial folder that aqi may not replace.

    Replaceable: nothing, an aqi store, a partial folder holding only aqi's files.
    Anything else (a JSONL, a foreign or unreadable HDF5 file, a folder of other
    files) is not ours: ``overwrite`` never destroys it.
    """
    check_target(path, noun="store", problem=_not_a_store,
                 refusal="refusing to overwrite {path}: it is not an aqi activation store "
                         "({problem}); choose another path, or delete it yourself")  # fmt: skip
    check_partial_ours(path)


def remove_ours(path: Path) -> None:
    """Delete the store at ``path`` and its partial folder, after :func:`check_ours`."""
    check_ours(path)
    path.unlink(missing_ok=True)
    shutil.rmtree(partial_dir(path), ignore_errors=True)


def damaged_parts(d: Path, datasets: Iterable[str]) -> list[tuple[Path, str]]:
    """Parts in ``d`` that cannot be read back whole (``datasets``: the activation datasets
    each must hold, :func:`~._format.dataset_name`), with the reason for each."""
    return _damaged_parts(d, [*datasets, *(f"rows/{k}" for k in ROW_COLUMNS)])
