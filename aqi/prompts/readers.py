"""Read prompt files into located records, without guessing.

Every record comes with its location (``"prompts.csv:4"``: file and line,
counted from 1), so that every message about a row names the file and the
line to fix. Files are UTF-8, with or without a byte-order mark; UTF-16 is
read when it starts with its byte-order mark; anything else that is not
valid UTF-8 is an error naming the file, line and byte, never a silent
replacement character.

- JSON Lines: one object per line, blank lines ignored;
- JSON: one array of objects (a ``.json`` or ``.jsonl`` file whose first
  character is ``[``);
- CSV: comma-separated with a header row; a row with more or fewer fields
  than the header, or a header naming a column twice, is an error.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["read_csv_records", "read_json_records", "read_text"]

Located = tuple[str, Any]  # (location, record)


def read_text(path: str | Path) -> str:
    """The text of a UTF-8 (BOM optional) or BOM-marked UTF-16 file.

    Raises
    ------
    ValueError
        When the bytes are not valid in that encoding; the message names the
        file, the line (from 1) and the offending byte.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "p.csv")
    >>> _ = open(p, "wb").write(b"\\xef\\xbb\\xbfid,text")
    >>> read_text(p)
    'id,text'
    >>> _ = open(p, "wb").write(b"id,text\\ncaf\\xe9")
    >>> read_text(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...p.csv:2: not valid UTF-8 (byte 0xe9 at column 4); save the file as UTF-8...
    """
    path = Path(path)
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, body = "utf-16", data
    else:
        encoding, body = "utf-8", data.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode(encoding)
    except UnicodeDecodeError as e:
        before = body[: e.start].decode(encoding, errors="replace")
        line = before.count("\n") + 1
        column = len(before) - (before.rfind("\n") + 1) + 1
        raise ValueError(
            f"{path}:{line}: not valid {encoding.upper()} (byte 0x{body[e.start]:02x} at "
            f"column {column}); save the file as UTF-8 (e.g. a Latin-1 or Windows-1252 "
            "export must be converted)"
        ) from None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {k!r} appears twice in one object")
        out[k] = v
    return out


def _loads(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise ValueError("nested too deeply to be a prompt record") from None


def read_json_records(path: str | Path) -> list[Located]:
    """Records of a JSON Lines file, or of a JSON file holding one array of objects.

    Each record is located by ``file:line`` (JSON Lines) or ``file: record n``
    (an array). Non-object records are an error, as is a key given twice in
    one object (JSON would keep the last silently).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "p.json")
    >>> _ = open(p, "w").write('[{"text": "Hi", "label": "safe"}]')
    >>> [(loc.rsplit(os.sep, 1)[-1], rec) for loc, rec in read_json_records(p)]
    [('p.json: record 1', {'text': 'Hi', 'label': 'safe'})]
    """
    path = Path(path)
    text = read_text(path)
    if text.lstrip().startswith("["):
        try:
            items = _loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        if not isinstance(items, list):  # pragma: no cover - '[' always parses to a list
            raise ValueError(f"{path}: expected a JSON array of objects")
        located = [(f"{path}: record {i}", rec) for i, rec in enumerate(items, 1)]
    else:
        located = []
        for lineno, line in enumerate(io.StringIO(text, newline=None), 1):
            if not line.strip():
                continue
            try:
                located.append((f"{path}:{lineno}", _loads(line)))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
    for loc, rec in located:
        if not isinstance(rec, dict):
            raise ValueError(
                f"{loc}: expected a JSON object with the prompt's fields, got "
                f"{type(rec).__name__} (JSON Lines: one object per line; JSON: one array "
                "of objects)"
            )
    return located


def read_csv_records(path: str | Path) -> list[Located]:
    """Rows of a comma-separated file with a header, located by ``file:line``.

    Empty cells become ``None``; blank lines are skipped. Fields of any
    length are read (Python's ``csv`` limit of 131,072 characters is lifted
    while reading).

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "p.csv")
    >>> _ = open(p, "w").write('id,text,label\\n7,"Hi, you",safe\\n')
    >>> [rec for _, rec in read_csv_records(p)]
    [{'id': '7', 'text': 'Hi, you', 'label': 'safe'}]
    """
    path = Path(path)
    text = read_text(path)
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        return _parse_csv(path, text)
    finally:
        csv.field_size_limit(old_limit)


def _parse_csv(path: Path, text: str) -> list[Located]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    located: list[Located] = []
    header: list[str] | None = None
    last_line = 0
    try:
        for fields in reader:
            line, last_line = last_line + 1, reader.line_num
            if not fields or fields == [""]:
                continue
            if header is None:
                header = fields
                seen = set()
                for col in header:
                    if col in seen:
                        raise ValueError(f"{path}:{line}: the header names column {col!r} twice")
                    seen.add(col)
                if len(header) == 1 and any(s in header[0] for s in (";", "\t", "|")):
                    sep = next(s for s in (";", "\t", "|") if s in header[0])
                    raise ValueError(
                        f"{path}:{line}: the header {header[0]!r} is one column; the file "
                        f"looks {sep!r}-separated but CSV files must be comma-separated"
                    )
                continue
            if len(fields) != len(header):
                raise ValueError(
                    f"{path}:{line}: {len(fields)} fields but the header has {len(header)} "
                    f"({', '.join(header)}); quote fields that contain commas, quotes or "
                    "line breaks"
                )
            record = {k: (v if v != "" else None) for k, v in zip(header, fields, strict=True)}
            located.append((f"{path}:{line}", record))
    except csv.Error as e:
        raise ValueError(f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    if header is None:
        raise ValueError(f"{path}: empty file; expected a header row and one row per prompt")
    return located


def missing_column(col: str, arg: str, rec: Mapping[str, Any]) -> str:
    """``missing column ...`` with the columns present, a near match, and how to name it."""
    cols = sorted(map(str, rec))
    near = [c for c in cols if c.strip().lstrip("\ufeff").lower() == col.lower() and c != col]
    hint = f"; did you mean {near[0]!r}?" if near else ""
    flag = "--" + arg.replace("_", "-")
    return (
        f"missing column {col!r} (columns: {cols}){hint}; name the column with {arg}= "
        f"(aqi capture {flag})"
    )


def id_string(value: object, *, loc: str, column: str) -> str:
    """An id as a string: strings as they are, integers in decimal; anything else refused.

    >>> id_string(7, loc="p.csv:2", column="id"), id_string("007", loc="p.csv:2", column="id")
    ('7', '007')
    """
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(
        f"{loc}: {column}={value!r} is a {type(value).__name__}; ids must be strings or "
        "integers (a float id, e.g. from a pandas column with gaps, would change its spelling)"
    )
