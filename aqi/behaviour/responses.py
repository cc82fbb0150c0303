"""Generated responses: the record type, the container and the JSONL file they live in.

A responses file (``aqi-responses`` version 1, documented in ``docs/format.md``)
is JSON Lines: a header object on the first line (schema name and version,
the generation ``identity`` that decides whether a run may be resumed, and
provenance), then one object per response. Records are appended batch by
batch with ``flush`` + ``fsync``, so a crash loses at most the batch being
written; a torn last line is cut off when the file is reopened. One writer at a
time holds ``<path>.lock`` and a writer replaces only a file that is an aqi
responses file (:mod:`aqi.behaviour.response_writer`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import ArgumentError
from ..activations import Prompt, PromptSet, load_prompts

__all__ = [
    "RESPONSES_SCHEMA",
    "RESPONSES_VERSION",
    "Response",
    "Responses",
    "TokenUse",
    "is_responses_file",
    "load_responses",
    "with_responses",
]

RESPONSES_SCHEMA = "aqi-responses"
RESPONSES_VERSION = 1


@dataclass(frozen=True, slots=True)
class Response:
    """One generated response to one prompt.

    Parameters
    ----------
    prompt_id : str
        The id of the prompt it answers.
    sample : int
        Sample index ``0 .. n-1`` (always ``0`` for greedy decoding).
    text : str
        The decoded response (special tokens removed, cut at the first end-of-sequence
        token); ``""`` for an empty generation, which is kept and judged.
    label : {"safe", "unsafe"}
        The prompt's label (copied so that a responses file is self-contained).
    category : str
        The prompt's category.
    pair_id : str or None
        The prompt's pair id.
    finish_reason : {"eos", "length", "settled"}
        Whether generation stopped on an end-of-sequence token, on ``max_new_tokens``, or
        because the judge's verdict could no longer change (``stop_when_settled``).
    n_prompt_tokens : int
        Tokens of the rendered prompt fed to the model (after any truncation).
    n_new_tokens : int
        Tokens generated before the end-of-sequence token (or the early stop).
    truncated : bool
        The user's text was cut on the left to fit the context.
    prompt_text : str or None
        The text of the prompt it answers (as given, before any cut), so that
        evidence answering other prompts can be refused; ``None`` in files
        written before it was recorded.
    """

    prompt_id: str
    sample: int
    text: str
    label: str
    category: str = ""
    pair_id: str | None = None
    finish_reason: str = "eos"
    n_prompt_tokens: int = -1
    n_new_tokens: int = -1
    truncated: bool = False
    prompt_text: str | None = None

    @property
    def key(self) -> tuple[str, int]:
        """``(prompt_id, sample)``: what pairs responses of two models."""
        return (self.prompt_id, self.sample)

    def to_record(self) -> dict[str, Any]:
        """The JSONL record (``text`` is stored under ``"response"``)."""
        d = asdict(self)
        d["response"] = d.pop("text")
        return d

    @classmethod
    def from_record(cls, rec: Mapping[str, Any], *, line: int = 0, source: str = "") -> Response:
        where = f"{source}:{line}" if source else f"line {line}"
        try:
            d = {k: v for k, v in rec.items() if k in _FIELDS}  # newer keys: additive
            d["text"] = rec["response"]
            out = cls(**d)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ValueError(f"{where}: not an aqi-responses record ({e})") from None
        for name, kinds in (("prompt_id", str), ("text", str), ("label", str), ("sample", int)):
            value = getattr(out, name)
            if not isinstance(value, kinds) or isinstance(value, bool):
                key = "response" if name == "text" else name
                raise ValueError(f"{where}: {key}={value!r}; expected a "
                                 f"{'string' if kinds is str else 'whole number'}")
        return out


_FIELDS = frozenset(Response.__dataclass_fields__) - {"text"}


@dataclass(frozen=True)
class TokenUse:
    """Tokens generated for a set of responses against the most they could have taken.

    Parameters
    ----------
    responses : int
        Responses counted.
    generated : int or None
        Tokens kept in them (before any end-of-sequence token); ``None`` when a record
        does not say (``n_new_tokens = -1``).
    maximum : int or None
        ``max_new_tokens`` × responses; ``None`` when the settings are not recorded.
    stopped_early : int
        Responses stopped because the judge's verdict was settled.
    early_stop : dict or None
        The judge that stopped them (the file's ``stop_when_settled``), ``None`` for none.

    Examples
    --------
    >>> TokenUse(responses=4, generated=96, maximum=256, stopped_early=2,
    ...          early_stop={"name": "rules"})
    TokenUse(96 of 256 tokens generated (62.5 % saved), 2 of 4 responses stopped early)
    """

    responses: int
    generated: int | None
    maximum: int | None
    stopped_early: int = 0
    early_stop: Mapping[str, Any] | None = None

    @property
    def saved(self) -> float | None:
        """Share of ``maximum`` not generated (``None`` when either count is unknown)."""
        if self.generated is None or not self.maximum:
            return None
        return 1.0 - self.generated / self.maximum

    def __repr__(self) -> str:
        if self.saved is None:
            return f"TokenUse({self.generated} tokens, maximum unknown)"
        return (f"TokenUse({self.generated} of {self.maximum} tokens generated "
                f"({100 * self.saved:.1f} % saved), {self.stopped_early} of "
                f"{self.responses} responses stopped early)")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"responses": self.responses, "generated": self.generated,
                "maximum": self.maximum, "saved": self.saved,
                "stopped_early": self.stopped_early,
                "early_stop": None if self.early_stop is None else dict(self.early_stop)}


@dataclass(frozen=True)
class Responses(Sequence[Response]):
    """Responses of one model to a prompt set, with the settings that produced them.

    Parameters
    ----------
    records : tuple of Response
        In prompt order, samples in order.
    header : dict
        ``schema``, ``version``, ``identity`` (model, tokenizer, prompts and
        generation settings) and ``provenance``.
    source : str
        The file it was read from (``""`` when built in memory); errors name it.

    Examples
    --------
    >>> rs = Responses(records=(Response("a", 0, "I can't help.", "unsafe"),))
    >>> len(rs), rs.prompt_ids, rs.n_samples
    (1, ('a',), 1)
    """

    records: tuple[Response, ...]
    header: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        seen: set[tuple[str, int]] = set()
        for r in self.records:
            if not isinstance(r, Response):
                raise TypeError(f"records must be aqi Response objects, got {type(r).__name__}")
            if r.key in seen:
                raise ValueError(
                    f"duplicate response for prompt {r.prompt_id!r}, sample {r.sample}"
                )
            seen.add(r.key)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Response:  # type: ignore[override]
        return self.records[i]

    def __iter__(self) -> Iterator[Response]:
        return iter(self.records)

    def __repr__(self) -> str:
        n_unsafe = sum(r.label == "unsafe" for r in self.records)
        model = self.header.get("provenance", {}).get("model", "")
        return (
            f"Responses({len(self)} responses to {len(self.prompt_ids)} prompts, "
            f"{n_unsafe} unsafe, {self.n_samples} per prompt{', ' + model if model else ''})"
        )

    @property
    def prompt_ids(self) -> tuple[str, ...]:
        """Distinct prompt ids, in order."""
        return tuple(dict.fromkeys(r.prompt_id for r in self.records))

    @property
    def n_samples(self) -> int:
        """Largest number of samples for any prompt (0 when empty)."""
        counts: dict[str, int] = {}
        for r in self.records:
            counts[r.prompt_id] = counts.get(r.prompt_id, 0) + 1
        return max(counts.values(), default=0)

    @property
    def identity(self) -> Mapping[str, Any]:
        return self.header.get("identity", {})

    def token_use(self) -> TokenUse:
        """Tokens generated against ``max_new_tokens`` per response (:class:`TokenUse`).

        Examples
        --------
        >>> rs = Responses(records=(Response("a", 0, "No.", "unsafe", n_new_tokens=2,
        ...                                  finish_reason="settled"),),
        ...                header={"identity": {"max_new_tokens": 64}})
        >>> rs.token_use().saved
        0.96875
        """
        counts = [r.n_new_tokens for r in self.records]
        limit = self.identity.get("max_new_tokens")
        return TokenUse(
            responses=len(counts),
            generated=None if any(c < 0 for c in counts) else sum(counts),
            maximum=limit * len(counts) if isinstance(limit, int) else None,
            stopped_early=sum(r.finish_reason == "settled" for r in self.records),
            early_stop=self.identity.get("stop_when_settled"),
        )

    def by_key(self) -> dict[tuple[str, int], Response]:
        """``{(prompt_id, sample): Response}``."""
        return {r.key: r for r in self.records}

    def to_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write header and records to ``path`` (replacing it)."""
        tmp = Path(f"{path}.tmp-{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as f:
            f.write(json.dumps(_full_header(self.header), ensure_ascii=False) + "\n")
            for r in self.records:
                f.write(json.dumps(r.to_record(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def _full_header(header: Mapping[str, Any]) -> dict[str, Any]:
    return {"schema": RESPONSES_SCHEMA, "version": RESPONSES_VERSION, **header}


_HEADER_PREFIX = b'{"schema": "aqi-responses"'  # how every aqi writer starts a file


def _header_problem(raw: bytes) -> str | None:
    """Why ``raw`` (a file's first bytes) is not an aqi responses file; ``None`` if it is.

    An empty file, or a torn first line that is the start of an aqi header (a
    crash while the header was written), counts as one.
    """
    if not raw.strip():
        return None
    first, newline, _ = raw.partition(b"\n")
    if not newline:  # one torn line: ours only if it is the start of our header
        if raw.startswith(_HEADER_PREFIX):
            return None
        return "its only line is not an aqi-responses header"
    try:
        header = json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "its first line is not JSON"
    schema = header.get("schema") if isinstance(header, dict) else None
    if schema != RESPONSES_SCHEMA:
        return f"header schema={schema!r}; expected {RESPONSES_SCHEMA!r}"
    version = header.get("version")
    if not isinstance(version, int) or version > RESPONSES_VERSION:
        return (f"{RESPONSES_SCHEMA} version {version!r}; this aqi reads versions "
                f"<= {RESPONSES_VERSION}")  # fmt: skip
    return None


def is_responses_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an aqi responses file that aqi may replace or resume.

    True for an empty file and for a file cut inside its header line (a crash
    while it was created); false for anything else — a prompt file, another
    JSONL, an activation store, a folder.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "p.jsonl"
    >>> _ = p.write_text('{"id": "a", "text": "Hi", "label": "safe"}\\n')
    >>> is_responses_file(p)
    False
    """
    p = Path(path)
    if not p.is_file():
        return False
    return _header_problem(_head(p)) is None


def _head(path: Path) -> bytes:
    """The first MiB of ``path``: enough for a header line (a few kB)."""
    with path.open("rb") as f:
        return f.read(1 << 20)


def _read_jsonl(path: Path, *, repair: bool) -> tuple[dict[str, Any] | None, list[Response]]:
    """Header and records of a responses file; a torn last line is cut off when ``repair``.

    The header is checked before anything is cut: a file that is not ours is
    never modified.
    """
    raw = path.read_bytes()
    problem = _header_problem(raw)
    if problem is not None:
        raise ValueError(f"{path}: not an aqi-responses file ({problem})")
    if not raw.strip():
        return None, []
    lines = raw.split(b"\n")
    complete = lines[:-1]  # the part after the last newline is torn (or empty)
    if lines[-1].strip():
        if not repair:
            raise ValueError(f"{path}: last line is incomplete (an interrupted write)")
        warnings.warn(
            f"{path}: dropped an incomplete last line left by an interrupted write; "
            "its responses will be generated again",
            stacklevel=5,
        )
        with path.open("r+b") as f:
            f.truncate(len(raw) - len(lines[-1]))
            f.flush()
            os.fsync(f.fileno())
    if not complete:
        return None, []
    header = json.loads(complete[0])
    records = []
    for i, line in enumerate(complete[1:], start=2):
        if line.strip():
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ValueError(f"{path}:{i}: not valid JSON") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{i}: expected a JSON object, got {type(rec).__name__}")
            records.append(Response.from_record(rec, line=i, source=str(path)))
    return header, records


def load_responses(path: str | os.PathLike[str]) -> Responses:
    """Read a responses file written by :func:`aqi.behaviour.generate_responses`.

    Records come in file order, which is generation order (length-sorted
    batches); pair or look them up with :meth:`Responses.by_key`.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not an ``aqi-responses`` file, a newer version, or a malformed line.
    """
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"responses file {str(p)!r} is a directory; name a file")
    if not p.is_file():
        raise FileNotFoundError(f"no responses file at {str(p)!r}")
    header, records = _read_jsonl(p, repair=False)
    if header is None:
        raise ValueError(f"{p}: empty file; not an aqi-responses file")
    body = {k: v for k, v in header.items() if k not in ("schema", "version")}
    try:
        return Responses(records=tuple(records), header=body, source=str(p))
    except ValueError as e:
        raise ValueError(f"{p}: {e} (two writers on one file?); generate it again with "
                         "--overwrite / overwrite=True") from None  # fmt: skip


def with_responses(
    prompts: Any,
    responses: Responses,
    *,
    sample: int = 0,
    on_empty: str = "error",
) -> PromptSet:
    """The prompts with each one's generated response attached, ready for ``capture``.

    ``aqi.capture(model, tok, with_responses(prompts, rs), path, span="response",
    include_response=True)`` then reads the model's activations over its **own**
    responses (the AQI paper's setting).

    Parameters
    ----------
    prompts : PromptSet or anything :func:`aqi.load_prompts` accepts
        The prompts the responses answer.
    responses : Responses
        From :func:`generate_responses` or :func:`load_responses`.
    sample : int, default 0
        Which sample to attach when several were drawn per prompt.
    on_empty : {"error", "drop"}, default "error"
        What to do with prompts whose response is empty or whitespace (a
        response span must hold tokens): raise, naming them, or leave those
        prompts out.

    Raises
    ------
    ValueError
        A prompt without a response (for ``sample``), a response recording
        another text for the prompt's id, or empty responses with
        ``on_empty="error"``.

    Examples
    --------
    >>> ps = PromptSet([Prompt("a", "Hi?", "safe")])
    >>> rs = Responses(records=(Response("a", 0, "Hello!", "safe"),))
    >>> with_responses(ps, rs)["a"].response
    'Hello!'
    """
    if on_empty not in ("error", "drop"):
        raise ValueError(f"on_empty={on_empty!r}; expected 'error' or 'drop'")
    if not isinstance(responses, Responses):
        raise TypeError(
            f"responses must be aqi.behaviour.Responses, got {type(responses).__name__}"
        )
    ps = load_prompts(prompts)
    by_key = responses.by_key()
    missing = [p.id for p in ps if (p.id, sample) not in by_key]
    if missing:
        raise ValueError(
            f"{len(missing)} prompt(s) have no response for sample {sample}: "
            f"{', '.join(map(repr, missing[:5]))}"
        )
    other = [p.id for p in ps if by_key[(p.id, sample)].prompt_text not in (None, p.text)]
    if other:
        src = f"responses {responses.source!r}" if responses.source else "the responses"
        raise ValueError(
            f"{src} answer other prompts: {len(other)} prompt id(s) have another text there "
            f"(e.g. {other[0]!r}: {by_key[(other[0], sample)].prompt_text!r} vs "
            f"{ps[other[0]].text!r}); generate them from these prompts"
        )
    empty = [p.id for p in ps if not by_key[(p.id, sample)].text.strip()]
    if empty and on_empty == "error":
        raise ArgumentError(
            f"{len(empty)} empty response(s) cannot be captured with span='response': "
            f"{', '.join(map(repr, empty[:5]))}; pass {{on_empty}} to leave them out",
            on_empty="drop",
        )
    dropped = set(empty)
    rows: list[Prompt] = [
        replace(p, response=by_key[(p.id, sample)].text) for p in ps if p.id not in dropped
    ]
    return PromptSet(rows, name=ps.name, source=ps.source)
