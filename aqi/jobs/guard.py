"""The overwrite guard: a writer replaces only what is ours, and never the input it reads.

:func:`check_not_input` (from :mod:`aqi._outputs`, shared with reports and figures)
refuses an output that is one of the call's inputs; :func:`check_target` refuses a
folder, or an existing file that the writer's own check says it did not write.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .._outputs import check_not_input

__all__ = ["check_not_input", "check_target"]


def check_target(path: Path, *, noun: str, problem: Callable[[Path], str | None],
                 refusal: str) -> None:  # fmt: skip
    """Refuse (naming it) a ``path`` a writer may not write or replace.

    Parameters
    ----------
    path : Path
        The output path.
    noun : str
        What the output is, for the message on a folder (``"store"``, ``"responses"``).
    problem : callable
        ``problem(path)`` of an existing file: why it is not ours, or ``None`` if it is.
    refusal : str
        The message for a file that is not ours, with ``{path}`` and ``{problem}`` fields.

    Raises
    ------
    IsADirectoryError
        ``path`` is a folder.
    ValueError
        ``path`` exists and ``problem`` says it is not ours.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_target(d, noun="store", problem=lambda p: None, refusal="")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    IsADirectoryError: store path '...' is a directory; name a file
    """
    if path.is_dir():
        raise IsADirectoryError(f"{noun} path {str(path)!r} is a directory; name a file")
    if path.exists():
        why = problem(path)
        if why is not None:
            raise ValueError(refusal.format(path=repr(str(path)), problem=why))
