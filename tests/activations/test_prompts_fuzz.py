"""Fuzzing the prompt loaders and the store reader: a clear error or the right rows, nothing else.

"Clear error" is ValueError / TypeError / FileNotFoundError (a decoding problem comes
as a ValueError naming the file and line); anything else escaping is a bug, and so is a
result whose ids or labels differ from what the file says.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import aqi
from aqi.activations import load_prompts

CLEAR = (ValueError, TypeError, FileNotFoundError)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SUFFIXES = (".jsonl", ".csv", ".json")

# Texts avoid only what the formats cannot hold verbatim (surrogates; in CSV a lone \r
# becomes a line break); they include commas, quotes, newlines, BOMs and other scripts.
_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00"), min_size=1
).filter(lambda s: s.strip())
_id = st.one_of(st.text(min_size=1, max_size=8).filter(lambda s: s.strip() == s and "\r" not in s
                                                      and "\x00" not in s),
                st.integers(0, 10**6).map(str))  # fmt: skip
_rows = st.lists(
    st.fixed_dictionaries(
        {"id": _id, "text": _text, "label": st.sampled_from(["safe", "unsafe", "0", "1"]),
         "category": st.text(max_size=6).filter(lambda s: "\r" not in s and "\x00" not in s)}
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda r: r["id"],
)


def _serialise(rows: list[dict[str, str]], cols: list[str], suffix: str) -> str:
    if suffix == ".csv":
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        w.writerows([[r[c] for c in cols] for r in rows])
        return buf.getvalue()
    ordered = [{c: r[c] for c in cols} for r in rows]
    if suffix == ".json":
        return json.dumps(ordered, ensure_ascii=False, indent=1)
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered)


def _expected_label(raw: str) -> str:
    return {"0": "safe", "1": "unsafe"}.get(raw, raw)


def _load(path: Path):
    try:
        return load_prompts(path)
    except CLEAR as e:
        message = str(e)
    assert path.name in message, message  # every message names the file
    return None


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes_give_a_clear_error_or_rows(tmp_path_factory, data, suffix):
    p = tmp_path_factory.mktemp("fz") / f"p{suffix}"
    p.write_bytes(data)
    _load(p)


@FUZZ
@given(
    rows=_rows,
    order=st.permutations(["id", "text", "label", "category"]),
    suffix=st.sampled_from(SUFFIXES),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]),
)
def test_valid_files_round_trip_ids_and_labels_exactly(
    tmp_path_factory, rows, order, suffix, encoding
):
    text = _serialise(rows, list(order), suffix)
    if encoding == "latin-1":
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:
            assume(False)
    else:
        data = text.encode(encoding)
    p = tmp_path_factory.mktemp("fz") / f"p{suffix}"
    p.write_bytes(data)
    ps = _load(p)
    if encoding == "latin-1" and not text.isascii():
        assert ps is None  # Latin-1 bytes beyond ASCII are not UTF-8: an error, never mojibake
        return
    if ps is None:  # only texts that collide with a delimiter rule may be refused …
        pytest.fail(f"a valid {suffix} file in {encoding} was refused")
    assert ps.ids == tuple(r["id"] for r in rows)
    assert ps.labels == tuple(_expected_label(r["label"]) for r in rows)
    assert ps.texts == tuple(r["text"] for r in rows)
    assert ps.categories == tuple(r["category"] for r in rows)


@FUZZ
@given(
    rows=_rows,
    order=st.permutations(["id", "text", "label", "category"]),
    suffix=st.sampled_from(SUFFIXES),
    cut=st.floats(0, 1, exclude_max=True),
)
def test_truncated_files_never_change_ids_or_labels(tmp_path_factory, rows, order, suffix, cut):
    data = _serialise(rows, list(order), suffix).encode()
    p = tmp_path_factory.mktemp("fz") / f"p{suffix}"
    p.write_bytes(data[: int(len(data) * cut)])
    ps = _load(p)
    if ps is None:
        return
    n = len(ps)
    assert n <= len(rows)
    # Every row read is a row of the file, in order; only in CSV can the last field of the
    # last row be cut without a trace (the format has no end marker): then it is a prefix.
    for i, (pid, label) in enumerate(zip(ps.ids, ps.labels, strict=True)):
        if suffix == ".csv" and i == n - 1 and order[-1] == "id":
            # (cut to an empty id in a one-row file: no row has an id, so ids are generated)
            assert rows[i]["id"].startswith(pid) or (n == 1 and pid == "0")
        else:
            assert pid == rows[i]["id"]
        assert label == _expected_label(rows[i]["label"])


# -- the store reader -----------------------------------------------------------------


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("store") / "s.h5"
    arrays = {f"L{i}": rng.normal(size=(12, 4)) for i in range(2)}
    aqi.store_from_arrays(path, arrays, labels=["safe", "unsafe"] * 6).close()
    return path


def _open(path: Path) -> None:
    try:
        with aqi.open_store(path) as s:
            s.activations(s.layers[0])
            assert len(s.ids) == s.n_rows
        return
    except CLEAR as e:
        message = str(e)
    assert path.name in message, message


@FUZZ
@given(data=st.binary(max_size=600))
def test_store_reader_on_random_bytes(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fz") / "s.h5"
    p.write_bytes(data)
    _open(p)


@FUZZ
@given(cut=st.floats(0, 1, exclude_min=True, exclude_max=True))
def test_store_reader_on_a_truncated_store(tmp_path_factory, store_file, cut):
    store_bytes = store_file.read_bytes()
    p = tmp_path_factory.mktemp("fz") / "s.h5"
    p.write_bytes(store_bytes[: max(1, int(len(store_bytes) * cut))])
    _open(p)
