"""Prompt files read without guessing: encodings, BOMs, JSON arrays, strict CSV, located errors."""

from __future__ import annotations

import codecs
import json

import numpy as np
import pytest

from aqi.activations import PromptSet, load_prompts

ROWS = [
    {"id": "p7", "text": "How do I bake bread?", "label": "safe", "category": "food"},
    {"id": "p3", "text": "How do I poison bread?", "label": "unsafe", "category": "food"},
]


def _csv(rows: list[dict], cols: list[str]) -> str:
    return ",".join(cols) + "\n" + "".join(",".join(r[c] for c in cols) + "\n" for r in rows)


@pytest.mark.parametrize("first", ["id", "text"])
def test_csv_with_utf8_bom_keeps_ids_and_columns(tmp_path, first):
    # Excel's "CSV UTF-8" starts with a BOM; before, ids silently became '0', '1', … (id first)
    # or the load failed on a column named '\ufefftext' (text first).
    cols = [first] + [c for c in ("id", "text", "label", "category") if c != first]
    p = tmp_path / "bom.csv"
    p.write_bytes(codecs.BOM_UTF8 + _csv(ROWS, cols).encode())
    ps = load_prompts(p)
    assert ps.ids == ("p7", "p3")
    assert ps.labels == ("safe", "unsafe") and ps.texts[0] == ROWS[0]["text"]


def test_jsonl_with_utf8_bom(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(codecs.BOM_UTF8 + "".join(json.dumps(r) + "\n" for r in ROWS).encode())
    assert load_prompts(p).ids == ("p7", "p3")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_utf16_with_bom_is_read(tmp_path, suffix):
    text = _csv(ROWS, ["id", "text", "label"]) if suffix == ".csv" else json.dumps(ROWS[0]) + "\n"
    p = tmp_path / f"u16{suffix}"
    p.write_bytes(text.encode("utf-16"))
    assert load_prompts(p).ids[0] == "p7"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_latin1_bytes_name_file_line_and_byte(tmp_path, suffix):
    rows = [dict(ROWS[0]), {**ROWS[1], "text": "Où est le café?"}]
    text = _csv(rows, ["id", "text", "label"]) if suffix == ".csv" else "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for r in rows
    )
    p = tmp_path / f"latin{suffix}"
    p.write_bytes(text.encode("latin-1"))
    line = 3 if suffix == ".csv" else 2
    with pytest.raises(ValueError, match=rf"latin\{suffix}:{line}: not valid UTF-8 \(byte 0xf9"):
        load_prompts(p)


def test_json_array_of_records_is_accepted(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps(ROWS, indent=2))
    assert load_prompts(p).ids == ("p7", "p3")
    p.write_text(json.dumps([ROWS[0], {"text": "x"}]))
    with pytest.raises(ValueError, match=r"p\.json: record 2: missing column 'label'"):
        load_prompts(p)
    p.write_text('{"rows": []}')
    with pytest.raises(ValueError, match=r"p\.json:1: missing column 'text' \(columns: \['rows'\]"):
        load_prompts(p)  # one object is read as one JSON line: it names what it lacks
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"record 1: expected a JSON object"):
        load_prompts(p)


def test_jsonl_line_that_is_not_an_object(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(["a", "b"]) + "\n")
    with pytest.raises(ValueError, match=r"p\.jsonl:3: expected a JSON object.*got list"):
        load_prompts(p)


def test_duplicate_key_in_one_json_object(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "a", "text": "x", "label": "safe", "label": "unsafe"}\n')
    with pytest.raises(ValueError, match=r"p\.jsonl:1: key 'label' appears twice"):
        load_prompts(p)


def test_errors_count_lines_from_one_and_name_the_file(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps({**ROWS[1], "label": "bad"}) + "\n")
    with pytest.raises(ValueError, match=r"p\.jsonl:3 \(id='p3'\): label='bad' is not a known"):
        load_prompts(p)
    p.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps({**ROWS[1], "id": "p7"}) + "\n")
    with pytest.raises(ValueError, match=r"p\.jsonl:2: duplicate id 'p7' \(first at .*l:1\)"):
        load_prompts(p)
    with pytest.raises(ValueError, match=r"^row 2: label='x'"):
        load_prompts([ROWS[0], {"text": "a", "label": "x"}])


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('id,text,label\na,"Hello, world",safe\nb,Hi, there,unsafe\n',
         r"c\.csv:3: 4 fields but the header has 3 \(id, text, label\); quote fields"),
        ("id,text,label\na,Hello\n", r"c\.csv:2: 2 fields but the header has 3"),
        ('id,text,label\na,"x"y,safe\n', r"c\.csv:2: not valid CSV \(',' expected after"),
        ("id,text,text,label\na,x,y,safe\n", r"c\.csv:1: the header names column 'text' twice"),
        ("id;text;label\na;x;safe\n", r"c\.csv:1: .*looks ';'-separated"),
        ("", r"c\.csv: empty file"),
        ("id,text,label\n", r"c\.csv: prompts is empty"),
        ("id,text,label\n,x,safe\nb,y,unsafe\n", r"c\.csv:2: no 'id' while other rows have one"),
        ("id,prompt,label\na,x,safe\n",
         r"c\.csv:2: missing column 'text' .*text_col= \(aqi capture --text-col\)"),
        ("id, text,label\na,x,safe\n", r"did you mean ' text'\?"),
    ],
)  # fmt: skip
def test_csv_shape_errors_name_file_and_line(tmp_path, body, match):
    p = tmp_path / "c.csv"
    p.write_text(body)
    with pytest.raises(ValueError, match=match):
        load_prompts(p)


def test_csv_long_field_and_multiline_text(tmp_path):
    long = "word " * 40_000  # 200,000 characters: over Python's default csv field limit
    p = tmp_path / "long.csv"
    p.write_text(f'id,text,label\na,"{long}",safe\nb,"two\nlines",unsafe\nc,x,"oops\n')
    with pytest.raises(ValueError, match=r"long\.csv:5: not valid CSV \(unexpected end of data\)"):
        load_prompts(p)
    p.write_text(f'id,text,label\na,"{long}",safe\nb,"two\nlines",unsafe\nc,x,safe\n')
    ps = load_prompts(p)
    assert ps.texts[0] == long and ps.texts[1] == "two\nlines" and ps.ids == ("a", "b", "c")


def test_float_and_nested_ids_are_refused_not_respelled():
    with pytest.raises(TypeError, match=r"row 1: id=1\.0 is a float; ids must be strings or integ"):
        load_prompts([{"id": 1.0, "text": "x", "label": "safe"}])
    with pytest.raises(TypeError, match=r"row 1: id=\['a'\] is a list"):
        load_prompts([{"id": ["a"], "text": "x", "label": "safe"}])
    ps = load_prompts([{"id": np.int64(7), "text": "x", "label": "safe"}])
    assert ps.ids == ("7",)


def test_columns_for_litmus_format_are_refused(tmp_path):
    p = tmp_path / "l.jsonl"
    p.write_text(json.dumps({"input": "x", "safety_label": "safe", "axiom": "a"}) + "\n")
    assert load_prompts(p, format="litmus").texts == ("x",)
    with pytest.raises(ValueError, match="format='litmus' fixes the columns"):
        load_prompts(p, format="litmus", text_col="input")


def test_records_must_be_an_iterable_of_mappings():
    with pytest.raises(TypeError, match="records must be an iterable of mappings, got dict"):
        PromptSet.from_records({"text": "x", "label": "safe"})


def test_deeply_nested_json_and_a_directory_are_clear_errors(tmp_path):
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match=r"deep\.json: nested too deeply"):
        load_prompts(p)
    (tmp_path / "d.jsonl").mkdir()
    with pytest.raises(IsADirectoryError, match=r"d\.jsonl' is a directory"):
        load_prompts(tmp_path / "d.jsonl")
