"""Multi-process capture: one shard file per rank, merged through HDF5 virtual datasets.

Under ``torchrun`` or ``accelerate launch`` (an initialised
``torch.distributed`` process group), :func:`aqi.capture` gives rank ``r``
of ``w`` the contiguous rows ``[r·N/w, (r+1)·N/w)`` and writes them to
``<stem>.rank<r>-of-<w><suffix>``; each shard is itself a complete,
resumable store. Rank 0 then writes ``<path>``: row metadata copied, each
activation dataset a *virtual dataset* mapping the shards' rows in order (no
activation is copied; keep the shard files beside it). ``merge_shards(...,
copy=True)`` writes a self-contained file instead.
"""

from __future__ import annotations

import copy as copy_module
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from ..jobs.guard import check_not_input
from ..jobs.lock import WriterLock
from ..jobs.parts import atomic_h5
from ._format import ROW_COLUMNS, write_rows
from ._parts import check_ours

if TYPE_CHECKING:
    from .store import ActivationStore

__all__ = ["current_shard", "merge_shards", "shard_path"]


def current_shard() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised ``torch.distributed`` group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_path(path: str | os.PathLike[str], rank: int, world: int) -> Path:
    """The file rank ``rank`` of ``world`` writes for a capture into ``path``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.rank{rank}-of-{world}{p.suffix}")


def _check_shards(paths: Sequence[Path], stores: Sequence[ActivationStore]) -> None:
    for p, s in zip(paths, stores, strict=True):
        if not s.complete:
            raise ValueError(f"shard {str(p)!r} is unfinished ({s.n_rows}/{s.n_total} rows)")

    def settings(s: ActivationStore) -> dict[str, object]:
        ident = s.provenance["identity"]
        # What each shard holds differs by design (its rows: prompts, data); how it was
        # captured must not.
        per_shard = ("prompts_sha256", "shard", "prompts", "data_sha256")
        return {k: v for k, v in ident.items() if k not in per_shard}

    first = stores[0]
    for p, s in zip(paths[1:], stores[1:], strict=True):
        if s.layers != first.layers or s.poolings != first.poolings or s.spans != first.spans:
            raise ValueError(
                f"shard {str(p)!r} has other layers, spans or poolings than {str(paths[0])!r}"
            )
        if s.format_version != first.format_version:
            raise ValueError(
                f"shard {str(p)!r} is in store format {s.format_version}, {str(paths[0])!r} in "
                f"{first.format_version}; capture the shards with one aqi version"
            )
        a, b = settings(first), settings(s)
        if a != b:
            keys = [k for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)]
            diff = "; ".join(f"{k}: {_short(a.get(k))} vs {_short(b.get(k))}" for k in keys)
            raise ValueError(f"shard {str(p)!r} was captured with other settings or another "
                             f"model than {str(paths[0])!r} ({diff})")  # fmt: skip


def _short(value: object, width: int = 24) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _fill(
    f: h5py.File, paths: Sequence[Path], stores: Sequence[ActivationStore], out: Path, copy: bool
) -> None:
    """Write the merged store into the open (temporary) file ``f``."""
    first = stores[0]
    sizes = [s.n_total for s in stores]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    n = int(bounds[-1])
    with h5py.File(paths[0], "r") as f0:
        for k, v in f0.attrs.items():
            f.attrs[k] = v
    prov = copy_module.deepcopy(first.provenance)
    ident = prov["identity"]
    if "shard" in ident:
        ident["shard"] = [0, 1, 0]
    for key in ("prompts_sha256", "prompts", "data_sha256"):  # per shard: one each
        if key in ident:
            ident[key] = [s.provenance["identity"].get(key) for s in stores]
    prov["merged_from"] = [p.name for p in paths]
    if isinstance(prov.get("prompts"), dict):  # captures; stores from arrays have none
        prov["prompts"]["n"] = n
    f.attrs["provenance"] = json.dumps(prov, sort_keys=True)
    f.attrs["n_rows"] = n
    write_rows(f, [row for s in stores for row in s.prompts()])
    columns = {
        "token_count": [s.token_counts for s in stores],
        "span_tokens": [s._row("span_tokens") for s in stores],  # every span's column
        "truncated": [s.truncated for s in stores],
    }
    for key in ROW_COLUMNS:
        f["rows"].create_dataset(key, data=np.concatenate(columns[key]))
    for li in first.layer_info:
        dims = {s.dim(li.name) for s in stores}
        if len(dims) != 1:
            raise ValueError(f"layer {li.name}: shards disagree on the dimension {sorted(dims)}")
        dim = dims.pop()
        for span, pool in [(sp, po) for sp in first.spans for po in first.poolings]:
            key = first._dataset(li.name, pool, span)
            if copy:
                ds = f.create_dataset(
                    key, shape=(n, dim), dtype="f4", chunks=True, compression="lzf", shuffle=True
                )
                for i, s in enumerate(stores):
                    ds[bounds[i] : bounds[i + 1]] = s.activations(li.name, pool, span)
            else:
                layout = h5py.VirtualLayout(shape=(n, dim), dtype="f4")
                for i, p in enumerate(paths):
                    # Relative names: HDF5 resolves them beside the merged file.
                    rel = os.path.relpath(p, out.parent)
                    layout[bounds[i] : bounds[i + 1]] = h5py.VirtualSource(
                        rel, key, shape=(sizes[i], dim)
                    )
                ds = f.create_virtual_dataset(key, layout)
            ds.attrs.update(li.h5_attrs(dim))
            if first.format_version >= 2:
                ds.attrs["span"] = span


def _merge(paths: Sequence[Path], out: Path, copy: bool) -> None:
    from .store import open_store

    check_not_input(out, paths)
    lock = WriterLock(out)
    try:
        check_ours(out)  # an existing aqi store is replaced (atomically); nothing else is
        stores = [open_store(p) for p in paths]
        try:
            _check_shards(paths, stores)
            atomic_h5(out, lambda f: _fill(f, paths, stores, out, copy))
        finally:
            for s in stores:
                s.close()
    finally:
        lock.release()


def merge_shards(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    copy: bool = False,
    distributed: bool = False,
) -> ActivationStore:
    """Combine finished shard stores, in the given order, into one store at ``out``.

    Parameters
    ----------
    paths : sequence of path-like
        Shard stores of one capture (same model, layers, poolings), in row order.
    out : path-like
        The merged store to write. An existing aqi store there is replaced; any
        other file (or one of ``paths``) is refused with a ``ValueError``.
    copy : bool, default False
        Copy activations into ``out`` (self-contained) instead of mapping them
        through virtual datasets.
    distributed : bool, default False
        Synchronise the ranks of an initialised ``torch.distributed`` group:
        rank 0 merges while the others wait. Set by :func:`aqi.capture`.

    Returns
    -------
    ActivationStore
        The merged store.
    """
    from .store import open_store

    if not paths:
        raise ValueError("paths is empty; pass the shard stores to merge")
    shard_paths = [Path(p) for p in paths]
    out_path = Path(out)
    if distributed:
        import torch.distributed as dist

        dist.barrier()
        if dist.get_rank() == 0:
            _merge(shard_paths, out_path, copy)
        dist.barrier()
    else:
        _merge(shard_paths, out_path, copy)
    return open_store(out_path)
