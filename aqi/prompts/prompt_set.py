"""Labelled prompt sets: the rows every capture, index and probe works on.

A :class:`PromptSet` is an immutable, validated sequence of :class:`Prompt`
rows. Each row has a unique ``id``, a non-empty ``text``, a ``label`` that is
``"safe"`` or ``"unsafe"``, a ``category`` (for the bundled set: one of the
seven LITMUS axioms), an optional ``pair_id`` linking matched safe/unsafe
prompts and an optional ``response`` (for reward models and full
conversations).

Loaders accept JSONL, CSV, in-memory records, pandas DataFrames, Hugging Face
``datasets`` objects and the LITMUS schema (``input``, ``safety_label``,
``axiom``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, overload

from .readers import id_string, missing_column, read_csv_records, read_json_records

__all__ = [
    "LABELS",
    "LITMUS_AXIOMS",
    "Prompt",
    "PromptSet",
    "bundled_prompts",
    "load_prompts",
]

#: The two labels, in the order of their integer codes (0 = safe, 1 = unsafe).
LABELS: tuple[str, str] = ("safe", "unsafe")

#: The seven axioms of the LITMUS benchmark, used as categories of the bundled set.
LITMUS_AXIOMS: tuple[str, ...] = (
    "Civility & Tolerance",
    "Duty & Accountability",
    "Empathy & Helpfulness",
    "Information Seeking",
    "Justice & Rights",
    "Well-being & Peace",
    "Wisdom & Knowledge",
)


def _normalise_label(value: object, *, row: str, column: str) -> str:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, str):
        s = value.strip().lower()
        if s in LABELS:
            return s
        if s in {"0", "1"}:
            return LABELS[int(s)]
    elif isinstance(value, (bool, int, float)) and value in (0, 1):
        return LABELS[int(value)]
    raise ValueError(
        f"{row}: {column}={value!r} is not a known label; expected 'safe' or 'unsafe' "
        "(case-insensitive), or 0/1 / False/True with 1 = unsafe"
    )


@dataclass(frozen=True, slots=True)
class Prompt:
    """One labelled prompt.

    Parameters
    ----------
    id : str
        Unique identifier within its set.
    text : str
        The user's request, as the model sees it before any chat template.
    label : {"safe", "unsafe"}
        Ground-truth safety label.
    category : str
        Free-form category (for the bundled set: a LITMUS axiom).
    pair_id : str or None
        Identifier shared by a matched safe/unsafe pair.
    response : str or None
        An optional assistant response (rendered after the prompt when the
        capture is asked to include responses).
    """

    id: str
    text: str
    label: str
    category: str = ""
    pair_id: str | None = None
    response: str | None = None

    @property
    def is_unsafe(self) -> bool:
        """Whether the label is ``"unsafe"``."""
        return self.label == "unsafe"


class PromptSet(Sequence[Prompt]):
    """An immutable, validated collection of :class:`Prompt` rows.

    Parameters
    ----------
    rows : iterable of Prompt
        The rows. Ids must be unique, texts non-empty, labels ``"safe"`` or
        ``"unsafe"``.
    name : str, optional
        A human-readable name recorded in stores' provenance.
    source : mapping, optional
        Where the rows come from (for a public set: the dataset id, revision, licence
        and citation; see :func:`aqi.load_prompt_set`). JSON-serialisable; copied into a
        store's provenance as ``provenance["prompts"]["source"]``. Kept by slicing and
        :meth:`filter`; not part of equality or :meth:`fingerprint`.

    Raises
    ------
    ValueError
        On an empty set, a duplicate id, an empty text or an unknown label.
    TypeError
        On a row that is not a :class:`Prompt`, or a ``source`` that is not a
        JSON-serialisable mapping.

    Examples
    --------
    >>> ps = PromptSet([Prompt("a", "How do I bake bread?", "safe", "cooking"),
    ...                 Prompt("b", "How do I poison bread?", "unsafe", "cooking")])
    >>> len(ps), ps.labels
    (2, ('safe', 'unsafe'))
    >>> ps["b"].text
    'How do I poison bread?'
    """

    __slots__ = ("_index", "_rows", "name", "source")

    def __init__(
        self, rows: Iterable[Prompt], *, name: str = "", source: Mapping[str, Any] | None = None
    ) -> None:
        rows = tuple(rows)
        if not rows:
            raise ValueError("prompts is empty; a PromptSet needs at least one row")
        for i, row in enumerate(rows):
            if not isinstance(row, Prompt):
                raise TypeError(f"row {i + 1}: expected aqi.Prompt, got {type(row).__name__}")
            if not isinstance(row.id, str) or not row.id:
                raise ValueError(f"row {i + 1}: id={row.id!r} must be a non-empty string")
            if not isinstance(row.text, str) or not row.text.strip():
                raise ValueError(f"row {i + 1} (id={row.id!r}): text is empty")
            if row.label not in LABELS:
                raise ValueError(
                    f"row {i + 1} (id={row.id!r}): label={row.label!r}; expected 'safe' or 'unsafe'"
                )
            if row.response is not None and not isinstance(row.response, str):
                raise TypeError(f"row {i + 1} (id={row.id!r}): response must be a str or None")
        counts = Counter(r.id for r in rows)
        dupes = [k for k, c in counts.items() if c > 1]
        if dupes:
            shown = ", ".join(repr(d) for d in dupes[:5])
            raise ValueError(f"duplicate ids in prompt set: {shown} ({len(dupes)} duplicated)")
        if source is not None and not isinstance(source, Mapping):
            raise TypeError(f"source must be a mapping or None, got {type(source).__name__}")
        try:  # a private copy, and proof that provenance can be written as JSON
            copied: dict[str, Any] = json.loads(json.dumps(dict(source or {})))
        except (TypeError, ValueError) as e:
            raise TypeError(f"source must be JSON-serialisable: {e}") from None
        self._rows = rows
        self._index = {r.id: i for i, r in enumerate(rows)}
        self.name = name
        self.source = copied

    # -- sequence protocol -------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, key: int) -> Prompt: ...
    @overload
    def __getitem__(self, key: str) -> Prompt: ...
    @overload
    def __getitem__(self, key: slice) -> PromptSet: ...
    def __getitem__(self, key: int | str | slice) -> Prompt | PromptSet:
        if isinstance(key, str):
            try:
                return self._rows[self._index[key]]
            except KeyError:
                raise KeyError(f"no prompt with id {key!r}") from None
        if isinstance(key, slice):
            return PromptSet(self._rows[key], name=self.name, source=self.source)
        return self._rows[key]

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self._rows)

    def __repr__(self) -> str:
        n_unsafe = sum(r.is_unsafe for r in self._rows)
        cats = len(set(self.categories))
        name = f" {self.name!r}" if self.name else ""
        return (
            f"PromptSet{name}({len(self)} prompts: {len(self) - n_unsafe} safe, "
            f"{n_unsafe} unsafe, {cats} categories)"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PromptSet) and self._rows == other._rows

    def __hash__(self) -> int:
        return hash(self._rows)

    # -- columns -------------------------------------------------------------
    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self._rows)

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(r.text for r in self._rows)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(r.label for r in self._rows)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(r.category for r in self._rows)

    @property
    def pair_ids(self) -> tuple[str | None, ...]:
        return tuple(r.pair_id for r in self._rows)

    @property
    def has_responses(self) -> bool:
        """Whether any row carries a response."""
        return any(r.response is not None for r in self._rows)

    def fingerprint(self) -> str:
        """SHA-256 over every field of every row, in order (used to refuse mismatched resumes)."""
        h = hashlib.sha256()
        for r in self._rows:
            h.update(json.dumps(asdict(r), sort_keys=True, ensure_ascii=False).encode())
            h.update(b"\n")
        return h.hexdigest()

    def filter(self, *, label: str | None = None, category: str | None = None) -> PromptSet:
        """Rows with the given label and/or category."""
        rows = [
            r
            for r in self._rows
            if (label is None or r.label == label) and (category is None or r.category == category)
        ]
        if not rows:
            raise ValueError(f"no prompts with label={label!r} and category={category!r}")
        return PromptSet(rows, name=self.name, source=self.source)

    def to_records(self) -> list[dict[str, Any]]:
        """The rows as plain dicts (the JSONL schema)."""
        return [asdict(r) for r in self._rows]

    def to_jsonl(self, path: str | Path) -> None:
        """Write the rows as JSON Lines, one object per prompt."""
        with Path(path).open("w", encoding="utf-8") as f:
            for rec in self.to_records():
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")

    # -- constructors --------------------------------------------------------
    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        *,
        id_col: str = "id",
        text_col: str = "text",
        label_col: str = "label",
        category_col: str | None = "category",
        pair_col: str | None = "pair_id",
        response_col: str | None = "response",
        name: str = "",
    ) -> PromptSet:
        """Build a set from mappings (dicts, DataFrame records, dataset rows).

        When no row has an id, ids are generated as the row's position
        (``"0"``, ``"1"``, …); when some rows have one, a row without is an
        error. Ids must be strings or integers (a float id, e.g. from a
        pandas column with gaps, is refused rather than turned into ``"1.0"``).
        A missing category is ``""``. Labels accept ``"safe"``/``"unsafe"`` in
        any case and 0/1 (1 = unsafe). Messages count rows from 1.
        """
        if isinstance(records, (str, bytes, Mapping)):
            raise TypeError(
                f"records must be an iterable of mappings, got {type(records).__name__}"
            )
        located = ((f"row {i}", rec) for i, rec in enumerate(records, 1))
        return cls._from_located(
            located,
            id_col=id_col,
            text_col=text_col,
            label_col=label_col,
            category_col=category_col,
            pair_col=pair_col,
            response_col=response_col,
            name=name,
        )

    @classmethod
    def _from_located(
        cls,
        located: Iterable[tuple[str, Any]],
        *,
        id_col: str = "id",
        text_col: str = "text",
        label_col: str = "label",
        category_col: str | None = "category",
        pair_col: str | None = "pair_id",
        response_col: str | None = "response",
        name: str = "",
        source: str = "",
    ) -> PromptSet:
        """Build a set from ``(location, record)`` pairs; every error names the location."""
        for arg, col in (("id_col", id_col), ("text_col", text_col), ("label_col", label_col)):
            if not isinstance(col, str) or not col:
                raise TypeError(f"{arg}={col!r}; expected a non-empty column name")
        rows: list[Prompt] = []
        where: list[str] = []
        has_id: list[bool] = []
        for loc, rec in located:
            if not isinstance(rec, Mapping):
                raise TypeError(f"{loc}: expected a mapping, got {type(rec).__name__}")
            for col, arg in ((text_col, "text_col"), (label_col, "label_col")):
                if col not in rec:
                    raise ValueError(f"{loc}: {missing_column(col, arg, rec)}")
            raw_id = rec.get(id_col)
            has_id.append(not (raw_id is None or raw_id == ""))
            pid = id_string(raw_id, loc=loc, column=id_col) if has_id[-1] else str(len(rows))
            at = f"{loc} (id={pid!r})" if has_id[-1] else loc
            text = rec[text_col]
            if not isinstance(text, str):
                raise TypeError(f"{at}: {text_col}={text!r} must be a string")
            if not text.strip():
                raise ValueError(f"{at}: {text_col} is empty")

            def _opt(col: str | None, _rec: Mapping[str, Any] = rec) -> str | None:
                if col is None:
                    return None
                v = _rec.get(col)
                if v is None or (isinstance(v, float) and v != v):  # NaN from pandas
                    return None
                return str(v)

            rows.append(
                Prompt(
                    id=pid,
                    text=text,
                    label=_normalise_label(rec[label_col], row=at, column=label_col),
                    category=_opt(category_col) or "",
                    pair_id=_opt(pair_col),
                    response=_opt(response_col),
                )
            )
            where.append(loc)
        if not rows:
            raise ValueError(f"{source + ': ' if source else ''}prompts is empty; no records")
        if any(has_id) and not all(has_id):
            lacking = where[has_id.index(False)]
            raise ValueError(
                f"{lacking}: no {id_col!r} while other rows have one (e.g. "
                f"{where[has_id.index(True)]}); give every row an id, or none (ids are then "
                "generated from the row positions)"
            )
        seen: dict[str, str] = {}
        for loc, r in zip(where, rows, strict=True):
            if r.id in seen:
                raise ValueError(f"{loc}: duplicate id {r.id!r} (first at {seen[r.id]})")
            seen[r.id] = loc
        return cls(rows, name=name)

    @classmethod
    def from_jsonl(cls, path: str | Path, **columns: Any) -> PromptSet:
        """Load JSON Lines (one object per line; blank lines ignored) or a JSON array of objects.

        UTF-8 with or without a byte-order mark (see :mod:`aqi.prompts.readers`).
        """
        path = Path(path)
        columns.setdefault("name", path.stem)
        return cls._from_located(read_json_records(path), source=str(path), **columns)

    @classmethod
    def from_csv(cls, path: str | Path, **columns: Any) -> PromptSet:
        """Load a comma-separated file with a header row (UTF-8, byte-order mark allowed)."""
        path = Path(path)
        columns.setdefault("name", path.stem)
        return cls._from_located(read_csv_records(path), source=str(path), **columns)

    @classmethod
    def from_pandas(cls, frame: Any, **columns: Any) -> PromptSet:
        """Load a pandas DataFrame (one row per prompt)."""
        if not hasattr(frame, "to_dict"):
            raise TypeError(f"expected a pandas DataFrame, got {type(frame).__name__}")
        return cls.from_records(frame.to_dict("records"), **columns)

    @classmethod
    def from_hf_dataset(cls, dataset: Any, **columns: Any) -> PromptSet:
        """Load a Hugging Face ``datasets.Dataset`` (iterated row by row)."""
        if not hasattr(dataset, "column_names"):
            raise TypeError(f"expected a datasets.Dataset, got {type(dataset).__name__}")
        return cls.from_records(iter(dataset), **columns)

    @classmethod
    def from_litmus(cls, source: str | Path | Iterable[Mapping[str, Any]]) -> PromptSet:
        """Load the LITMUS schema: ``input``, ``safety_label``, ``axiom`` (``id`` optional)."""
        cols = {"text_col": "input", "label_col": "safety_label", "category_col": "axiom"}
        if isinstance(source, (str, Path)):
            p = Path(source)
            return cls.from_csv(p, **cols) if p.suffix == ".csv" else cls.from_jsonl(p, **cols)
        return cls.from_records(source, **cols)


def load_prompts(source: Any, *, format: str | None = None, **columns: Any) -> PromptSet:
    """Load a :class:`PromptSet` from a file or an in-memory table.

    Parameters
    ----------
    source : path, PromptSet, DataFrame, datasets.Dataset or iterable of dicts
        Where the prompts come from.
    format : {"jsonl", "csv", "litmus"}, optional
        File format; inferred from the suffix (``.jsonl``/``.json``, ``.csv``) if omitted.
        ``"jsonl"`` also reads a JSON file holding one array of objects.
    **columns
        Column names, e.g. ``text_col="prompt"`` (see :meth:`PromptSet.from_records`).

    Examples
    --------
    >>> load_prompts([{"text": "Hi", "label": "safe"}, {"text": "Hurt", "label": 1}]).labels
    ('safe', 'unsafe')
    """
    if isinstance(source, PromptSet):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            raise IsADirectoryError(f"prompt file {str(path)!r} is a directory")
        if not path.is_file():
            raise FileNotFoundError(f"prompt file not found: {str(path)!r}")
        fmt = format or {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}.get(path.suffix)
        if fmt == "jsonl":
            return PromptSet.from_jsonl(path, **columns)
        if fmt == "csv":
            return PromptSet.from_csv(path, **columns)
        if fmt == "litmus":
            if columns:
                raise ValueError(
                    f"format='litmus' fixes the columns (input, safety_label, axiom); got "
                    f"{', '.join(sorted(columns))} as well"
                )
            return PromptSet.from_litmus(path)
        raise ValueError(
            f"format={format!r} for {str(path)!r}; expected 'jsonl', 'csv' or 'litmus' "
            "(or a .jsonl/.json/.csv suffix)"
        )
    if format == "litmus":
        return PromptSet.from_litmus(source)
    if hasattr(source, "column_names") and hasattr(source, "features"):
        return PromptSet.from_hf_dataset(source, **columns)
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        return PromptSet.from_pandas(source, **columns)
    if isinstance(source, Iterable):
        return PromptSet.from_records(source, **columns)
    raise TypeError(
        f"cannot load prompts from {type(source).__name__}; expected a path, a PromptSet, "
        "a DataFrame, a datasets.Dataset or an iterable of dicts"
    )


def bundled_prompts() -> PromptSet:
    """The bundled set: 147 matched safe/unsafe pairs over the seven LITMUS axioms.

    See ``aqi/data/DATA_CARD.md``. Requests only; no harmful content.

    Examples
    --------
    >>> ps = bundled_prompts()
    >>> len(ps), len(set(ps.categories))
    (294, 7)
    """
    with resources.files("aqi.data").joinpath("litmus_pairs.jsonl").open(encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    return PromptSet.from_records(records, name="aqi-litmus-pairs")
