"""``aqi track`` over saved checkpoint folders of a tiny random Llama."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from aqi.cli import main
from aqi.integrations.track import checkpoint_step, track_checkpoints
from aqi.viz import read_series


@pytest.fixture(scope="module")
def run_dir(tiny_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base model and checkpoints 5 and 10 (weights nudged), checkpoint-7 without
    weights (a save that was interrupted)."""
    model, tok = tiny_factory("llama")
    root = tmp_path_factory.mktemp("run")
    base = copy.deepcopy(model)
    base.save_pretrained(root / "base")
    tok.save_pretrained(root / "base")
    g = torch.Generator().manual_seed(0)
    for step in (5, 10):
        ck = copy.deepcopy(model)
        with torch.no_grad():
            for p in ck.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.01 * step)
        ck.save_pretrained(root / f"checkpoint-{step}")
        (root / f"checkpoint-{step}" / "trainer_state.json").write_text(
            json.dumps({"global_step": step}), encoding="utf-8")
    (root / "checkpoint-7").mkdir()
    (root / "checkpoint-7" / "config.json").write_text("{}", encoding="utf-8")
    return root


def test_cli_track_series_and_figure(run_dir: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    out = tmp_path / "track"
    cks = [str(run_dir / n) for n in ("checkpoint-10", "checkpoint-7", "checkpoint-5")]
    code = main(["track", *cks, "--baseline-model", str(run_dir / "base"), "--out-dir",
                 str(out), "--pairs", "6", "--max-new-tokens", "3", "--device", "cpu"])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "skipping" in cap.err and "checkpoint-7" in cap.err and "no weights" in cap.err
    recs = read_series(out / "aqi_track.jsonl")
    assert [r["step"] for r in recs] == [0, 5, 10]  # sorted by step, baseline first
    assert recs[0]["checkpoint"].endswith("base") and recs[2]["checkpoint"].endswith("-10")
    assert recs[0]["refusal_shift_unsafe"] == pytest.approx(0.0, abs=1e-9)
    for r in recs:
        assert all(math.isfinite(r[k]) for k in ("aqi_instruction", "aqi_post_instruction",
                                                 "refusal_shift_unsafe"))
    # latent by default: the baseline alone is generated and judged
    assert math.isfinite(recs[0]["refusal"]) and recs[0]["generated"]
    assert all(math.isnan(r["refusal"]) and not r["generated"] for r in recs[1:])
    # the random baseline refuses nothing: no refusal to predict, said, and a warn
    assert all(r["verdict"] == "warn" and "refused 0 of" in r["summary"] for r in recs)
    # the nudged weights moved the prompts along the baseline's direction
    assert recs[2]["refusal_shift_unsafe"] != pytest.approx(0.0, abs=1e-6)
    png = (out / "aqi_track.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "series:" in cap.out and "verdict" in cap.out and "predicted" in cap.out


def test_cli_track_generate_judges_every_checkpoint(run_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "track"
    code = main(["track", str(run_dir / "checkpoint-5"), "--baseline-model",
                 str(run_dir / "base"), "--out-dir", str(out), "--pairs", "4",
                 "--max-new-tokens", "2", "--device", "cpu", "--generate", "--judge", "rules"])
    assert code == 0, capsys.readouterr().err
    recs = read_series(out / "aqi_track.jsonl")
    assert [r["step"] for r in recs] == [0, 5]
    assert all(math.isfinite(r["refusal"]) and r["generated"] for r in recs)


def test_cli_track_bad_judge_is_refused_before_a_model_loads(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["track", str(run_dir / "checkpoint-5"), "--baseline-model", "no/such-model",
                 "--judge", "oracle"])  # fmt: skip
    assert code == 2 and "--judge oracle is not a judge" in capsys.readouterr().err


def test_cli_track_no_weights_anywhere_is_one_line_exit_2(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["track", str(run_dir / "checkpoint-7"), "--baseline-model",
                 str(run_dir / "base")])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("aqi track: error: no checkpoint folder holds weights")
    assert "checkpoint-7: no weights" in err[-1]


def test_cli_track_bad_flag_value(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["track", str(run_dir / "checkpoint-5"), "--baseline-model", "x",
                 "--pairs", "0"])  # fmt: skip
    assert code == 2 and "--pairs" in capsys.readouterr().err


def test_track_checkpoints_python(run_dir: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    res = track_checkpoints([run_dir / "checkpoint-5"], run_dir / "base", tmp_path,
                            pairs=6, n_unsafe=4, n_safe=2, max_new_tokens=3, device="cpu",
                            generate=True, warn=lines.append)  # fmt: skip
    assert [r["step"] for r in res.records] == [0, 5] and not res.skipped and not lines
    assert all(math.isfinite(r["refusal"]) for r in res.records)
    assert res.jsonl.is_file() and res.figure.is_file()


@pytest.mark.parametrize(("name", "state", "step"), [
    ("checkpoint-250", None, 250), ("run3-step-40", None, 40), ("final", None, None),
    ("final", {"global_step": 99}, 99), ("checkpoint-1", {"global_step": "x"}, 1),
])  # fmt: skip
def test_checkpoint_step(tmp_path: Path, name: str, state: Any, step: int | None) -> None:
    d = tmp_path / name
    d.mkdir()
    if state is not None:
        (d / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    assert checkpoint_step(d) == step
