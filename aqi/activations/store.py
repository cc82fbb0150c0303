"""The activation store: a documented, versioned HDF5 file (see ``docs/format.md``).

A finished store is one HDF5 file. While a capture runs, the rows it has
committed live next to it in ``<path>.partial/``: a manifest written once and
one part file per committed window, each written under a temporary name,
fsync'ed and atomically renamed. A part file therefore either exists whole or
not at all — a crash (``kill -9`` included) loses at most the window in
flight, and a resumed capture redoes exactly the rows no part holds. When every
row is committed the parts are consolidated into ``<path>`` (again through a
temporary file and an atomic rename) and the directory is removed.

:func:`open_store` reads either form, so a store can be read while it is being
written: the partial view shows the committed rows and :meth:`refresh` picks
up newer ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np

from .prompts import LABELS, Prompt, PromptSet

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ActivationStore",
    "LayerInfo",
    "PartWriter",
    "StoreWriter",
    "open_store",
    "pair_by_id",
    "store_from_arrays",
]

FORMAT_NAME = "aqi.activations"
FORMAT_VERSION = 1
_STR = h5py.string_dtype("utf-8")
_PART_RE = re.compile(r"^part-(\d{10})-(\d{10})\.h5$")
_ROW_COLUMNS = ("token_count", "span_tokens", "truncated")


@dataclass(frozen=True)
class LayerInfo:
    """What one stored layer is: module path, role, block index and the stream read."""

    name: str
    role: str
    block: int | None
    stream: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "block": self.block, "stream": self.stream}

    def h5_attrs(self, dim: int) -> dict[str, Any]:
        """Attributes of this layer's datasets (HDF5 has no null: block -1 = not a block)."""
        return {
            "dim": dim,
            "module": self.name,
            "role": self.role,
            "block": -1 if self.block is None else self.block,
            "stream": self.stream,
        }


def _stream_of(role: str) -> str:
    return {
        "block": "residual (block output)",
        "embeddings": "embedding output",
        "final_norm": "final norm output",
    }.get(role, "module output")


def partial_dir(path: Path) -> Path:
    """Where the committed parts of an unfinished capture of ``path`` live."""
    return path.with_name(path.name + ".partial")


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, final: Path) -> None:
    """fsync a finished temporary file, rename it into place, fsync the directory."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def _tmp_name(final: Path) -> Path:
    return final.with_name(f"{final.name}.tmp-{os.getpid()}")


def _atomic_h5(final: Path, fill: Any) -> None:
    """Write an HDF5 file under a temporary name, fsync it and rename it into place."""
    tmp = _tmp_name(final)
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        _publish(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_rows(f: h5py.File, rows: Sequence[Prompt]) -> None:
    g = f.create_group("rows")
    g.create_dataset("id", data=[r.id for r in rows], dtype=_STR)
    g.create_dataset("text", data=[r.text for r in rows], dtype=_STR)
    g.create_dataset("response", data=[r.response or "" for r in rows], dtype=_STR)
    lab = g.create_dataset("label", data=np.array([LABELS.index(r.label) for r in rows], "i1"))
    lab.attrs["names"] = json.dumps(list(LABELS))
    g.create_dataset("category", data=[r.category for r in rows], dtype=_STR)
    g.create_dataset("pair_id", data=[r.pair_id or "" for r in rows], dtype=_STR)


def _json_attr(f: h5py.File | h5py.Group, key: str) -> Any:
    raw = f.attrs[key]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def _dataset_name(layer: str, pooling: str) -> str:
    return f"activations/{layer}/{pooling}"


def _chunk_rows(n: int, dim: int) -> int:
    # ~1 MiB chunks: large enough for fast sequential reads, small enough to slice.
    return int(max(1, min(n, (1 << 20) // max(4 * dim, 1))))


def _check_h5(path: Path, what: str) -> None:
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"{what} {str(path)!r} exists but is not an HDF5 file; refusing to touch it "
            "(choose another path, or delete it yourself)"
        )


class ActivationStore:
    """Read access to an activation store: arrays by layer and pooling, row metadata.

    Open one with :func:`open_store`. Arrays are read lazily, one
    ``(layer, pooling)`` dataset at a time. For a capture still in progress
    only committed rows are visible; :meth:`refresh` picks up newer ones.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "acts.h5")
    >>> X = np.random.default_rng(0).normal(size=(4, 3)).astype("f4")
    >>> s = store_from_arrays(p, {"layer0": X}, labels=["safe", "unsafe", "safe", "unsafe"])
    >>> s.layers, s.poolings, s.activations("layer0").shape
    (('layer0',), ('given',), (4, 3))
    >>> s.y.tolist()
    [0, 1, 0, 1]
    >>> s.close()
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: h5py.File | None = None
        self._parts: list[tuple[int, int, Path]] = []
        if path.is_file():
            _check_h5(path, "store")
            self._file = h5py.File(path, "r")
            self._meta = self._file
        else:
            manifest = partial_dir(path) / "manifest.h5"
            if not manifest.is_file():
                raise FileNotFoundError(f"no activation store at {str(path)!r}")
            _check_h5(manifest, "manifest")
            self._file = h5py.File(manifest, "r")
            self._meta = self._file
        fmt = self._meta.attrs.get("format")
        if fmt != FORMAT_NAME:
            self.close()
            raise ValueError(
                f"{str(path)!r} is an HDF5 file but not an aqi activation store "
                f"(format attribute {fmt!r}, expected {FORMAT_NAME!r})"
            )
        version = int(self._meta.attrs["format_version"])
        if version > FORMAT_VERSION:
            self.close()
            raise ValueError(
                f"{str(path)!r} uses store format {version}; this aqi reads up to "
                f"{FORMAT_VERSION} — upgrade aqi"
            )
        self.partial = not path.is_file()
        self.provenance: dict[str, Any] = _json_attr(self._meta, "provenance")
        self.layer_info: tuple[LayerInfo, ...] = tuple(
            LayerInfo(**d) for d in _json_attr(self._meta, "layers")
        )
        self.poolings: tuple[str, ...] = tuple(_json_attr(self._meta, "poolings"))
        self.n_total = int(self._meta.attrs["n_rows"])
        self._rows_cache: dict[str, np.ndarray] = {}
        self.refresh()

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        with contextlib.suppress(Exception):
            self.close()

    def refresh(self) -> None:
        """Re-read which rows are committed (only changes for a capture in progress)."""
        if not self.partial:
            self._index = np.arange(self.n_total)
            return
        if self.path.is_file():  # finished since we opened it: switch to the final file
            self.close()
            self.__init__(self.path)  # type: ignore[misc]
            return
        self._parts = list_parts(partial_dir(self.path))
        idx = [np.arange(a, b) for a, b, _ in self._parts]
        self._index = np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)
        self._rows_cache = {}

    # -- shape -----------------------------------------------------------------
    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(li.name for li in self.layer_info)

    @property
    def n_rows(self) -> int:
        """Rows readable now (all of them once the capture is complete)."""
        return len(self._index)

    @property
    def complete(self) -> bool:
        return not self.partial

    @property
    def span(self) -> str:
        return str(self.provenance.get("capture", {}).get("span", ""))

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"partial {self.n_rows}/{self.n_total}"
        model = self.provenance.get("model", {}).get("name", "?")
        return (
            f"ActivationStore({str(self.path)!r}, {state} rows, model={model!r}, "
            f"{len(self.layers)} layers, poolings={list(self.poolings)})"
        )

    # -- rows ------------------------------------------------------------------
    def _row(self, key: str) -> np.ndarray:
        if key not in self._rows_cache:
            if key in _ROW_COLUMNS and self.partial:
                arr = self._read_parts(f"rows/{key}")
            else:
                arr = self._h5[f"rows/{key}"][()]
                if arr.dtype.kind == "O":
                    arr = np.array([x.decode() if isinstance(x, bytes) else x for x in arr])
                arr = arr[self._index]
            self._rows_cache[key] = arr
        return self._rows_cache[key]

    @property
    def ids(self) -> np.ndarray:
        return self._row("id")

    @property
    def texts(self) -> np.ndarray:
        return self._row("text")

    @property
    def y(self) -> np.ndarray:
        """Integer labels, 0 = safe, 1 = unsafe."""
        return self._row("label").astype(np.int8)

    @property
    def labels(self) -> np.ndarray:
        """String labels, ``"safe"`` / ``"unsafe"``."""
        return np.asarray(LABELS)[self.y]

    @property
    def categories(self) -> np.ndarray:
        return self._row("category")

    @property
    def pair_ids(self) -> np.ndarray:
        """Pair ids (``""`` where a row has none)."""
        return self._row("pair_id")

    @property
    def token_counts(self) -> np.ndarray:
        """Tokens fed to the model per row (after truncation); -1 for bring-your-own stores."""
        return self._row("token_count")

    @property
    def span_tokens(self) -> np.ndarray:
        """Tokens pooled per row; -1 for bring-your-own stores."""
        return self._row("span_tokens")

    @property
    def truncated(self) -> np.ndarray:
        return self._row("truncated").astype(bool)

    def prompts(self) -> PromptSet:
        """The committed rows as a :class:`PromptSet`."""
        resp = self._row("response")
        return PromptSet(
            (
                Prompt(str(i), str(t), str(lab), str(c), str(p) or None, str(r) or None)
                for i, t, lab, c, p, r in zip(
                    self.ids,
                    self.texts,
                    self.labels,
                    self.categories,
                    self.pair_ids,
                    resp,
                    strict=True,
                )
            ),
            name=str(self.provenance.get("prompts", {}).get("name", "")),
        )

    # -- activations -------------------------------------------------------------
    def layer_name(self, layer: str | int) -> str:
        """The stored name of ``layer`` (a name, or a position in ``layers``)."""
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            n = len(self.layers)
            if not -n <= layer < n:
                raise ValueError(f"layer index {layer} out of range for {n} stored layers")
            return self.layers[int(layer)]
        if layer not in self.layers:
            import difflib

            close = difflib.get_close_matches(str(layer), self.layers, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(
                f"layer {layer!r} is not in this store{hint} (stored: {self.layers[0]} … "
                f"{self.layers[-1]}, {len(self.layers)} layers)"
            )
        return str(layer)

    def _pooling_name(self, pooling: str | None) -> str:
        if pooling is None:
            if len(self.poolings) > 1:
                raise ValueError(f"this store has several poolings {list(self.poolings)}; name one")
            return self.poolings[0]
        if pooling not in self.poolings:
            raise ValueError(f"pooling={pooling!r} is not in this store {list(self.poolings)}")
        return pooling

    @property
    def _h5(self) -> h5py.File:
        if self._file is None:
            raise ValueError(f"store {str(self.path)!r} is closed; open it again with open_store")
        return self._file

    def _read_parts(self, key: str) -> np.ndarray:
        """``key`` from every committed part, in row order (partial view)."""
        out = []
        try:
            for _, _, path in self._parts:
                with h5py.File(path, "r") as f:
                    out.append(f[key][()])
        except (FileNotFoundError, OSError):
            # The writer consolidated the parts and removed them while we read: the
            # same rows are now in the final file.
            if not self.path.is_file():
                raise
            with h5py.File(self.path, "r") as f:
                return f[key][()][self._index]
        return np.concatenate(out) if out else np.zeros(0)

    def activations(self, layer: str | int, pooling: str | None = None) -> np.ndarray:
        """The ``(n_rows, dim)`` float32 array of one layer and pooling, rows in prompt order.

        Parameters
        ----------
        layer : str or int
            A stored layer name (``store.layers``) or its position in that tuple.
        pooling : str, optional
            Needed when the store holds several poolings.
        """
        key = _dataset_name(self.layer_name(layer), self._pooling_name(pooling))
        if self.partial:
            if not self._parts:
                return np.zeros((0, 0), np.float32)
            return self._read_parts(key)
        return self._h5[key][()]

    def iter_activations(
        self, pooling: str | None = None
    ) -> Iterator[tuple[LayerInfo, np.ndarray]]:
        """Yield ``(layer_info, array)`` for every layer, loading one at a time."""
        for li in self.layer_info:
            yield li, self.activations(li.name, pooling)

    def dim(self, layer: str | int) -> int:
        """Feature dimension of a layer (0 while a capture has committed nothing)."""
        key = _dataset_name(self.layer_name(layer), self.poolings[0])
        if not self.partial:
            return int(self._meta[key].shape[1])
        if not self._parts:
            return 0
        with h5py.File(self._parts[0][2], "r") as f:
            return int(f[key].shape[1])

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """Row positions of the given ids (``KeyError`` naming the first missing one)."""
        where = {k: i for i, k in enumerate(self.ids.tolist())}
        try:
            return np.array([where[i] for i in ids], dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"id {e.args[0]!r} is not among this store's committed rows") from None


def open_store(path: str | os.PathLike[str]) -> ActivationStore:
    """Open an activation store for reading — finished, or still being written.

    Parameters
    ----------
    path : str or path-like
        The store's path (as given to :func:`aqi.capture`).

    Raises
    ------
    FileNotFoundError
        If neither the store nor an in-progress capture of it exists.
    ValueError
        If the file is not HDF5, not an aqi store, or from a newer format.
    """
    return ActivationStore(Path(path))


def pair_by_id(a: ActivationStore, b: ActivationStore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Align two stores of the same prompts (e.g. two models) by row id.

    Returns
    -------
    ids, positions_in_a, positions_in_b
        The shared ids in ``a``'s order and where each sits in either store.
        Raises ``ValueError`` if the stores share no id or a shared id has
        different labels; warns when only some ids are shared.
    """
    where_b = {k: i for i, k in enumerate(b.ids.tolist())}
    ia = np.array([i for i, k in enumerate(a.ids.tolist()) if k in where_b], dtype=np.int64)
    if ia.size == 0:
        raise ValueError(f"stores {str(a.path)!r} and {str(b.path)!r} share no row id")
    ids = a.ids[ia]
    ib = np.array([where_b[k] for k in ids.tolist()], dtype=np.int64)
    bad = np.flatnonzero(a.y[ia] != b.y[ib])
    if bad.size:
        raise ValueError(f"id {ids[bad[0]]!r} has different labels in the two stores")
    if ia.size < max(a.n_rows, b.n_rows):
        warnings.warn(
            f"pairing by id keeps {ia.size} rows ({a.n_rows} in a, {b.n_rows} in b)", stacklevel=2
        )
    return ids, ia, ib


def list_parts(d: Path) -> list[tuple[int, int, Path]]:
    """Committed parts of an unfinished capture, sorted; overlapping parts are an error."""
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


class StoreWriter:
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
    overwrite : bool
        Delete an existing store (finished or not) instead of resuming it.
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
        if overwrite:
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.dir, ignore_errors=True)
        if self.path.exists():
            _check_h5(self.path, "store")
            with open_store(self.path) as existing:
                self._check_compatible(existing.provenance, str(self.path))
            self.finished = True
            return
        manifest = self.dir / "manifest.h5"
        if manifest.exists():
            _check_h5(manifest, "manifest")
            with h5py.File(manifest, "r") as f:
                self._check_compatible(_json_attr(f, "provenance"), str(self.dir))
            for stale in self.dir.glob("*.tmp-*"):
                stale.unlink(missing_ok=True)  # a window in flight when the writer died
        else:
            self.dir.mkdir(exist_ok=True)
            _atomic_h5(manifest, self._fill_manifest)

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
                f"({shown}); pass overwrite=True to replace it, or choose another path"
            )

    def _fill_manifest(self, f: h5py.File) -> None:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["n_rows"] = len(self.rows)
        f.attrs["provenance"] = json.dumps(self.provenance, sort_keys=True)
        f.attrs["layers"] = json.dumps([li.to_dict() for li in self.layers])
        f.attrs["poolings"] = json.dumps(list(self.poolings))
        _write_rows(f, self.rows)

    # -- writing -----------------------------------------------------------------------
    def pending(self) -> list[tuple[int, int]]:
        """Row ranges ``[start, stop)`` that no committed part holds."""
        if self.finished:
            return []
        todo, at = [], 0
        for a, b, _ in list_parts(self.dir):
            if a > at:
                todo.append((at, a))
            at = max(at, b)
        if at < len(self.rows):
            todo.append((at, len(self.rows)))
        return todo

    def part(self, start: int, stop: int) -> PartWriter:
        """Open the window of rows ``[start, stop)`` for writing, batch by batch."""
        if not 0 <= start < stop <= len(self.rows):
            raise ValueError(f"rows {start}…{stop} outside 0…{len(self.rows)}")
        return PartWriter(self, start, stop)

    def commit(
        self,
        start: int,
        arrays: Mapping[tuple[str, str], np.ndarray],
        *,
        token_count: np.ndarray | None = None,
        span_tokens: np.ndarray | None = None,
        truncated: np.ndarray | None = None,
    ) -> None:
        """Atomically commit rows ``start … start + n`` for every (layer, pooling) at once."""
        n = {np.shape(a)[0] for a in arrays.values()}
        if len(n) != 1:
            raise ValueError(f"arrays of one commit must have the same number of rows, got {n}")
        rows = n.pop()
        with self.part(start, start + rows) as part:
            part.write(np.arange(rows), arrays)
            part.commit(token_count=token_count, span_tokens=span_tokens, truncated=truncated)

    def finalize(self) -> ActivationStore:
        """Consolidate the parts into the final file and remove the partial directory."""
        if self.finished:
            return open_store(self.path)
        parts = list_parts(self.dir)
        gaps = self.pending()
        if gaps:
            raise RuntimeError(f"cannot finalize {str(self.path)!r}: rows {gaps} not committed")
        n = len(self.rows)

        def fill(f: h5py.File) -> None:
            with h5py.File(self.dir / "manifest.h5", "r") as m:
                for k, v in m.attrs.items():
                    f.attrs[k] = v
                m.copy("rows", f)
            dims: dict[str, int] = {}
            with h5py.File(parts[0][2], "r") as p0:
                for li in self.layers:
                    for p in self.poolings:
                        key = _dataset_name(li.name, p)
                        dims[key] = p0[key].shape[1]
            for li in self.layers:
                for p in self.poolings:
                    key = _dataset_name(li.name, p)
                    d = dims[key]
                    ds = f.create_dataset(
                        key,
                        shape=(n, d),
                        dtype="f4",
                        chunks=(_chunk_rows(n, d), d),
                        compression=self.compression,
                        shuffle=self.compression is not None,
                    )
                    ds.attrs.update(li.h5_attrs(d))
            cols = {k: np.zeros(n, bool if k == "truncated" else "i4") for k in _ROW_COLUMNS}
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
                    for k in _ROW_COLUMNS:
                        cols[k][a:b] = pf[f"rows/{k}"][()]
            for k, v in cols.items():
                f["rows"].create_dataset(k, data=v)

        _atomic_h5(self.path, fill)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.finished = True
        return open_store(self.path)


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
        self.final = writer.dir / f"part-{start:010d}-{stop:010d}.h5"
        self.tmp = _tmp_name(self.final)
        self._expected = {(li.name, p) for li in writer.layers for p in writer.poolings}
        self._written = np.zeros(stop - start, dtype=bool)
        self._seen: set[tuple[str, str]] = set()
        self._file: h5py.File | None = h5py.File(self.tmp, "w")

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, et: Any, e: Any, tb: Any) -> None:
        if self._file is not None:
            self.abort()

    def write(self, rows: np.ndarray, arrays: Mapping[tuple[str, str], np.ndarray]) -> None:
        """Write ``arrays[(layer, pooling)][i]`` to window row ``rows[i]`` (0-based)."""
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
                f"write needs every (layer, pooling): missing {missing}, extra {extra}"
            )
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        if np.any(np.diff(sorted_rows) == 0):
            raise ValueError("rows contains duplicates")
        for (layer, p), a in arrays.items():
            a = np.asarray(a, dtype=np.float32)
            if a.ndim != 2 or a.shape[0] != rows.size:
                raise ValueError(
                    f"array for ({layer!r}, {p!r}) must be ({rows.size}, dim), got {a.shape}"
                )
            key = _dataset_name(layer, p)
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
        """Make the window visible: every row must have been written."""
        if self._file is None:
            raise RuntimeError("this part is already committed or aborted")
        if not self._written.all():
            missing = np.flatnonzero(~self._written)[:5] + self.start
            raise RuntimeError(f"rows {missing.tolist()}… of this window were never written")
        n = self.stop - self.start
        defaults = {"token_count": -1, "span_tokens": -1, "truncated": False}
        cols = {"token_count": token_count, "span_tokens": span_tokens, "truncated": truncated}
        for k, v in cols.items():
            arr = np.full(n, defaults[k]) if v is None else np.asarray(v)
            if arr.shape != (n,):
                raise ValueError(f"{k} must have shape ({n},), got {arr.shape}")
            self._file.create_dataset(
                f"rows/{k}", data=arr.astype(bool if k == "truncated" else "i4")
            )
        self._file.close()
        self._file = None
        _publish(self.tmp, self.final)

    def abort(self) -> None:
        """Discard the window (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp.unlink(missing_ok=True)


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
        Anything JSON-serialisable to record (model, extraction settings).
    overwrite : bool
        Replace an existing store at ``path``.
    """
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
    n = {a.shape[0] for d in nested.values() for a in d.values()}
    if len(n) != 1:
        raise ValueError(f"all arrays need the same number of rows, got {sorted(n)}")
    n_rows = n.pop()
    if prompts is None:
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
        prompts = PromptSet.from_records(recs)
    if len(prompts) != n_rows:
        raise ValueError(f"{len(prompts)} rows of metadata for arrays of {n_rows} rows")
    digest = hashlib.sha256()
    for d in nested.values():
        for a in d.values():
            digest.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    prov = {
        "source": "store_from_arrays",
        "identity": {
            "prompts": prompts.fingerprint(),
            "layers": list(nested),
            "poolings": list(pools),
            "data_sha256": digest.hexdigest(),
        },
        "user": dict(provenance or {}),
    }
    layers = [LayerInfo(name, "module", None, "given") for name in nested]
    writer = StoreWriter(path, prompts, prov, layers, pools, overwrite=overwrite)
    if not writer.finished:
        writer.commit(0, {(la, p): a for la, d in nested.items() for p, a in d.items()})
    return writer.finalize()
