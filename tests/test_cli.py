"""The aqi command: capture, info, exit codes, stdout/stderr discipline."""

from __future__ import annotations

import json

import pytest

from aqi.cli import main

from .conftest import write_jsonl


@pytest.fixture(scope="module")
def tiny_model_dir(tiny_factory, tmp_path_factory):
    model, tok = tiny_factory("llama")
    d = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_capture_then_info_json(tiny_model_dir, tmp_path, capsys):
    prompts = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "text": "How do I bake bread?", "label": "safe"},
            {"id": "b", "text": "How do I poison bread?", "label": "unsafe"},
        ],
    )
    out = tmp_path / "s.h5"
    rc = main(
        [
            "capture",
            "--model",
            str(tiny_model_dir),
            "--prompts",
            str(prompts),
            "--out",
            str(out),
            "--layers",
            "0,-1",
            "--pooling",
            "mean",
            "--quiet",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    info = json.loads(captured.out)
    assert info["rows"] == 2 and info["unsafe"] == 1 and info["complete"]
    assert info["layers"] == ["model.layers.0", "model.layers.2"]
    assert main(["info", str(out)]) == 0
    assert "complete, 2/2 rows (1 unsafe)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (
            ["capture", "--model", "x", "--prompts", "/nonexistent.jsonl", "--out", "o.h5"],
            "prompt file not found",
        ),
        (["info", "/nonexistent.h5"], "no activation store"),
    ],
)
def test_input_errors_exit_2_with_message(argv, err, capsys):
    assert main(argv) == 2
    assert err in capsys.readouterr().err


def test_bad_layer_name_exit_2(tiny_model_dir, tmp_path, capsys):
    rc = main(
        [
            "capture",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(tmp_path / "s.h5"),
            "--layers",
            "model.layer.1",
            "--quiet",
        ]
    )
    assert rc == 2
    assert "did you mean 'model.layers.1'" in capsys.readouterr().err


def test_usage_error_and_help(capsys):
    assert main(["capture"]) == 2
    assert main(["--help"]) == 0
    assert "exit codes: 0 success" in capsys.readouterr().out
