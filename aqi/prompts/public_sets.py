"""Public prompt sets by name: the registry that maps each one onto aqi's rows.

``load_prompt_set("harmbench+xstest-safe")`` loads HarmBench's standard behaviours
(unsafe) and XSTest's safe prompts through Hugging Face ``datasets`` — from the hub,
its local cache, or a local folder for machines without network — and returns one
:class:`~aqi.prompts.prompt_set.PromptSet` whose ``source`` records each set's
dataset id, config, split, revision, licence and citation (a capture copies it into
the store's provenance). Each entry below names the hub columns it reads; how each
set maps (columns → id/text/label/category/pair) is tabled in ``docs/prompt_sets.md``.

The registry itself (each set's hub id, config, split, files, columns and citation)
is :mod:`aqi.prompts.public_registry`.

Most sets hold one class (HarmBench, AdvBench, StrongREJECT, SORRY-Bench and
OR-Bench-toxic are unsafe requests; OR-Bench-hard is safe). An audit needs both:
combine an unsafe set with a safe one (recommended: ``"harmbench+xstest-safe"``), or
use a set that has both (``"xstest"``, ``"jbb"``).
"""

from __future__ import annotations

import difflib
import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .prompt_set import Prompt, PromptSet, _normalise_label
from .public_registry import _GROUPS, PUBLIC_SETS, PublicSet

__all__ = [
    "PUBLIC_SETS",
    "PublicSet",
    "is_set_selection",
    "load_prompt_set",
    "prompt_sets",
    "require_both_classes",
    "resolve_names",
]


_SEPARATORS = re.compile(r"[+,]")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_FILE_SUFFIXES = (".jsonl", ".json", ".csv")


def prompt_sets() -> tuple[str, ...]:
    """The names :func:`load_prompt_set` knows, sorted.

    Examples
    --------
    >>> "harmbench" in prompt_sets() and "xstest-safe" in prompt_sets()
    True
    """
    return tuple(sorted([*PUBLIC_SETS, *_GROUPS]))


def is_set_selection(value: str) -> bool:
    """Whether ``value`` reads as set names (``"harmbench,xstest-safe"``) rather than a path.

    Words joined by ``+`` or ``,``, without a path separator or a prompt-file suffix.
    A value that mixes set names with file paths is refused.

    Raises
    ------
    ValueError
        When some parts are known set names and others are not words (paths).

    Examples
    --------
    >>> is_set_selection("harmbench+xstest-safe"), is_set_selection("prompts.jsonl")
    (True, False)
    """
    parts = [p.strip() for p in _SEPARATORS.split(value)]
    wordlike = [bool(_WORD.fullmatch(p)) and not p.lower().endswith(_FILE_SUFFIXES)
                for p in parts]  # fmt: skip
    if all(wordlike):
        return True
    named = [p for p in parts if p.lower() in PUBLIC_SETS or p.lower() in _GROUPS]
    if named and len(parts) > 1:
        paths = [p for p, w in zip(parts, wordlike, strict=True) if not w]
        raise ValueError(
            f"--prompts {value!r} mixes prompt set names ({', '.join(named)}) with file paths "
            f"({', '.join(paths)}); give set names, or one prompt file (to combine both, load "
            "them in Python and join their rows)"
        )
    return False


def resolve_names(selection: str | Sequence[str], *, argument: str = "name") -> tuple[str, ...]:
    """The registry entries a selection names: ``"a+b"``, ``"a,b"`` or a list of names.

    Groups (``"jbb"``) expand to their parts; a set named twice, or a part of a set
    named beside it (``"xstest+xstest-safe"``), is refused.

    Raises
    ------
    ValueError
        On an unknown name (the known ones are listed, a close one suggested).

    Examples
    --------
    >>> resolve_names("harmbench+xstest-safe")
    ('harmbench', 'xstest-safe')
    >>> resolve_names(["jbb"])
    ('jbb-harmful', 'jbb-benign')
    """
    if isinstance(selection, str):
        parts = [p.strip() for p in _SEPARATORS.split(selection)]
    elif isinstance(selection, Sequence) and all(isinstance(p, str) for p in selection):
        parts = [p.strip() for p in selection]
    else:
        raise TypeError(f"{argument}={selection!r}; expected a set name or a list of names")
    if not parts or any(not p for p in parts):
        raise ValueError(f"{argument}={selection!r} has an empty set name; known sets: "
                         f"{', '.join(prompt_sets())}")  # fmt: skip
    out: list[str] = []
    for part in parts:
        key = part.lower()
        if key not in PUBLIC_SETS and key not in _GROUPS:
            close = difflib.get_close_matches(key, prompt_sets(), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{argument}: unknown prompt set {part!r}{hint} Known sets: "
                             f"{', '.join(prompt_sets())}")  # fmt: skip
        out.extend(_GROUPS.get(key, (key,)))
    datasets_named: dict[tuple[str, str | None, str], str] = {}
    for name in out:
        e = PUBLIC_SETS[name]
        key3 = (e.dataset, e.config, e.split)
        if key3 in datasets_named:
            raise ValueError(f"{argument}={selection!r} names {datasets_named[key3]!r} and "
                             f"{name!r}, which share rows; name one of them")  # fmt: skip
        datasets_named[key3] = name
    return tuple(out)


def load_prompt_set(
    name: str | Sequence[str],
    *,
    data_dir: str | Path | None = None,
    data_files: str | Path | Sequence[str | Path] | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
) -> PromptSet:
    """Load public prompt sets by name, as one :class:`PromptSet`.

    Parameters
    ----------
    name : str or list of str
        A name of :func:`prompt_sets`, several joined by ``+`` or ``,``, or a list.
        ``"harmbench+xstest-safe"`` is the recommended pairing for an audit.
    data_dir : path, optional
        A local folder instead of the hub: each set's files are read from
        ``data_dir/<dataset id>/<files>`` (what ``hf download <id> --repo-type dataset
        --local-dir data_dir/<id>`` writes), or from ``data_dir/<files>`` directly.
    data_files : path or list of paths, optional
        The data file(s) of a single set, in its hub format and columns (overrides
        ``data_dir`` and the hub).
    revision : str, optional
        Hub revision (branch, tag or commit) for every set; default each set's
        ``"main"``. Recorded in ``source``.
    cache_dir : path, optional
        The ``datasets`` cache (default ``HF_DATASETS_CACHE``). ``HF_DATASETS_OFFLINE=1``
        is honoured: only the cache is read.

    Returns
    -------
    PromptSet
        Named after the selection (``"harmbench+xstest-safe"``); ids are prefixed by
        each set's name; ``source["sets"]`` lists each set's dataset id, config, split,
        revision, licence, citation, url, row count and where it was read from.

    Raises
    ------
    ValueError
        On an unknown name, or a dataset without the registry's columns.
    ImportError
        When Hugging Face ``datasets`` is not installed (``pip install 'aqi[datasets]'``).
    OSError
        When a set is neither cached nor reachable; the message gives the command that
        fetches it.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"prompt": "Is a kiwi a bird?", "focus": "kiwi", "type": "homonyms",
    ...          "note": "", "label": "safe"}]
    >>> _ = (d / "x.json").write_text(json.dumps(rows))
    >>> ps = load_prompt_set("xstest", data_files=d / "x.json", cache_dir=d / "cache")
    >>> ps.ids, ps.labels, ps.source["sets"][0]["dataset"]
    (('xstest-0',), ('safe',), 'walledai/XSTest')
    """
    names = resolve_names(name)
    if data_files is not None and len(names) > 1:
        raise ValueError(f"data_files is for one set; name={name!r} names {len(names)} "
                         "(use data_dir, with one folder per dataset id)")  # fmt: skip
    if revision is not None and (not isinstance(revision, str) or not revision):
        raise ValueError(f"revision={revision!r}; expected a branch, tag or commit")
    rows: list[Prompt] = []
    sources: list[dict[str, Any]] = []
    for n in names:
        entry = PUBLIC_SETS[n]
        records, origin = _read(entry, data_dir=data_dir, data_files=data_files,
                                revision=revision, cache_dir=cache_dir)  # fmt: skip
        got = _to_prompts(entry, records, origin)
        rows.extend(got)
        sources.append({
            "name": n, "title": entry.title, "dataset": entry.dataset,
            "config": entry.config, "split": entry.split, "revision": revision or entry.revision,
            "license": entry.license, "citation": entry.citation, "url": entry.url,
            "n": len(got), "read_from": origin,
        })  # fmt: skip
    return PromptSet(rows, name="+".join(names), source={"registry": "aqi", "sets": sources})


def require_both_classes(prompts: PromptSet, *, argument: str = "prompts") -> None:
    """Refuse a prompt set with one class where a capture or audit needs both.

    Examples
    --------
    >>> require_both_classes(PromptSet([Prompt("a", "Hi", "safe")], name="greetings"))
    Traceback (most recent call last):
    ...
    ValueError: prompts 'greetings' has one class (safe): pair it with an unsafe set, e.g. 'harmbench+greetings'
    """  # noqa: E501
    labels = set(prompts.labels)
    if len(labels) > 1:
        return
    (only,) = labels
    name = prompts.name or "the prompt set"
    if only == "unsafe":
        other, example = "a safe", f"{name}+xstest-safe"
    else:
        other, example = "an unsafe", f"harmbench+{name}"
    raise ValueError(f"{argument} {name!r} has one class ({only}): pair it with {other} set, "
                     f"e.g. {example!r}")  # fmt: skip


# -- reading ---------------------------------------------------------------------------
def _datasets() -> Any:
    try:
        import datasets
    except ImportError as e:
        raise ImportError(
            f"loading public prompt sets needs Hugging Face datasets ({e}); "
            "pip install 'aqi[datasets]'"
        ) from None
    return datasets


def _as_paths(data_files: str | Path | Sequence[str | Path]) -> list[str]:
    items = [data_files] if isinstance(data_files, (str, Path)) else list(data_files)
    if not items:
        raise ValueError("data_files is empty; give the set's data file(s)")
    paths = []
    for item in items:
        p = Path(item)
        if not p.is_file():
            raise FileNotFoundError(f"data_files: no file {str(p)!r}")
        paths.append(str(p))
    return paths


def _local_files(entry: PublicSet, data_dir: str | Path) -> list[str]:
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir {str(root)!r} is not a folder")
    for base in (root / entry.dataset, root):
        found = sorted(glob.glob(str(base / entry.files)))
        if found:
            return found
    raise FileNotFoundError(
        f"data_dir {str(root)!r} has no {entry.files!r} for prompt set {entry.name!r} (looked "
        f"in {str(root / entry.dataset)!r} and {str(root)!r}); fetch it with: "
        f"{_download_command(entry, entry.revision, root / entry.dataset)}"
    )


def _download_command(entry: PublicSet, revision: str, local_dir: str | Path) -> str:
    return (f"hf download {entry.dataset} --repo-type dataset --revision {revision} "
            f"--local-dir {local_dir}")  # fmt: skip


def _read(
    entry: PublicSet,
    *,
    data_dir: str | Path | None,
    data_files: str | Path | Sequence[str | Path] | None,
    revision: str | None,
    cache_dir: str | Path | None,
) -> tuple[Any, str]:
    """The set's rows as a ``datasets.Dataset`` and where they were read from."""
    ds_lib = _datasets()
    cache = None if cache_dir is None else str(cache_dir)
    if data_files is not None or data_dir is not None:
        files = (_as_paths(data_files) if data_files is not None
                 else _local_files(entry, data_dir))  # type: ignore[arg-type]  # fmt: skip
        fmt = entry.format
        if data_files is not None:  # a user's file: its suffix decides the builder
            suffix = Path(files[0]).suffix.lower()
            fmt = {".parquet": "parquet", ".csv": "csv", ".json": "json",
                   ".jsonl": "json"}.get(suffix, fmt)  # fmt: skip
        ds = ds_lib.load_dataset(fmt, data_files={"train": files}, split="train", cache_dir=cache)
        return ds, "local: " + ", ".join(files)
    rev = revision or entry.revision
    try:
        ds = ds_lib.load_dataset(
            entry.dataset, entry.config, split=entry.split, revision=rev,
            data_files=entry.hub_data_files, cache_dir=cache,
        )  # fmt: skip
    except OSError as e:  # unreachable, offline and not cached, gated, not found
        reason = " ".join(str(e).split())[:200]
        offline = os.environ.get("HF_DATASETS_OFFLINE", "") or os.environ.get("HF_HUB_OFFLINE", "")
        mode = " (HF_DATASETS_OFFLINE is set: only the cache is read)" if offline else ""
        config = f"{entry.config!r}, " if entry.config else ""
        files = f"data_files={entry.hub_data_files!r}, " if entry.hub_data_files else ""
        raise OSError(
            f"prompt set {entry.name!r} ({entry.dataset}, revision {rev}) is neither in the "
            f"datasets cache nor reachable{mode}: {reason}. Fetch it on a machine with "
            f"network: `{_download_command(entry, rev, 'DIR/' + entry.dataset)}` then pass "
            f"data_dir=DIR (command line: --prompts-dir DIR), or fill the cache with "
            f'`python -c "import datasets; datasets.load_dataset({entry.dataset!r}, '
            f'{config}{files}split={entry.split!r}, revision={rev!r})"`; if the dataset is '
            f"gated, accept its terms at {entry.url} and log in first (`hf auth login`)"
        ) from e
    return ds, f"hub: {entry.dataset}@{rev}"


def _to_prompts(entry: PublicSet, ds: Any, origin: str) -> list[Prompt]:
    """Map the rows of one set onto :class:`Prompt` rows (columns as the registry says)."""
    columns = list(getattr(ds, "column_names", []) or [])
    needed = [c for c in (entry.text_col, entry.category_col, entry.label_col, entry.pair_col)
              if c is not None]  # fmt: skip
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(
            f"prompt set {entry.name!r} ({origin}) has no column "
            f"{', '.join(repr(m) for m in missing)} (columns: {', '.join(columns) or 'none'}); "
            f"the registry reads {entry.dataset}'s columns {', '.join(needed)}"
        )
    use_id = entry.id_col is not None and entry.id_col in columns
    rows: list[Prompt] = []
    for i, rec in enumerate(ds):
        text = rec[entry.text_col]
        if isinstance(text, list):  # SORRY-Bench: "turns", one user turn per prompt
            text = text[0] if text else ""
        raw_id = rec[entry.id_col] if use_id else i  # type: ignore[index]
        pid = f"{entry.id_prefix}-{raw_id}"
        where = f"prompt set {entry.name!r} row {i + 1} (id={pid!r})"
        label = entry.label or _normalise_label(rec[entry.label_col], row=where,  # type: ignore[index]
                                                column=str(entry.label_col))  # fmt: skip
        if entry.only_label is not None and label != entry.only_label:
            continue
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: {entry.text_col} is empty or not text ({text!r})")
        category = "" if entry.category_col is None else rec[entry.category_col]
        pair = None if entry.pair_col is None else rec[entry.pair_col]
        rows.append(Prompt(
            id=pid, text=text, label=label,
            category="" if category is None else str(category),
            pair_id=None if pair in (None, "") else f"{entry.pair_prefix}-{pair}",
        ))  # fmt: skip
    if not rows:
        raise ValueError(f"prompt set {entry.name!r} ({origin}) has no rows")
    return rows
