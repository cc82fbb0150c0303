"""aqi demo: two aqi audit runs against the demo base, one table, the right verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import aqi
from aqi._errors import ArgumentError
from aqi.cli import main
from aqi.demo.assets import demo_models, demo_prompts
from aqi.demo.run import EXPECTED, run_demo

from .test_assets import tiny_source, write_assets  # noqa: F401 - a fixture

FAST = {"n_boot": 200, "n_perm": 50, "max_new_tokens": 8, "quiet": True, "expected": None}


def _phases(line: dict) -> dict[tuple[str, str], str]:
    return {(p["phase"], p["role"]): p["status"] for p in line["phases"]}


def test_the_demo_path_on_tiny_models_audits_both_finetunes_in_one_work_folder(
    tiny_source: Path,  # noqa: F811 - the fixture
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from transformers import AutoModelForCausalLM

    assets = write_assets(tmp_path / "assets",
                          AutoModelForCausalLM.from_pretrained(tiny_source))  # fmt: skip
    models = demo_models(cache=tmp_path / "cache", folder=assets, source=tiny_source)
    prompts = aqi.bundled_prompts()[:16]
    out = tmp_path / "demo"
    assert run_demo(out, models=models, prompts=prompts, **FAST) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("fine-tune"))
    assert "refusal of unsafe (judged)" in lines[header] and "latent refusal shift" in lines[header]
    for i, name in enumerate(("eroded", "benign"), start=1):
        row = lines[header + i]
        assert row.startswith(name) and str(out / name / "report.html") in row
        assert any(v in row for v in ("PASS", "WARN", "FAIL"))
        assert (out / name / "report.html").is_file() and (out / name / "report.json").is_file()
    assert "phases: models" in text and "total" in text
    runs = [json.loads(ln) for ln in (out / "work" / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2
    first, second = (_phases(r) for r in runs)
    assert first[("generate", "baseline")] == first[("capture", "baseline")] == "ran"
    assert second[("generate", "baseline")] == second[("capture", "baseline")] == "reused"
    assert second[("generate", "audited")] == "ran"
    doc = json.loads((out / "eroded" / "report.json").read_text())
    assert doc["baseline_model"] == "base" and doc["model"] == "eroded"

    # A second run reuses every model's work: nothing is generated or captured again.
    assert run_demo(out, models=models, prompts=prompts, **FAST) == 0
    again = [json.loads(ln) for ln in (out / "work" / "runs.jsonl").read_text().splitlines()]
    for line in again[2:]:
        assert {s for (phase, _), s in _phases(line).items()
                if phase in ("generate", "capture")} == {"reused"}  # fmt: skip
    assert "reused" in capsys.readouterr().out

    # The verdicts are checked when asked: a tiny random model is not built to FAIL.
    verdicts = {n: json.loads((out / n / "report.json").read_text())["verdict"] for n in EXPECTED}
    want = {n: "pass" if v == "fail" else "fail" for n, v in verdicts.items()}
    assert run_demo(out, models=models, prompts=prompts, **{**FAST, "expected": want}) == 1
    assert "not the verdicts the demo models were built for" in capsys.readouterr().err


def test_out_dir_that_is_a_file_is_refused_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "report.txt"
    f.write_text("mine")
    with pytest.raises(ArgumentError, match=r"out_dir='.*report.txt' is a file; expected a folder"):
        run_demo(f)
    assert main(["demo", "--out-dir", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"aqi demo: error: --out-dir {f} is a file")
    assert f.read_text() == "mine"


def test_work_from_another_aqi_version_is_refused_until_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "demo" / "work"
    work.mkdir(parents=True)
    (work / "aqi-workdir.json").write_text(json.dumps({"schema": "aqi-workdir",
                                                        "aqi_version": "0.0.9"}))  # fmt: skip
    assert main(["demo", "--out-dir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "made by aqi 0.0.9, not" in err[0] and "pass --overwrite to redo it" in err[0]


def test_a_corrupted_asset_stops_the_demo_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import aqi.demo.assets as assets

    from ..conftest import build_tiny

    folder = write_assets(tmp_path / "assets", build_tiny("llama", 64))
    data = bytearray((folder / "eroded.safetensors").read_bytes())
    data[100] ^= 1
    (folder / "eroded.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(assets, "assets_dir", lambda: folder)  # where the package keeps them
    assert main(["demo", "--out-dir", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "eroded.safetensors" in err[0] and "is corrupted" in err[0]
    assert "reinstall aqi" in err[0]


@pytest.mark.slow
def test_the_real_demo_models_fail_the_eroded_finetune_and_pass_the_benign_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped models through the demo's path, on half the demo's pairs (time: the
    suite runs slow tests too); `aqi demo` itself was measured on all 48 (README)."""
    prompts = demo_prompts(24)
    assert run_demo(tmp_path / "demo", quiet=True, prompts=prompts) == 0, capsys.readouterr()
    docs = {n: json.loads((tmp_path / "demo" / n / "report.json").read_text()) for n in EXPECTED}
    assert {n: d["verdict"] for n, d in docs.items()} == EXPECTED
    checks = {n: {c["name"]: c for c in d["checks"]} for n, d in docs.items()}
    assert checks["eroded"]["refusal_change"]["verdict"] == "fail"
    assert checks["benign"]["refusal_change"]["verdict"] == "pass"
