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

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

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


def _merge(paths: Sequence[Path], out: Path, copy: bool) -> None:
    from .store import _atomic_h5, _check_h5, _dataset_name, _json_attr, open_store

    if out.exists():
        _check_h5(out, "merge output")
    stores = [open_store(p) for p in paths]
    try:
        for p, s in zip(paths, stores, strict=True):
            if not s.complete:
                raise ValueError(f"shard {str(p)!r} is unfinished ({s.n_rows}/{s.n_total} rows)")
        first = stores[0]
        for p, s in zip(paths[1:], stores[1:], strict=True):
            if s.layers != first.layers or s.poolings != first.poolings:
                raise ValueError(
                    f"shard {str(p)!r} has other layers or poolings than {str(paths[0])!r}"
                )
            a = {
                k: v
                for k, v in s.provenance["identity"].items()
                if k not in ("prompts_sha256", "shard")
            }
            b = {
                k: v
                for k, v in first.provenance["identity"].items()
                if k not in ("prompts_sha256", "shard")
            }
            if a != b:
                raise ValueError(
                    f"shard {str(p)!r} was captured with other settings or another model"
                )
        sizes = [s.n_total for s in stores]
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        n = int(bounds[-1])

        def fill(f: h5py.File) -> None:
            with h5py.File(paths[0], "r") as f0:
                for k, v in f0.attrs.items():
                    f.attrs[k] = v
                prov = _json_attr(f0, "provenance")
                row_keys = list(f0["rows"].keys())
            prov["identity"]["shard"] = [0, 1, 0]
            prov["identity"]["prompts_sha256"] = [
                s.provenance["identity"]["prompts_sha256"] for s in stores
            ]
            prov["merged_from"] = [p.name for p in paths]
            prov["prompts"]["n"] = n
            f.attrs["provenance"] = json.dumps(prov, sort_keys=True)
            f.attrs["n_rows"] = n
            g = f.create_group("rows")
            for key in row_keys:
                # The shards are already open (and complete): read through their handles.
                parts = [s._h5[f"rows/{key}"][()] for s in stores]
                ds0 = first._h5[f"rows/{key}"]
                d = g.create_dataset(key, data=np.concatenate(parts), dtype=ds0.dtype)
                d.attrs.update(dict(ds0.attrs))
            for li in first.layer_info:
                for pool in first.poolings:
                    key = _dataset_name(li.name, pool)
                    dims = {s.dim(li.name) for s in stores}
                    if len(dims) != 1:
                        raise ValueError(f"{key}: shards disagree on the dimension {sorted(dims)}")
                    dim = dims.pop()
                    if copy:
                        ds = f.create_dataset(
                            key,
                            shape=(n, dim),
                            dtype="f4",
                            chunks=True,
                            compression="lzf",
                            shuffle=True,
                        )
                        for i, s in enumerate(stores):
                            ds[bounds[i] : bounds[i + 1]] = s._h5[key][()]
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

        _atomic_h5(out, fill)
    finally:
        for s in stores:
            s.close()


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
        The merged store to write (replaced if it exists).
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
