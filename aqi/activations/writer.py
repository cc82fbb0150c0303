"""Writing activation stores: :class:`StoreWriter`, :func:`store_from_arrays`.

A writer commits rows window by window into ``<path>.partial/`` (the protocol
of :mod:`aqi.jobs.parts`; each window is a :class:`~aqi.activations.part_writer.PartWriter`,
importable from here too) and consolidates them into ``<path>`` when every row is in;
every file is written under a temporary name and renamed only when complete.
While it lives it holds ``<path>.lock``, so a second writer on the same path is
refused. ``overwrite`` replaces only an aqi store (or its partial folder),
never another file; on resume, part files that cannot be read back whole are
set aside (``*.damaged``) and their rows captured again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..jobs.closing import Closing
from ..jobs.guard import check_not_input
from ..jobs.lock import WriterLock
from ..jobs.parts import (
    atomic_h5,
    list_parts,
    manifest_path,
    partial_dir,
    pending_ranges,
    set_aside,
)
from ..prompts.prompt_set import PromptSet
from ._format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    GIVEN_SPAN,
    ROW_COLUMNS,
    LayerInfo,
    chunk_rows,
    dataset_name,
    json_attr,
    open_h5,
    row_column_dtype,
    row_column_shape,
    write_rows,
)
from ._parts import check_ours, damaged_parts, remove_ours
from .part_writer import PartWriter
from .store import ActivationStore, open_store

__all__ = ["PartWriter", "StoreWriter", "check_not_input", "check_store_target",
           "store_from_arrays"]


def check_store_target(path: str | os.PathLike[str]) -> None:
    """Refuse a store path aqi may not write, before any model loads: a folder, a file
    that is not an aqi store, a partial folder holding other files (``overwrite`` never
    replaces them)."""
    check_ours(Path(path))


class StoreWriter(Closing):
    """Writes a store through committed parts; resumes a compatible unfinished one.

    Used by :func:`aqi.capture`; also the way to build a store from arrays
    computed elsewhere (see :func:`store_from_arrays`).

    Parameters
    ----------
    path : path-like
        The final store path.
    rows : PromptSet
        The rows, in the order they will be stored.
    provenance : dict
        JSON-serialisable provenance; its ``"identity"`` entry decides whether an
        existing unfinished (or finished) store may be resumed.
    layers : sequence of LayerInfo
        The layers, in depth order.
    poolings : sequence of str
        The poolings.
    spans : sequence of str
        The spans (:mod:`.spans`; ``("given",)`` for arrays from elsewhere). Arrays are
        keyed ``(layer, span, pooling)``.
    overwrite : bool
        Delete an existing store (finished or not) instead of resuming it. Only an
        aqi store and its partial folder are ever deleted: any other file at
        ``path`` is refused with a ``ValueError`` naming it.
    compression : {"lzf", "gzip", None}
        HDF5 compression filter for activation datasets (with byte shuffle).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        rows: PromptSet,
        provenance: Mapping[str, Any],
        layers: Sequence[LayerInfo],
        poolings: Sequence[str],
        *,
        spans: Sequence[str] = (GIVEN_SPAN,),
        overwrite: bool = False,
        compression: str | None = "lzf",
    ) -> None:
        if compression not in ("lzf", "gzip", None):
            raise ValueError(f"compression={compression!r}; expected 'lzf', 'gzip' or None")
        self.path = Path(path)
        self.rows = rows
        self.provenance = dict(provenance)
        self.layers = tuple(layers)
        self.poolings = tuple(poolings)
        self.spans = tuple(spans)
        if not self.spans:
            raise ValueError("spans is empty; a store holds at least one span")
        self.keys = [
            (li.name, sp, p) for li in self.layers for sp in self.spans for p in self.poolings
        ]
        self.compression = compression
        self.dir = partial_dir(self.path)
        self.finished = False
        parent = self.path.parent
        if not parent.is_dir():
            raise FileNotFoundError(
                f"directory {str(parent)!r} for store {str(self.path)!r} does not exist"
            )
        if not os.access(parent, os.W_OK):
            raise PermissionError(
                f"cannot write the store {str(self.path)!r}: {str(parent)!r} is not writable"
            )
        if self.path.is_dir():
            raise IsADirectoryError(f"store path {str(self.path)!r} is a directory; name a file")
        self._lock = WriterLock(self.path)
        try:
            self._open(overwrite)
        except BaseException:
            self._lock.release()
            raise

    def _open(self, overwrite: bool) -> None:
        if overwrite:
            remove_ours(self.path)
        if self.path.exists():
            with open_store(self.path) as existing:
                self._check_compatible(existing.provenance, str(self.path))
            self.finished = True
            return
        manifest = manifest_path(self.path)
        if manifest.exists():
            with open_h5(manifest, "manifest") as f:
                self._check_compatible(json_attr(f, "provenance"), str(self.dir))
            for stale in self.dir.glob("*.tmp-*"):
                stale.unlink(missing_ok=True)  # a window in flight when the writer died
            datasets = [dataset_name(la, p, sp) for la, sp, p in self.keys]
            for part, reason in damaged_parts(self.dir, datasets):
                set_aside(part, reason)
        else:
            if self.dir.exists() and any(self.dir.iterdir()):
                remove_ours(self.path)  # parts without a manifest: ours, and unusable
            self.dir.mkdir(exist_ok=True)
            atomic_h5(manifest, self._fill_manifest)

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        """Release the writer's lock (idempotent); unfinished rows stay committed for a resume."""
        self._lock.release()

    def __del__(self) -> None:  # pragma: no cover - best effort
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    # -- compatibility -----------------------------------------------------------
    def _check_compatible(self, old: Mapping[str, Any], where: str) -> None:
        mine, theirs = self.provenance.get("identity", {}), old.get("identity", {})
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        if diff:
            shown = "; ".join(
                f"{k}: stored {_short(theirs.get(k))} vs now {_short(mine.get(k))}" for k in diff
            )
            raise ValueError(
                f"{where} holds a capture with different settings, so it cannot be resumed "
                f"({shown}); pass overwrite=True (CLI: --overwrite) to replace it, or choose "
                "another path"
            )

    def _fill_manifest(self, f: h5py.File) -> None:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_rows"] = len(self.rows)
        f.attrs["provenance"] = json.dumps(self.provenance, sort_keys=True)
        f.attrs["layers"] = json.dumps([li.to_dict() for li in self.layers])
        f.attrs["poolings"] = json.dumps(list(self.poolings))
        f.attrs["spans"] = json.dumps(list(self.spans))
        write_rows(f, self.rows)

    # -- writing -----------------------------------------------------------------------
    def pending(self) -> list[tuple[int, int]]:
        """Row ranges ``[start, stop)`` that no committed part holds."""
        return [] if self.finished else pending_ranges(self.dir, len(self.rows))

    def part(self, start: int, stop: int) -> PartWriter:
        """Open the window of rows ``[start, stop)`` for writing, batch by batch."""
        if not 0 <= start < stop <= len(self.rows):
            raise ValueError(f"rows {start}…{stop} outside 0…{len(self.rows)}")
        return PartWriter(self, start, stop)

    def commit(
        self,
        start: int,
        arrays: Mapping[tuple[str, str, str], np.ndarray],
        *,
        token_count: np.ndarray | None = None,
        span_tokens: np.ndarray | None = None,
        truncated: np.ndarray | None = None,
    ) -> None:
        """Atomically commit rows ``start … start + n`` for every (layer, span, pooling) at once."""
        n = {np.shape(a)[0] for a in arrays.values()}
        if len(n) != 1:
            raise ValueError(f"arrays of one commit must have the same number of rows, got {n}")
        rows = n.pop()
        with self.part(start, start + rows) as part:
            part.write(np.arange(rows), arrays)
            part.commit(token_count=token_count, span_tokens=span_tokens, truncated=truncated)

    def finalize(self) -> ActivationStore:
        """Consolidate the parts into the final file, remove the partial folder, unlock."""
        if not self.finished:
            self._consolidate()
            self.finished = True
        self.close()
        return open_store(self.path)

    def _consolidate(self) -> None:
        parts = list_parts(self.dir)
        gaps = self.pending()
        if gaps:
            raise RuntimeError(f"cannot finalize {str(self.path)!r}: rows {gaps} not committed")
        n = len(self.rows)

        def fill(f: h5py.File) -> None:
            with h5py.File(manifest_path(self.path), "r") as m:
                for k, v in m.attrs.items():
                    f.attrs[k] = v
                m.copy("rows", f)
            dims: dict[str, int] = {}
            info = {li.name: li for li in self.layers}
            with h5py.File(parts[0][2], "r") as p0:
                for la, sp, p in self.keys:
                    key = dataset_name(la, p, sp)
                    dims[key] = p0[key].shape[1]
            for la, sp, p in self.keys:
                key = dataset_name(la, p, sp)
                d = dims[key]
                ds = f.create_dataset(
                    key,
                    shape=(n, d),
                    dtype="f4",
                    chunks=(chunk_rows(n, d), d),
                    compression=self.compression,
                    shuffle=self.compression is not None,
                )
                ds.attrs.update(info[la].h5_attrs(d))
                ds.attrs["span"] = sp
            cols = {k: np.zeros(row_column_shape(k, n, len(self.spans)), row_column_dtype(k))
                    for k in ROW_COLUMNS}  # fmt: skip
            for a, b, path in parts:
                with h5py.File(path, "r") as pf:
                    for key in dims:
                        block = pf[key][()]
                        if block.shape[1] != dims[key]:
                            raise ValueError(
                                f"{key}: part {path.name} has dim {block.shape[1]}, "
                                f"others {dims[key]}"
                            )
                        f[key][a:b] = block
                    for k in ROW_COLUMNS:
                        cols[k][a:b] = pf[f"rows/{k}"][()]
            for k, v in cols.items():
                f["rows"].create_dataset(k, data=v)

        atomic_h5(self.path, fill)
        shutil.rmtree(self.dir, ignore_errors=True)


def _short(v: Any) -> str:
    s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= 60 else s[:28] + "…" + s[-28:]


def store_from_arrays(
    path: str | os.PathLike[str],
    arrays: Mapping[str, np.ndarray | Mapping[str, np.ndarray]],
    *,
    prompts: PromptSet | None = None,
    labels: Sequence[Any] | None = None,
    ids: Sequence[str] | None = None,
    categories: Sequence[str] | None = None,
    pooling: str = "given",
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    spans: Sequence[str] | None = None,
) -> ActivationStore:
    """Build a store from activations extracted elsewhere (bring your own).

    Parameters
    ----------
    path : path-like
        Where to write the store.
    arrays : mapping
        ``{layer: array}`` (stored under ``pooling``) or ``{layer: {pooling: array}}``;
        arrays are ``(n, dim)`` and in row order. Layer order is kept.
    prompts : PromptSet, optional
        The rows. Otherwise give ``labels`` (and optionally ``ids``, ``categories``).
    labels, ids, categories : sequences, optional
        Row metadata when no ``prompts`` are given; ids default to ``"0" … "n-1"``.
    pooling : str
        Pooling name for plain arrays.
    provenance : mapping, optional
        Anything JSON-serialisable to record (model, extraction settings); a
        ``"model"`` entry names the model (:attr:`ActivationStore.model_name`).
    overwrite : bool
        Replace an existing aqi store at ``path``; any other file there is refused.
    spans : sequence of str, optional
        Arrays of several spans (:mod:`.spans`): ``arrays`` is then
        ``{span: {layer: array or {pooling: array}}}`` with these spans as its keys, every
        span holding the same layers and poolings. Default: one span, ``"given"``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> X = np.zeros((2, 3), "f4")
    >>> s = store_from_arrays(os.path.join(tempfile.mkdtemp(), "a.h5"),
    ...                       {"instruction": {"h.0": X}, "post_instruction": {"h.0": X + 1}},
    ...                       spans=["instruction", "post_instruction"], labels=["safe", "unsafe"])
    >>> s.spans, s.activations("h.0", span="post_instruction").tolist()[0]
    (('instruction', 'post_instruction'), [1.0, 1.0, 1.0])
    """
    names, by_span = _arrays_by_span(arrays, spans, pooling)
    nested = by_span[names[0]]
    pools = tuple(next(iter(nested.values())))
    n = {a.shape[0] for ns in by_span.values() for d in ns.values() for a in d.values()}
    if len(n) != 1:
        raise ValueError(f"all arrays need the same number of rows, got {sorted(n)}")
    n_rows = n.pop()
    if prompts is None:
        prompts = _rows_from_labels(labels, ids, categories)
    if len(prompts) != n_rows:
        raise ValueError(f"{len(prompts)} rows of metadata for arrays of {n_rows} rows")
    identity: dict[str, Any] = {
        "prompts": prompts.fingerprint(),
        "layers": list(nested),
        "poolings": list(pools),
        "data_sha256": _data_sha256(by_span),
    }
    if spans is not None:
        identity["spans"] = list(names)
    prov = {"source": "store_from_arrays", "identity": identity, "user": dict(provenance or {})}
    layers = [LayerInfo(name, "module", None, "given") for name in nested]
    with StoreWriter(path, prompts, prov, layers, pools, spans=names,
                     overwrite=overwrite) as writer:  # fmt: skip
        if not writer.finished:
            writer.commit(0, {(la, sp, p): a for sp, ns in by_span.items()
                              for la, d in ns.items() for p, a in d.items()})  # fmt: skip
        return writer.finalize()


#: ``{span: {layer: {pooling: (n, dim) array}}}``, the arrays of :func:`store_from_arrays`.
_BySpan = dict[str, dict[str, dict[str, np.ndarray]]]


def _arrays_by_span(
    arrays: Mapping[str, Any], spans: Sequence[str] | None, pooling: str
) -> tuple[tuple[str, ...], _BySpan]:
    """The span names and ``{span: {layer: {pooling: array}}}`` of :func:`store_from_arrays`'s
    ``arrays``, validated: every span holds the same layers and poolings."""
    if spans is not None:
        from ..prompts.spans import check_spans

        names = check_spans(spans)
        if not isinstance(arrays, Mapping) or set(arrays) != set(names):
            keys = list(arrays) if isinstance(arrays, Mapping) else type(arrays).__name__
            raise ValueError(
                f"with spans={list(names)}, arrays must be {{span: {{layer: array}}}} with "
                f"exactly those spans as keys, got {keys}"
            )
        per_span = {sp: arrays[sp] for sp in names}
    else:
        names = (GIVEN_SPAN,)
        per_span = {GIVEN_SPAN: arrays}
    by_span = {sp: _nested(a, pooling) for sp, a in per_span.items()}
    first = by_span[names[0]]
    for sp, nested in by_span.items():
        if [(la, tuple(d)) for la, d in nested.items()] != [
            (la, tuple(d)) for la, d in first.items()
        ]:
            raise ValueError(f"span {sp!r} holds other layers or poolings than {names[0]!r}")
    return names, by_span


def _rows_from_labels(
    labels: Sequence[Any] | None, ids: Sequence[str] | None, categories: Sequence[str] | None
) -> PromptSet:
    """The rows of a store built from arrays without a :class:`PromptSet`: ``<row i>`` texts
    with the given labels (ids default to ``"0" … "n-1"``, categories to ``""``)."""
    if labels is None:
        raise ValueError("pass prompts= (a PromptSet) or labels= for the rows")
    recs = [
        {
            "id": ids[i] if ids is not None else str(i),
            "text": f"<row {i}>",
            "label": labels[i],
            "category": categories[i] if categories is not None else "",
        }
        for i in range(len(labels))
    ]
    return PromptSet.from_records(recs)


def _data_sha256(by_span: _BySpan) -> str:
    """SHA-256 of every array as float32, in span, layer, pooling order (the data's identity)."""
    digest = hashlib.sha256()
    for ns in by_span.values():
        for d in ns.values():
            for a in d.values():
                digest.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return digest.hexdigest()


def _nested(
    arrays: Mapping[str, np.ndarray | Mapping[str, np.ndarray]], pooling: str
) -> dict[str, dict[str, np.ndarray]]:
    """``{layer: {pooling: (n, dim) array}}``, validated."""
    if not arrays:
        raise ValueError("arrays is empty; pass {layer: (n, dim) array}")
    nested: dict[str, dict[str, np.ndarray]] = {}
    for layer, v in arrays.items():
        if not isinstance(layer, str) or not layer or "/" in layer:
            raise ValueError(f"layer name {layer!r} must be a non-empty str without '/'")
        nested[layer] = dict(v) if isinstance(v, Mapping) else {pooling: v}
    pools = tuple(next(iter(nested.values())))
    for layer, d in nested.items():
        if tuple(d) != pools:
            raise ValueError(f"layer {layer!r} has poolings {list(d)}, others {list(pools)}")
        for p, a in d.items():
            a = np.asarray(a)
            if a.ndim != 2:
                raise ValueError(f"arrays[{layer!r}][{p!r}] must be (n, dim), got shape {a.shape}")
            if not np.isfinite(a).all():
                r = int(np.argwhere(~np.isfinite(a))[0][0])
                raise ValueError(f"arrays[{layer!r}][{p!r}] has a non-finite value in row {r}")
            d[p] = a
    return nested
