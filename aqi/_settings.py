"""Settings that travel together, as one value: the checks they share, and the keyword
arguments that moved into them.

:class:`aqi.Rendering` (how prompts become tokens), :class:`aqi.Writing` (how a job
writes) and :class:`aqi.Decoding` (how generation picks tokens) are small frozen values,
checked when they are made. This leaf holds what they share: the checks of one field
(each names the field, the value and what is accepted, as :class:`ArgumentError`), the
door of a function that takes them (:func:`settings_value`, :func:`only_defaults`), and
:func:`moved_keywords`, which accepts until v0.4 the keyword arguments that became their
fields, with a ``DeprecationWarning`` naming the replacement.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._errors import ArgumentError

__all__ = [
    "REMOVED_IN",
    "check_bool",
    "check_choice",
    "check_positive_int",
    "moved_keywords",
    "only_defaults",
    "settings_value",
]

#: The release in which the keyword arguments that moved into a settings value stop working.
REMOVED_IN = "v0.4"

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S")


def check_positive_int(name: str, value: Any, *, none: str | None = None) -> None:
    """Refuse ``value`` unless it is an int ≥ 1 (or ``None`` where ``none`` says what it means).

    Examples
    --------
    >>> check_positive_int("batch_size", 0)
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: batch_size=0; expected a positive int
    >>> check_positive_int("commit_rows", None, none="")
    """
    if value is None and none is not None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        also = "" if none is None else f" or None{f' ({none})' if none else ''}"
        raise ArgumentError(f"{{{name}}}; expected a positive int{also}", **{name: value})


def check_bool(name: str, value: Any, *, none: str | None = None) -> None:
    """Refuse ``value`` unless it is ``True`` or ``False`` (or ``None`` where ``none`` says
    what it means)."""
    if isinstance(value, bool) or (value is None and none is not None):
        return
    accepted = "True or False" if none is None else f"True, False or None ({none})"
    raise ArgumentError(f"{{{name}}}; expected {accepted}", **{name: value})


def check_choice(name: str, value: Any, accepted: tuple[Any, ...]) -> None:
    """Refuse ``value`` unless it is one of ``accepted`` (listed in the message)."""
    if any(value is a or (isinstance(value, str) and value == a) for a in accepted):
        return
    *first, last = [repr(a) for a in accepted]
    listed = f"{', '.join(first)} or {last}" if first else last
    raise ArgumentError(f"{{{name}}}; expected {listed}", **{name: value})


def settings_value(name: str, value: S | None, kind: type[S]) -> S:
    """``value`` (a settings value of class ``kind``), or ``kind()`` for ``None``.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Rendering:
    ...     chat: bool | None = None
    >>> settings_value("rendering", None, Rendering)
    Rendering(chat=None)
    >>> settings_value("rendering", {"chat": False}, Rendering)
    Traceback (most recent call last):
    ...
    TypeError: rendering must be an aqi.Rendering, got dict ({'chat': False})
    """
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be an aqi.{kind.__name__}, got {type(value).__name__} "
                        f"({value!r})")  # fmt: skip
    return value


def only_defaults(value: Any, fields: tuple[str, ...], *, where: str, why: str) -> None:
    """Refuse a field of a settings value that ``where`` does not use, unless it has its
    default (``why`` says what the field is for).

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class W:
    ...     batch_size: int = 16
    ...     commit_rows: int | None = None
    >>> only_defaults(W(commit_rows=8), ("commit_rows",), where="generation",
    ...               why="a capture's windows")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: commit_rows=8 has no effect on generation (it sets ...); leave it out
    """
    defaults = {f.name: f.default for f in dataclasses.fields(value)}
    for name in fields:
        given = getattr(value, name)
        if given != defaults[name]:
            raise ArgumentError(f"{{{name}}} has no effect on {where} (it sets {why}); leave "
                                "it out", **{name: given})  # fmt: skip


def moved_keywords(
    moved: Mapping[str, tuple[type, tuple[str, ...]]],
    renamed: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Accept, until :data:`REMOVED_IN`, keyword arguments that moved into settings values.

    Parameters
    ----------
    moved : mapping
        A parameter of the decorated function (``"rendering"``) → its settings class and
        the old keywords that became its fields (``(Rendering, ("chat", "system_prompt"))``).
    renamed : mapping, optional
        An old keyword → the parameter that replaced it (``{"span": "spans"}``).

    A call with an old keyword gives one ``DeprecationWarning`` naming the replacement, as
    code to paste (``pass rendering=aqi.Rendering(chat=False)``), and is made with the
    value built from it (so its fields are checked as the value checks them). The new
    parameter given beside its old keywords is an :class:`ArgumentError`; any other
    unknown keyword is Python's own ``TypeError``. The decorated function's signature is
    the new one (``inspect.signature`` follows ``__wrapped__``).

    Examples
    --------
    >>> import warnings
    >>> @dataclasses.dataclass(frozen=True)
    ... class Writing:
    ...     batch_size: int = 16
    >>> @moved_keywords({"writing": (Writing, ("batch_size",))})
    ... def run(rows, *, writing=None):
    ...     return writing
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     run([], batch_size=4)
    Writing(batch_size=4)
    >>> print(w[0].message)  # doctest: +NORMALIZE_WHITESPACE
    run(batch_size=) is deprecated and stops working in v0.4;
    pass writing=aqi.Writing(batch_size=4)
    >>> run([], batch_size=4, writing=Writing())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: give writing= or batch_size=, not both (batch_size=4); ...
    """
    renamed = dict(renamed or {})
    owner = {old: param for param, (_, olds) in moved.items() for old in olds}

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if any(k in owner or k in renamed for k in kwargs):
                kwargs = _fold(fn.__name__, kwargs, moved, owner, renamed)
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return decorate


def _fold(
    fn: str, kwargs: dict[str, Any], moved: Mapping[str, tuple[type, tuple[str, ...]]],
    owner: Mapping[str, str], renamed: Mapping[str, str],
) -> dict[str, Any]:  # fmt: skip
    """``kwargs`` with the old keywords folded into their settings values (and renamed
    ones renamed). One warning says what to write instead, before the values are made (a
    bad field is then refused as the value refuses it)."""
    kwargs = dict(kwargs)
    old = [k for k in kwargs if k in owner or k in renamed]
    instead, values = [], {}
    for k in [k for k in old if k in renamed]:
        new = renamed[k]
        if new in kwargs:
            raise ArgumentError(
                f"give {new}= or {k}=, not both ({{{new}}}, {{{k}}}); {k}= is "
                f"the older spelling of {new}=",
                **{new: kwargs[new], k: kwargs[k]},
            )
        kwargs[new] = kwargs.pop(k)
        instead.append(f"{new}={kwargs[new]!r}")
    for param, (kind, _) in moved.items():
        fields = {k: kwargs.pop(k) for k in old if owner.get(k) == param}
        if not fields:
            continue
        if kwargs.get(param) is not None:
            first = next(iter(fields))
            raise ArgumentError(
                f"give {param}= or {first}=, not both ({{{first}}}); {first}= is deprecated: "
                f"put it in {param}=aqi.{kind.__name__}(...)",
                **{first: fields[first]},
            )
        values[param] = (kind, fields)
        shown = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        instead.append(f"{param}=aqi.{kind.__name__}({shown})")
    names = ", ".join(f"{k}=" for k in old)
    warnings.warn(f"{fn}({names}) is deprecated and stops working in {REMOVED_IN}; pass "
                  f"{', '.join(instead)}", DeprecationWarning, stacklevel=3)  # fmt: skip
    kwargs.update({param: kind(**fields) for param, (kind, fields) in values.items()})
    return kwargs
