"""The activation store reader: arrays by layer and pooling, row metadata, pairing of stores.

A finished store is one HDF5 file (``docs/format.md``, names in :mod:`._format`);
an unfinished capture is ``<path>.partial/`` (:mod:`aqi.jobs.parts`). :func:`open_store`
reads either form, so a store can be read while it is being written: the
partial view shows the committed rows and :meth:`ActivationStore.refresh` picks
up newer ones. Stores are written by :mod:`.writer`.

Layers are selected with one grammar everywhere (:meth:`ActivationStore.resolve_layers`):
an ``int`` (or ``"5"``) is a *block index*, as in ``aqi capture --layers 5``; a
position in the store is spelled ``"@5"``; names and globs as in
:func:`aqi.activations.resolve_layers`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..jobs.closing import Closing
from ..jobs.parts import list_parts, manifest_path, partial_dir
from ..prompts.prompt_set import LABELS, Prompt, PromptSet
from ..prompts.spans import SPAN_ALIASES
from ._format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    GIVEN_SPAN,
    ROW_COLUMNS,
    LayerInfo,
    dataset_name,
    json_attr,
    open_h5,
)
from ._selection import select_layers, select_pooling

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ActivationStore",
    "LayerInfo",
    "open_store",
]


class ActivationStore(Closing):
    """Read access to an activation store: arrays by layer, span and pooling, row metadata.

    Open one with :func:`open_store` (or ``ActivationStore(path)``, ``str`` or path).
    Arrays are read lazily, one ``(layer, span, pooling)`` dataset at a time. A store
    opened with ``span=`` (or :meth:`with_span`) reads that span wherever a span is not
    named; without, it reads its first span (:attr:`spans`, in capture order). For a
    capture still in progress only committed rows are visible; :meth:`refresh`
    picks up newer ones.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from aqi.activations import store_from_arrays
    >>> p = os.path.join(tempfile.mkdtemp(), "acts.h5")
    >>> X = np.random.default_rng(0).normal(size=(4, 3)).astype("f4")
    >>> s = store_from_arrays(p, {"layer0": X}, labels=["safe", "unsafe", "safe", "unsafe"])
    >>> s.layers, s.poolings, s.activations("layer0").shape
    (('layer0',), ('given',), (4, 3))
    >>> s.y.tolist(), s.model_name, s.resolve_pooling(None)
    ([0, 1, 0, 1], 'acts', 'given')
    >>> s.close()
    """

    def __init__(self, path: str | os.PathLike[str], span: str | None = None) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or path-like, got {type(path).__name__}")
        path = Path(path)
        self.path = path
        self._file: h5py.File | None = None
        self._parts: list[tuple[int, int, Path]] = []
        if path.is_file():
            self._file = open_h5(path, "store")
        else:
            manifest = manifest_path(path)
            if not manifest.is_file():
                raise FileNotFoundError(f"no activation store at {str(path)!r}")
            self._file = open_h5(manifest, "manifest")
        self._meta = self._file
        fmt = self._meta.attrs.get("format")
        if fmt != FORMAT_NAME:
            self.close()
            raise ValueError(
                f"{str(path)!r} is an HDF5 file but not an aqi activation store "
                f"(format attribute {fmt!r}, expected {FORMAT_NAME!r}); pass a file written by "
                "aqi capture, or build one from your arrays with aqi.store_from_arrays"
            )
        version = int(self._meta.attrs["format_version"])
        if version > FORMAT_VERSION:
            self.close()
            raise ValueError(
                f"{str(path)!r} uses store format {version}; this aqi reads up to "
                f"{FORMAT_VERSION} — upgrade aqi"
            )
        self.partial = not path.is_file()
        self.provenance: dict[str, Any] = json_attr(self._meta, "provenance")
        self.layer_info: tuple[LayerInfo, ...] = tuple(
            LayerInfo(**d) for d in json_attr(self._meta, "layers")
        )
        self.poolings: tuple[str, ...] = tuple(json_attr(self._meta, "poolings"))
        self.format_version = version
        if version >= 2:
            self.spans: tuple[str, ...] = tuple(json_attr(self._meta, "spans"))
        else:  # format 1: one span, named in provenance ("user" is "instruction" now)
            old = self.provenance.get("capture", {}).get("span") or GIVEN_SPAN
            self.spans = (SPAN_ALIASES.get(old, old),)
        try:
            self._span = self._pick_span(span)
        except ValueError:
            self.close()
            raise
        self.n_total = int(self._meta.attrs["n_rows"])
        self._rows_cache: dict[str, np.ndarray] = {}
        self.refresh()

    # -- lifecycle -----------------------------------------------------------
    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

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
            self.__init__(self.path, self._span)  # type: ignore[misc]
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
        """The span this store reads where none is named (``"given"``: bring-your-own)."""
        return self._span

    @property
    def captured(self) -> bool:
        """Whether aqi captured the store (bring-your-own stores do not say what they hold)."""
        return self.provenance.get("source") != "store_from_arrays"

    def _pick_span(self, span: str | None) -> str:
        if span is None:
            return self.spans[0]
        if not isinstance(span, str):
            raise TypeError(f"span must be a str, got {type(span).__name__}")
        name = SPAN_ALIASES.get(span, span)
        if name not in self.spans:
            raise ValueError(
                f"store {str(self.path)!r} holds no span {span!r}; it has "
                f"{', '.join(map(repr, self.spans))} (capture it with "
                f"spans=[..., {name!r}], aqi capture --span {name})"
            )
        return name

    def resolve_span(self, span: str | None = None) -> str:
        """The span to read: ``span`` (aliases accepted), else this store's :attr:`span`.

        Raises
        ------
        ValueError
            If the store does not hold ``span`` (the message lists the spans it has).
        """
        return self._span if span is None else self._pick_span(span)

    def with_span(self, span: str) -> ActivationStore:
        """The same store opened again, reading ``span`` by default (a new handle).

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from aqi.activations import store_from_arrays
        >>> p = os.path.join(tempfile.mkdtemp(), "acts.h5")
        >>> s = store_from_arrays(p, {"h.0": np.zeros((2, 3), "f4")}, labels=["safe", "unsafe"])
        >>> s.with_span("given").span
        'given'
        >>> s.with_span("post_instruction")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: store '...acts.h5' holds no span 'post_instruction'; it has 'given' ...
        """
        self._pick_span(span)
        return ActivationStore(self.path, span)

    def _dataset(self, layer: str, pooling: str, span: str | None = None) -> str:
        """The HDF5 path of one stored (layer, pooling) dataset of ``span``."""
        name = self.resolve_span(span)
        return dataset_name(layer, pooling, None if self.format_version < 2 else name)

    @property
    def model_name(self) -> str:
        """The model's name: provenance ``model.name``, else the file's stem.

        Captures record the model's name or path; bring-your-own stores use
        ``provenance={"model": "<name>"}`` (or ``{"model": {"name": ...}}``) given to
        :func:`aqi.store_from_arrays`. Without either, the store's file stem
        (``"base"`` for ``runs/base.h5``) names it.
        """
        for source in (self.provenance, self.provenance.get("user", {})):
            model = source.get("model") if isinstance(source, dict) else None
            name = model.get("name") if isinstance(model, dict) else model
            if isinstance(name, str) and name:
                return name
        return self.path.stem

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"partial {self.n_rows}/{self.n_total}"
        spans = f"spans={list(self.spans)}" if len(self.spans) > 1 else f"span={self.span!r}"
        return (
            f"ActivationStore({str(self.path)!r}, {state} rows, model={self.model_name!r}, "
            f"{len(self.layers)} layers, {spans}, poolings={list(self.poolings)})"
        )

    # -- rows ------------------------------------------------------------------
    def _row(self, key: str) -> np.ndarray:
        if key not in self._rows_cache:
            if key in ROW_COLUMNS and self.partial:
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
        """Tokens pooled per row in this store's :attr:`span`; -1 for bring-your-own stores."""
        return self.span_tokens_of(self._span)

    def span_tokens_of(self, span: str) -> np.ndarray:
        """Tokens pooled per row in ``span`` (e.g. fewer than 5 for short response onsets)."""
        col = self._row("span_tokens")
        if col.ndim == 1:
            self.resolve_span(span)
            return col
        return col[:, self.spans.index(self.resolve_span(span))]

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

    # -- selecting layers and poolings ---------------------------------------------
    def resolve_layers(self, spec: str | int | Sequence[str | int] | None = None) -> list[str]:
        """Stored layer names selected by ``spec``, unique, in the store's (depth) order.

        Parameters
        ----------
        spec : str, int, sequence of them, or None
            ``None`` or ``"all"``: every stored layer. An ``int`` (or a digit string
            such as ``"5"``) is a **block index** — ``5`` is ``model.layers.5``, whatever
            its position in the store (block numbers come from the capture's layer
            records, or from names like ``model.layers.5``); negative indices count
            from the model's last block. ``"@5"`` is the sixth *stored* layer.
            ``"blocks"``, ``"embeddings"``, ``"final_norm"``, an exact name or a glob
            (``"model.layers.1*"``) as in :func:`aqi.activations.resolve_layers`.
            A list mixes any of these.

        Raises
        ------
        ValueError
            On an unknown name (with close matches), a block the store does not
            hold, a position out of range or an empty list.

        Examples
        --------
        >>> import numpy as np, tempfile, os
        >>> from aqi.activations import store_from_arrays
        >>> X = np.zeros((2, 3), "f4")
        >>> names = ["model.embed_tokens", "model.layers.0", "model.layers.5"]
        >>> s = store_from_arrays(os.path.join(tempfile.mkdtemp(), "a.h5"),
        ...                       {n: X for n in names}, labels=["safe", "unsafe"])
        >>> s.resolve_layers(5), s.resolve_layers("@1"), s.resolve_layers("*.layers.*")
        (['model.layers.5'], ['model.layers.0'], ['model.layers.0', 'model.layers.5'])
        """
        return select_layers(self.layer_info, self._n_blocks, spec)

    @property
    def _n_blocks(self) -> int | None:
        n = self.provenance.get("capture", {}).get("n_blocks")
        return n if isinstance(n, int) else None

    def layer_name(self, layer: str | int) -> str:
        """The stored name of one layer, in the grammar of :meth:`resolve_layers`."""
        return select_layers(self.layer_info, self._n_blocks, layer, one=True)[0]

    def resolve_pooling(self, pooling: str | None = None) -> str:
        """The pooling to read: ``pooling``; for ``None`` ``"mean"`` if stored, else the only one.

        Raises
        ------
        ValueError
            If ``pooling`` is not stored, or is ``None`` while the store holds several
            poolings and none is ``"mean"`` (the message lists them).
        """
        return select_pooling(self.poolings, pooling)

    # -- activations -------------------------------------------------------------
    @property
    def _h5(self) -> h5py.File:
        if self._file is None:
            raise ValueError(f"store {str(self.path)!r} is closed; open it again with open_store")
        return self._file

    def _read_parts(self, key: str) -> np.ndarray:
        """``key`` from every committed part, in row order (partial view)."""
        out = []
        for _, _, path in self._parts:
            try:
                with h5py.File(path, "r") as f:
                    out.append(f[key][()])
            except (FileNotFoundError, OSError, KeyError) as e:
                if self.path.is_file():
                    # The writer consolidated the parts and removed them while we read:
                    # the same rows are now in the final file.
                    with h5py.File(self.path, "r") as f:
                        return f[key][()][self._index]
                raise ValueError(
                    f"part file {str(path)!r} of the unfinished store {str(self.path)!r} "
                    f"cannot be read ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                    "re-run the same capture: it sets the part aside and captures its rows again"
                ) from None
        return np.concatenate(out) if out else np.zeros(0)

    def activations(
        self, layer: str | int, pooling: str | None = None, span: str | None = None
    ) -> np.ndarray:
        """The ``(n_rows, dim)`` float32 array of one layer, pooling and span, in prompt order.

        Parameters
        ----------
        layer : str or int
            One layer in the grammar of :meth:`resolve_layers`: a stored name, a block
            index (``5``) or a position (``"@5"``).
        pooling : str, optional
            Default as in :meth:`resolve_pooling`.
        span : str, optional
            Default: this store's :attr:`span` (:meth:`resolve_span`).
        """
        key = self._dataset(self.layer_name(layer), self.resolve_pooling(pooling), span)
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
        key = self._dataset(self.layer_name(layer), self.poolings[0])
        if not self.partial:
            return int(self._meta[key].shape[1])
        if not self._parts:
            return 0
        with open_h5(self._parts[0][2], "part file") as f:
            return int(f[key].shape[1])

    def positions(self, ids: Sequence[str]) -> np.ndarray:
        """Row positions of the given ids (``KeyError`` naming the first missing one)."""
        where = {k: i for i, k in enumerate(self.ids.tolist())}
        try:
            return np.array([where[i] for i in ids], dtype=np.int64)
        except KeyError as e:
            raise KeyError(f"id {e.args[0]!r} is not among this store's committed rows") from None


def open_store(path: str | os.PathLike[str], span: str | None = None) -> ActivationStore:
    """Open an activation store for reading — finished, or still being written.

    Parameters
    ----------
    path : str or path-like
        The store's path (as given to :func:`aqi.capture`).
    span : str, optional
        The span to read where none is named (``"post_instruction"``…); default the
        store's first span. A span the store does not hold is a ``ValueError`` listing
        the spans it has.

    Raises
    ------
    FileNotFoundError
        If neither the store nor an in-progress capture of it exists.
    ValueError
        If the file is not HDF5, is truncated or damaged, is not an aqi store, or
        is from a newer format (one line naming the file and what to do).
    """
    return ActivationStore(path, span)
