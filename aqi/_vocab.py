"""Names every layer checks against, importable without torch (so the command line can
refuse a bad value before it imports the model machinery): the poolings."""

from __future__ import annotations

__all__ = ["POOLINGS", "check_poolings"]

POOLINGS: tuple[str, ...] = ("mean", "last", "first", "max")


def check_poolings(pooling: object, *, name: str = "pooling") -> list[str]:
    """Pooling names as a list (one name, a comma-separated string or a sequence), each
    known; refused with an :class:`~aqi._errors.ArgumentError` naming ``name`` otherwise.

    Examples
    --------
    >>> check_poolings("mean, last")
    ['mean', 'last']
    >>> check_poolings("banana")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: pooling='banana'; expected one or more of 'mean', 'last', ...
    """
    from ._errors import ArgumentError

    items = pooling.split(",") if isinstance(pooling, str) else pooling
    if not isinstance(items, (list, tuple)):
        raise TypeError(f"{name} must be a str or a list of str, got {type(pooling).__name__}")
    out = [str(p).strip() for p in items]
    bad = [p for p in out if p not in POOLINGS]
    if bad or not out:
        raise ArgumentError(
            f"{{{name}}}; expected one or more of {', '.join(map(repr, POOLINGS))}, joined by "
            "commas", **{name: pooling}
        )
    return out
