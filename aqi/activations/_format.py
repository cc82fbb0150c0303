"""The on-disk format of an activation store: names, dtypes and attributes (``docs/format.md``).

Everything that decides what the bytes of a store mean lives here, so the
reader (:mod:`.store`), the writer (:mod:`.writer`), the part-file protocol
(:mod:`._parts`) and the shard merger (:mod:`.distributed`) agree by
construction. Nothing here writes a file in place of another.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..prompts.prompt_set import LABELS, Prompt

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GIVEN_SPAN",
    "ROW_COLUMNS",
    "LayerInfo",
    "chunk_rows",
    "dataset_name",
    "is_aqi_store",
    "json_attr",
    "open_h5",
    "row_column_dtype",
    "row_column_shape",
    "stream_of",
    "write_rows",
]

FORMAT_NAME = "aqi.activations"
#: 2: the span is a dimension (``activations/<layer>/<span>/<pooling>``, root ``spans``);
#: 1: one span, named in provenance (``activations/<layer>/<pooling>``), still read.
FORMAT_VERSION = 2
#: The span of bring-your-own stores (:func:`aqi.store_from_arrays`).
GIVEN_SPAN = "given"
STR_DTYPE = h5py.string_dtype("utf-8")
#: Per-row columns written with each committed window (the rest is in the manifest).
ROW_COLUMNS = ("token_count", "span_tokens", "truncated")
#: Root attributes every store (and every manifest) carries.
ROOT_ATTRS = ("format", "format_version", "n_rows", "provenance", "layers", "poolings", "spans")


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


def stream_of(role: str) -> str:
    """What a layer of ``role`` records (the ``stream`` of :class:`LayerInfo`)."""
    return {
        "block": "residual (block output)",
        "embeddings": "embedding output",
        "final_norm": "final norm output",
    }.get(role, "module output")


def dataset_name(layer: str, pooling: str, span: str | None = None) -> str:
    """The HDF5 path of one (layer, span, pooling) dataset (``span=None``: format 1's path)."""
    if span is None:
        return f"activations/{layer}/{pooling}"
    return f"activations/{layer}/{span}/{pooling}"


def chunk_rows(n: int, dim: int) -> int:
    """Rows per chunk of an ``(n, dim)`` float32 dataset."""
    # ~1 MiB chunks: large enough for fast sequential reads, small enough to slice.
    return int(max(1, min(n, (1 << 20) // max(4 * dim, 1))))


def row_column_shape(key: str, n: int, n_spans: int) -> tuple[int, ...]:
    """Shape of a per-row column (:data:`ROW_COLUMNS`): ``span_tokens`` has one entry per span."""
    return (n, n_spans) if key == "span_tokens" else (n,)


def row_column_dtype(key: str) -> Any:
    """Dtype of a per-row column (:data:`ROW_COLUMNS`): ``truncated`` is bool, the rest int32."""
    return bool if key == "truncated" else "i4"


def json_attr(f: h5py.File | h5py.Group, key: str) -> Any:
    """A JSON-encoded attribute, decoded."""
    try:
        raw = f.attrs[key]
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (KeyError, ValueError):  # missing, or not JSON: HDF5's own text names no file
        raise ValueError(
            f"{f.file.filename!r} has no readable {key!r} attribute; it is not a complete aqi "
            "store (written by another tool, or damaged): capture it again"
        ) from None


def write_rows(f: h5py.File, rows: Sequence[Prompt]) -> None:
    """Write the ``/rows`` metadata of ``rows`` (id, text, response, label, category, pair_id)."""
    g = f.create_group("rows")
    g.create_dataset("id", data=[r.id for r in rows], dtype=STR_DTYPE)
    g.create_dataset("text", data=[r.text for r in rows], dtype=STR_DTYPE)
    g.create_dataset("response", data=[r.response or "" for r in rows], dtype=STR_DTYPE)
    lab = g.create_dataset("label", data=np.array([LABELS.index(r.label) for r in rows], "i1"))
    lab.attrs["names"] = json.dumps(list(LABELS))
    g.create_dataset("category", data=[r.category for r in rows], dtype=STR_DTYPE)
    g.create_dataset("pair_id", data=[r.pair_id or "" for r in rows], dtype=STR_DTYPE)


def open_h5(path: Path, what: str = "store") -> h5py.File:
    """Open ``path`` read-only, or raise one ``ValueError`` line naming it and what to do.

    A file that is not HDF5 at all, or one HDF5 cannot read (truncated by a full
    disk or an interrupted copy), never surfaces as a raw ``OSError``.
    """
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"{what} {str(path)!r} exists but is not an HDF5 file, so not an aqi activation "
            "store; aqi neither reads nor replaces it (check the path)"
        )
    try:
        return h5py.File(path, "r")
    except OSError as e:
        reason = str(e).split("(", 1)[-1].rstrip(")") if "(" in str(e) else str(e)
        raise ValueError(
            f"{what} {str(path)!r} is damaged or truncated and cannot be read ({reason}); "
            "delete it and capture again, or restore it from a copy"
        ) from None


def is_aqi_store(path: Path) -> bool:
    """Whether ``path`` is a readable HDF5 file carrying the aqi ``format`` attribute."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT_NAME
    except (OSError, ValueError):
        return False
