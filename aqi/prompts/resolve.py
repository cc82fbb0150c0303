"""Whatever a user gave as prompts, made a :class:`PromptSet` once, at the door.

Every entrance of aqi — the command line, :func:`aqi.audit_models` (and through it the
pytest plugin), the training monitor — calls :func:`resolve_prompts` once; everything
below takes the :class:`PromptSet` it returns (``load_prompts`` hands a ``PromptSet``
back unchanged, so a function that is also public can still accept the other forms).
One place decides what ``"harmbench+xstest"``, ``"prompts.jsonl"``, a DataFrame or
nothing at all means, and one set of messages says what is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .prompt_set import PromptSet, bundled_prompts, load_prompts
from .public_sets import is_set_selection, load_prompt_set, require_both_classes, resolve_names

__all__ = ["resolve_prompts"]


def _python_name(name: str) -> str:
    return f"{name}="


def resolve_prompts(
    source: Any = None,
    *,
    data_dir: str | Path | None = None,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    both_classes: bool = False,
    argument: str = "prompts",
    spell: Callable[[str], str] = _python_name,
) -> PromptSet:
    """The :class:`PromptSet` that ``source`` names, resolved once.

    Parameters
    ----------
    source : None, PromptSet, path, set names, DataFrame, datasets.Dataset or records
        ``None``: :func:`aqi.bundled_prompts`. A ``PromptSet``: itself. A path that exists
        (or a string that is not a selection of public sets): a prompt file
        (:func:`aqi.load_prompts`). Public set names (``"harmbench+xstest"``):
        :func:`aqi.load_prompt_set`. Anything else :func:`aqi.load_prompts` reads.
    data_dir : path, optional
        Where the public sets' files are (only with set names).
    format : {"jsonl", "csv", "litmus"}, optional
        A prompt file's format (only with a file or a table).
    columns : mapping, optional
        Column names of a file or a table, e.g. ``{"text_col": "prompt"}``.
    both_classes : bool, default False
        Refuse a set without both safe and unsafe prompts.
    argument : str, default "prompts"
        How errors name ``source`` (the command line passes ``"--prompts"``).
    spell : callable, default ``name -> "name="``
        How errors name the other parameters (the command line spells ``text_col`` as
        ``--text-col``).

    Raises
    ------
    ValueError
        Options that do not apply to what ``source`` is (columns or a format for public
        sets, a ``data_dir`` for a file, either without ``source``), a bare word that is
        neither a public set nor a file, or one class only with ``both_classes``.

    Examples
    --------
    >>> resolve_prompts().name
    'aqi-litmus-pairs'
    >>> ps = resolve_prompts([{"text": "Hi", "label": "safe"}, {"text": "Hurt", "label": 1}])
    >>> resolve_prompts(ps) is ps, ps.labels
    (True, ('safe', 'unsafe'))
    >>> resolve_prompts(None, columns={"text_col": "q"})
    Traceback (most recent call last):
    ...
    ValueError: text_col= name columns of prompts, which was not given
    """
    columns = dict(columns or {})
    fixed = [spell(k) for k in columns] + ([spell("format")] if format else [])
    if source is None:
        if fixed:
            raise ValueError(f"{', '.join(fixed)} name columns of {argument}, which was not "
                             "given")  # fmt: skip
        if data_dir is not None:
            raise ValueError(f"{spell('data_dir')} reads the sets {argument} names, which was "
                             "not given")  # fmt: skip
        prompts = bundled_prompts()
    elif isinstance(source, str) and not Path(source).exists() and is_set_selection(source):
        prompts = _public_sets(source, fixed, data_dir, argument)
    else:
        if data_dir is not None:
            what = f"{argument} {str(source)!r} is a file" if isinstance(source, (str, Path)) else (
                f"{argument} is a {type(source).__name__}")
            raise ValueError(f"{spell('data_dir')} is for prompt set names; {what}")
        prompts = load_prompts(source, format=format, **columns)
    if both_classes:
        require_both_classes(prompts, argument=argument)
    return prompts


def _public_sets(selection: str, fixed: list[str], data_dir: str | Path | None,
                 argument: str) -> PromptSet:  # fmt: skip
    """The public sets ``selection`` names (options of a file refused by name)."""
    try:
        names = resolve_names(selection, argument=argument)
    except ValueError as e:  # a bare word that is neither a set nor a file
        raise ValueError(f"{e}; nor is there a prompt file {selection!r}") from None
    if fixed:
        raise ValueError(f"{', '.join(fixed)} describe a prompt file; the prompt sets "
                         f"{'+'.join(names)} fix their own columns (docs/prompt_sets.md)")
    return load_prompt_set(names, data_dir=data_dir)
