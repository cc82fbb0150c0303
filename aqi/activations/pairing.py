"""Two stores of the same prompts, side by side: rows paired by id, layers by name."""

from __future__ import annotations

import warnings

import numpy as np

from ._selection import describe_layers
from .store import ActivationStore

__all__ = ["pair_by_id", "shared_layers"]


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


def shared_layers(a: ActivationStore, b: ActivationStore) -> list[str]:
    """Layers stored in both ``a`` and ``b``, matched by name (never by position), in ``a``'s order.

    Raises
    ------
    ValueError
        If the stores share no layer name; the message lists both sides.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from aqi.activations import store_from_arrays
    >>> d, X, y = tempfile.mkdtemp(), np.zeros((2, 3), "f4"), ["safe", "unsafe"]
    >>> a = store_from_arrays(os.path.join(d, "a.h5"), {"h.0": X, "h.1": X}, labels=y)
    >>> b = store_from_arrays(os.path.join(d, "b.h5"), {"h.1": X, "h.2": X}, labels=y)
    >>> shared_layers(a, b)
    ['h.1']
    """
    for name, s in (("a", a), ("b", b)):
        if not isinstance(s, ActivationStore):
            raise TypeError(f"{name} must be an aqi ActivationStore, got {type(s).__name__}")
    in_b = set(b.layers)
    shared = [n for n in a.layers if n in in_b]
    if not shared:
        raise ValueError(
            f"stores {str(a.path)!r} and {str(b.path)!r} share no layer name "
            f"(a: {describe_layers(a.layers)}; b: {describe_layers(b.layers)}); layers are "
            "paired by name, never by position"
        )
    return shared
