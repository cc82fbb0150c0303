"""Errors that name arguments: Python's spelling in Python, the flag on the command line.

An :class:`ArgumentError` (or :class:`MissingPackageError`) keeps its message as a
template whose ``{placeholders}`` are argument names. ``str(error)`` spells them as a
Python caller writes them
(``do_sample=True``); the command line renders the same template with its own flags
(``--sample``), so one check gives the right hint on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["NAME_ONLY", "ArgumentError", "MissingPackageError", "NamedArguments", "python_spelling"]

#: The value of a placeholder that names an argument without a value (``{batch_size}``).
NAME_ONLY: Any = ...


def python_spelling(name: str, value: Any) -> str:
    """``name=value`` as a Python call writes it (the name alone for :data:`NAME_ONLY`).

    Examples
    --------
    >>> python_spelling("do_sample", True), python_spelling("batch_size", NAME_ONLY)
    ('do_sample=True', 'batch_size')
    """
    return name if value is NAME_ONLY else f"{name}={value!r}"


class NamedArguments(Exception):
    """An error whose message names arguments through ``{placeholders}``.

    Examples
    --------
    >>> e = ArgumentError("{temperature} has no effect without {do_sample}",
    ...                   temperature=0.3, do_sample=True)
    >>> str(e)
    'temperature=0.3 has no effect without do_sample=True'
    >>> e.render(lambda name, value: f"--{name}")
    '--temperature has no effect without --do_sample'
    """

    def __init__(self, template: str, **arguments: Any) -> None:
        self.template = template
        self.arguments = arguments
        super().__init__(self.render(python_spelling))

    def render(self, spell: Callable[[str, Any], str]) -> str:
        """The message with every placeholder spelled by ``spell(name, value)``."""

        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            return spell(name, self.arguments[name]) if name in self.arguments else m.group(0)

        # Only the named placeholders are replaced: braces in quoted data stay as they are.
        return re.sub(r"\{(\w+)\}", one, self.template)

    def renamed(self, **names: str) -> NamedArguments:
        """The same error with arguments renamed (``a="baseline_responses"``): what a
        caller that passed them on under other names shows its own users."""
        template = self.template
        for old, new in names.items():
            template = template.replace("{" + old + "}", "{" + new + "}")
        return type(self)(template, **{names.get(k, k): v for k, v in self.arguments.items()})


class ArgumentError(NamedArguments, ValueError):
    """A bad argument value (a ``ValueError``), named the caller's way."""


class MissingPackageError(NamedArguments, ImportError):
    """An argument that needs an optional package that is not installed (an ``ImportError``)."""
