"""The one layer- and pooling-selection grammar of stored activations.

Used by :meth:`ActivationStore.resolve_layers` / :meth:`~ActivationStore.resolve_pooling`
(and so by every entry point that reads a store): an ``int`` (or ``"5"``) is a
**block index**, as in ``aqi capture --layers 5``; a position in the store is
spelled ``"@5"``; ``"all"``, ``"blocks"``, ``"embeddings"``, ``"final_norm"``,
exact names and globs as in :func:`aqi.activations.resolve_layers`.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._format import LayerInfo

__all__ = ["describe_layers", "select_layers", "select_pooling"]

_INT_RE = re.compile(r"^-?\d+$")
_POS_RE = re.compile(r"^@(-?\d+)$")
_INDEXED_RE = re.compile(r"^(.+)\.(\d+)$")


def describe_layers(names: Sequence[str]) -> str:
    """A short listing of stored layer names for error messages."""
    if not names:
        return "no layers"
    if len(names) <= 4:
        return f"stored: {', '.join(names)}"
    return f"stored: {names[0]} … {names[-1]}, {len(names)} layers"


def _blocks(info: Sequence[LayerInfo]) -> dict[int, str]:
    """Block index -> stored layer name, from the layer records (else from the names)."""
    known = {li.block: li.name for li in info if li.block is not None}
    if known:
        return known
    # Bring-your-own stores: names like "model.layers.5" sharing one prefix.
    hits = [(_INDEXED_RE.match(li.name), li.name) for li in info]
    prefixes = {m.group(1) for m, _ in hits if m}
    if len(prefixes) != 1:
        return {}
    return {int(m.group(2)): n for m, n in hits if m}


def _block_layer(
    info: Sequence[LayerInfo], n_blocks: int | None, item: int, spelled: str | int
) -> str:
    blocks = _blocks(info)
    if not blocks:
        raise ValueError(
            f"layer {spelled!r} is a block index, but this store records no transformer blocks "
            f"({describe_layers([li.name for li in info])}); name the layer, or write "
            f"'@{item}' for its position in the store"
        )
    index = item
    if item < 0:
        if n_blocks is None:
            raise ValueError(
                f"layer {spelled!r}: a negative block index needs the model's block count, "
                f"which this store does not record; name the layer, or write '@{item}' for a "
                "position in the store"
            )
        index = n_blocks + item
    if index not in blocks:
        shown = ", ".join(f"{b} ({n})" for b, n in sorted(blocks.items())[:8])
        more = " …" if len(blocks) > 8 else ""
        raise ValueError(
            f"block {spelled!r} is not in this store; stored blocks: {shown}{more} "
            f"(write '@{item}' for a position in the store)"
        )
    return blocks[index]


def _select_one(info: Sequence[LayerInfo], n_blocks: int | None, item: str | int) -> list[str]:
    names = [li.name for li in info]
    if isinstance(item, (int, np.integer)):
        return [_block_layer(info, n_blocks, int(item), int(item))]
    if _INT_RE.match(item):
        return [_block_layer(info, n_blocks, int(item), item)]
    pos = _POS_RE.match(item)
    if pos:
        i = int(pos.group(1))
        if not -len(names) <= i < len(names):
            raise ValueError(
                f"layer position {item!r} out of range for {len(names)} stored layers "
                f"(@0 … @{len(names) - 1})"
            )
        return [names[i]]
    if item == "all":
        return names
    if item in ("blocks", "embeddings", "final_norm"):
        role = "block" if item == "blocks" else item
        hits = [li.name for li in info if li.role == role]
        if not hits:
            raise ValueError(
                f"layer {item!r}: this store has no {role} layer ({describe_layers(names)})"
            )
        return hits
    if any(ch in item for ch in "*?["):
        hits = [n for n in names if fnmatch.fnmatchcase(n, item)]
        if not hits:
            raise ValueError(
                f"layer glob {item!r} matches no stored layer ({describe_layers(names)})"
            )
        return hits
    if item in names:
        return [item]
    close = difflib.get_close_matches(item, names, n=3)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"layer {item!r} is not in this store{hint} ({describe_layers(names)})")


def _check_item(item: Any) -> None:
    if isinstance(item, bool) or not isinstance(item, (str, int, np.integer)):
        raise TypeError(f"layer {item!r}: expected a str or int, got {type(item).__name__}")


def select_layers(
    info: Sequence[LayerInfo],
    n_blocks: int | None,
    spec: str | int | Sequence[str | int] | None,
    *,
    one: bool = False,
) -> list[str]:
    """Stored layer names ``spec`` selects, unique, in store (depth) order.

    ``info`` are the stored layers, ``n_blocks`` the model's block count when known
    (for negative block indices). With ``one=True`` the spec must select exactly
    one layer.
    """
    names = [li.name for li in info]
    if spec is None:
        return names
    items: list[Any] = [spec] if isinstance(spec, (str, int, np.integer)) else list(spec)
    if not items:
        raise ValueError("layers is empty; pass block indices, names, globs or '@' positions")
    chosen: set[str] = set()
    for item in items:
        _check_item(item)
        chosen.update(_select_one(info, n_blocks, item))
    out = [n for n in names if n in chosen]
    if one and len(out) != 1:
        raise ValueError(f"layer {spec!r} selects {len(out)} layers here; name one")
    return out


def select_pooling(poolings: Sequence[str], pooling: str | None) -> str:
    """``pooling`` if stored; for ``None``: ``"mean"`` if stored, else the only pooling."""
    if pooling is None:
        if "mean" in poolings:
            return "mean"
        if len(poolings) == 1:
            return poolings[0]
        raise ValueError(
            f"this store has several poolings {list(poolings)} and none is 'mean'; name one"
        )
    if not isinstance(pooling, str):
        raise TypeError(f"pooling must be a str or None, got {type(pooling).__name__}")
    if pooling not in poolings:
        raise ValueError(f"pooling={pooling!r} is not in this store {list(poolings)}")
    return pooling
