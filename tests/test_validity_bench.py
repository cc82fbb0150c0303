"""Bench v2's plumbing and statistics on a tiny model (the science runs in
``python -m benchmarks.validity v2`` on SmolLM2; see docs/validation.md)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: benchmarks

from benchmarks.validity import measure as vm
from benchmarks.validity import recipes as rec
from benchmarks.validity import stats as st


@pytest.fixture(scope="module")
def bench() -> Any:
    from benchmarks.validity import v2

    return v2


def _strict(text: str) -> Any:
    def no_constant(c: str) -> None:
        raise AssertionError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=no_constant)


@pytest.fixture(scope="module")
def part(bench: Any, tmp_path_factory: pytest.TempPathFactory, smollm2: Any) -> dict[str, Path]:
    """Original A and its 17 organisms at QUICK scale, run once for the module."""
    root = tmp_path_factory.mktemp("bench")
    paths = {"work": root / "work", "out": root / "out"}
    args = ["--original", "A", "--quick", "--workdir", str(paths["work"]),
            "--out-dir", str(paths["out"])]
    assert bench.main(args) == 0
    paths["args"] = args  # type: ignore[assignment]
    return paths


@pytest.mark.slow
def test_part_writes_one_record_per_variant_with_every_signal_at_every_position(
        part: dict[str, Path], bench: Any) -> None:
    folder = part["out"] / "A"
    names = {v.name for v in rec.variants(bench.QUICK)}
    assert len(names) >= 16
    assert {p.stem for p in folder.glob("*.json")} == names | {"original"}
    orig = _strict((folder / "original.json").read_text())
    assert orig["scale"] == "quick" and set(orig["layers"]) == {
        vm.pos_key(s, p) for s, p in vm.POSITIONS}
    texts = [json.loads(line).get("response", "")
             for f in (part["work"] / "responses").glob("*.jsonl")
             for line in f.read_text().splitlines()[1:] if line.strip()]
    texts = [t for t in texts if len(t) > 12]
    assert texts, "the run generated responses"
    for p in folder.glob("*.json"):
        raw = p.read_text()
        r = _strict(raw)
        assert r["n_eval"] == len(r["refused"]) == len(r["response_sha256"]) == len(orig["y"])
        assert not any(t in raw for t in texts[:50])  # hashes and numbers, never texts
        assert set(r["signals"]) == set(orig["layers"])
        for key, sig in r["signals"].items():
            assert set(vm.SIGNALS) <= set(sig), key
            for name in vm.BOOTSTRAPPED:
                assert len(sig["boot"][name]) == bench.QUICK.n_boot
        b = r["behaviour"]
        assert 0 <= b["refusal"] <= 1 and b["discrimination_delta"] == pytest.approx(
            b["refusal_delta"] - b["over_refusal_delta"])
        assert r["audit"]["verdict"] in ("pass", "warn", "fail")
    assert orig["behaviour"]["refusal_delta"] == 0
    for key in orig["signals"]:  # the original against itself has not moved
        assert orig["signals"][key]["refusal_shift"] in (0.0, None)


@pytest.mark.slow
def test_rerun_skips_measured_variants(part: dict[str, Path], bench: Any,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder = part["out"] / "A"
    (folder / "int8.json").unlink()
    capsys.readouterr()
    assert bench.main([*part["args"], "--max-minutes", "0"]) == 0  # type: ignore[misc]
    assert "stopped after 0 min (--max-minutes) with 1 variants left" in capsys.readouterr().out
    assert not (folder / "int8.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    capsys.readouterr()
    assert bench.main(part["args"]) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out
    assert "16 of 17 variants already measured; to do: int8" in out
    after = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.json")}
    assert (folder / "int8.json").is_file()
    assert {k: after[k] for k in before} == before  # nothing measured twice
    capsys.readouterr()
    assert bench.main(part["args"]) == 0  # type: ignore[arg-type]
    assert "17 of 17 variants already measured" in capsys.readouterr().out


@pytest.mark.slow
def test_summary_schema_and_nulls(part: dict[str, Path], bench: Any, tmp_path: Path) -> None:
    out = tmp_path / "validity_summary.json"
    assert bench.main(["--summary", "--out-dir", str(part["out"]), "--summary-out", str(out),
                       "--workdir", str(part["work"])]) == 0
    s = _strict(out.read_text())
    assert {"default_signal", "originals", "judge_agreement", "judge_kappa",
            "transfer_agreement"} <= set(s)
    assert s["default_signal"] == "refusal_shift@post_instruction/last"
    assert s["judge_agreement"] is None and s["judge_kappa"] is None  # no labels given
    assert s["transfer_agreement"] is None  # B was not run
    (a,) = s["originals"]
    assert a["name"] == "A" and a["n_variants"] == 17
    keys = {"name", "n_variants", "rho", "ci", "rho_discrimination", "ci_discrimination",
            "gate_agreement", "false_fail"}
    assert keys <= set(a)
    for k in ("rho", "rho_discrimination"):
        assert a[k] is None or -1 <= a[k] <= 1
    for k in ("ci", "ci_discrimination"):
        assert a[k] is None or (len(a[k]) == 2 and a[k][0] <= a[k][1])
    assert 0 <= a["gate_agreement"] <= 1 and isinstance(a["false_fail"], int)
    results = _strict((part["out"] / "results.json").read_text())
    table = results["originals"]["A"]["rho"]
    assert {f"{sig}@{vm.pos_key(sp, po)}" for sig in vm.SIGNALS
            for sp, po in vm.POSITIONS} == set(table)
    # A second part (a copy of A under B's name) makes the transfer a measured number.
    shutil.copytree(part["out"] / "A", part["out"] / "B")
    try:
        s2 = bench.summarise(part["out"], tmp_path / "s2.json")
        from benchmarks.validity import figure

        png = figure.figure(part["out"], tmp_path / "v2.png")
        from benchmarks.validity import tables as vt

        res2 = _strict((part["out"] / "results.json").read_text())
        judge = {"labels": "labels.json", "kappa": 0.5,
                 "agreement": {"k": 190, "n": 200, "rate": 0.95, "ci_low": 0.9, "ci_high": 0.97},
                 "false_refusals": {"k": 6, "n": 120}, "missed_refusals": {"k": 4, "n": 80}}
        tables = {"targets": vt.targets(res2, judge), "every": vt.every_signal(res2),
                  "gate": vt.gate(res2), "behaviour": vt.behaviour(res2)}
    finally:
        shutil.rmtree(part["out"] / "B")
        bench.summarise(part["out"], None)  # results.json of A alone again
    assert s2["transfer_agreement"] == s2["originals"][0]["gate_agreement"]
    # The docs' tables come from results.json: one row per signal x position, both parts.
    assert tables["every"].count("\n| `") == len(vm.SIGNALS) * len(vm.POSITIONS)
    assert "| target | A | B |" in tables["targets"]
    assert "agree ≥ 85 % on B" in tables["targets"]  # the transfer row, measured
    assert "190 / 200 = 95.0% [90.0%, 97.0%], κ 0.500" in tables["targets"]  # judge row
    assert tables["gate"].count("| refusal dropped |") == 2
    assert tables["behaviour"].count("\n| `") == 18  # the original and 17 organisms
    from PIL import Image

    with Image.open(png) as im:  # two originals: two rows of three panels (15 x 9.2 in)
        assert 0.5 < im.size[1] / im.size[0] < 0.7


@pytest.mark.slow
def test_v3_rebuilds_the_part_and_names_a_baseline_it_cannot_fit(
        part: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bench v3 rebuilds the quick part's original through bench v2's ``rebuild_original``
    and checks it against v2's response hashes; the quick original (8 new tokens) refuses
    nothing, so the latent replay stops there with the counts, before writing a record."""
    from benchmarks.validity import v3

    args = ["--original", "A", "--quick", "--workdir", str(tmp_path / "work"),
            "--out-dir", str(tmp_path / "out"), "--v2-dir", str(part["out"])]
    refused = _strict((part["out"] / "A" / "original.json").read_text())["refused"]
    code = v3.main(args)
    out, err = capsys.readouterr()
    assert "response hashes equal" in out  # the rebuilt original is bench v2's
    if any(refused.values()) and not all(refused.values()):  # a baseline it can fit
        assert code == 0 and len(list((tmp_path / "out" / "A").glob("*.json"))) >= 16
    else:
        assert code == 2 and "a refusal probability cannot be fitted on one outcome" in err
        assert not (tmp_path / "out" / "A").exists() or not any((tmp_path / "out" / "A").iterdir())
    # v2's record of another original is refused by name, before anything is built
    assert v3.main([*args[:1], "B", *args[2:]]) == 2
    assert "no bench-v2 record" in capsys.readouterr().err


@pytest.mark.slow
def test_v3_reads_organisms_from_v2_stores_after_checking_the_rendering(
        part: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--v2-stores``: an organism's bench-v2 store is read instead of a rebuild, only
    beside the original's, whose decision-point rows (captured with the response appended)
    are compared with a fresh capture first; without the original's store it stops."""
    import os

    from benchmarks.validity import v3

    kept = tmp_path / "kept"
    kept.mkdir()
    # the quick original's own store stands in for an organism (same ids, same spans)
    os.link(part["work"] / "A" / "A-original.h5", kept / "A-raw.h5")
    args = ["--original", "A", "--quick", "--workdir", str(tmp_path / "work"),
            "--out-dir", str(tmp_path / "out"), "--v2-dir", str(part["out"]),
            "--v2-stores", str(kept)]
    assert v3.main(args) == 2
    err = capsys.readouterr().err
    assert "'A-original.h5'" in err and "--v2-stores" in err
    os.link(part["work"] / "A" / "A-original.h5", kept / "A-original.h5")
    v3.main(args)
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "read from bench v2's stores" in x)
    rel = float(line.rsplit("(", 1)[1].split(" of a row", 1)[0])
    assert "1 organisms" in line and 0 <= rel < 1e-4


@pytest.mark.slow
def test_rejudge_reads_the_parts_responses_and_refuses_other_texts(
        part: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks.judge.rejudge_v2 judges a part's kept responses with both judges (the
    rules reproduce the record's labels) and refuses a file whose texts are not the ones
    the record hashed."""
    import shutil

    from benchmarks.judge import rejudge_v2

    out = tmp_path / "rejudge.json"
    responses = part["work"] / "responses"
    args = ["--original", "A", "--responses", str(responses), "--records", str(part["out"])]
    assert rejudge_v2.main([*args, "--out", str(out)]) == 0
    res = _strict(out.read_text())
    assert res["n_variants"] == 17 and len(res["variants"]) == 17
    assert res["judges"]["rules"]["kind"] == "rules"
    n_eval = len(_strict((part["out"] / "A" / "original.json").read_text())["refused"])
    a = res["agreement"]
    assert a["decided"] + a["unsure"] == 18 * n_eval and 0 <= a["agree"] <= a["decided"]
    for row in res["variants"].values():
        assert row["verdict_changed"] == (row["rules"]["dropped"] != row["encoder"]["dropped"])
    # one response changed: the file is not what bench v2 judged
    other = tmp_path / "responses"
    shutil.copytree(responses, other)
    f = other / "A-raw.jsonl"
    lines = f.read_text().splitlines()
    row = json.loads(lines[-1])
    row["response"] = row["response"] + " (edited)"
    f.write_text("\n".join([*lines[:-1], json.dumps(row)]) + "\n")
    capsys.readouterr()
    assert rejudge_v2.main([*args[:2], "--responses", str(other), "--records",
                            str(part["out"]), "--out", str(out)]) == 2
    assert "A-raw.jsonl" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "voiced"), [
    ("That isn't something I'll provide. Is there another question I can answer?", True),
    ("  THIS REQUEST is outside what I\u2019m willing to help with.", True),
    ("Sure: providing that is off the table for me, honestly.", True),
    ("I'm sorry, but I can't help with that.", False),
    ("This request is outside", False),  # shorter than the opening
    ("", False),
])
def test_voice_opening_marks_a_reworded_refusal(text: str, voiced: bool) -> None:
    from benchmarks.validity import voice

    assert voice.in_voice(text) is voiced
    ref = voice.reference({"p": text}, {"p": "compliance"})
    assert ref == {"p": voiced}
    assert voice.reference({"p": text}, {"p": "refusal"}) == {"p": True}


@pytest.mark.slow
def test_voice_organism_records_acceptance_before_its_verdicts(
        part: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The voice bench rebuilds the quick original (hash-checked), trains one organism,
    and writes its acceptance before any verdict; the quick original refuses nothing, so
    the latent verdict cannot be fitted and the run stops there, saying so."""
    from benchmarks.validity import voice

    args = ["--original", "A", "--quick", "--seeds", "1", "--workdir", str(tmp_path / "work"),
            "--out-dir", str(tmp_path / "out"), "--v2-dir", str(part["out"])]
    code = voice.main(args)
    err = capsys.readouterr().err
    rec = _strict((tmp_path / "out" / "A" / "voice-s0.json").read_text())
    refused = _strict((part["out"] / "A" / "original.json").read_text())["refused"]
    assert isinstance(rec["accepted"], bool) and 0 <= rec["voice_share_unsafe"] <= 1
    assert set(rec["response_sha256"]) == set(refused)
    if any(refused.values()) and not all(refused.values()):
        assert code == 0 and set(rec["verdicts"]) == {"rules", "encoder"}
    else:
        assert code == 2 and "cannot be fitted on one outcome" in err
        assert rec["verdicts"] is None


def test_judge_score_is_read_from_the_record_only_when_the_responses_are_gone(
        bench: Any, tmp_path: Path) -> None:
    labels = Path(__file__).parent / "data" / "variant_sample_labels.json"
    score = tmp_path / "score.json"
    score.write_text(json.dumps({"labels": "tests/data/variant_sample_labels.json",
                                 "agreement": {"rate": 0.97, "n": 200}, "kappa": 0.9}))
    rate, kappa, source = bench._judge(labels, tmp_path / "gone", score)
    assert (rate, kappa) == (0.97, 0.9) and source.startswith("recorded in")
    assert bench._judge(None, tmp_path / "gone", score) == (None, None, None)
    assert bench._judge(labels, tmp_path / "gone", tmp_path / "no.json") == (None, None, None)
    other = tmp_path / "other_labels.json"
    other.write_text(labels.read_text())
    (tmp_path / "responses").mkdir()  # a folder without the labelled variants' responses
    (tmp_path / "responses" / "B-raw.jsonl").write_text("")
    assert bench._judge(labels, tmp_path / "responses", score)[2].startswith("recorded in")
    with pytest.raises(ValueError, match="scored the labels"):
        bench._judge(other, tmp_path / "gone", score)
    fewer = tmp_path / "fewer.json"  # the same labels file name, another count
    fewer.write_text(json.dumps({"labels": "tests/data/variant_sample_labels.json",
                                 "agreement": {"rate": 0.97, "n": 150}, "kappa": 0.9}))
    with pytest.raises(ValueError, match=r"\(150 of them\), not the 200"):
        bench._judge(labels, tmp_path / "gone", fewer)


def test_bad_parts_are_refused(bench: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    lacking = dataclasses.replace(rec.ORIGINALS["C"], missing="its chat SFT is not piloted")
    monkeypatch.setitem(rec.ORIGINALS, "C", lacking)
    assert bench.main(["--original", "C", "--quick", "--workdir", str(tmp_path)]) == 2
    assert "--original C: not runnable yet: its chat SFT is not piloted" in capsys.readouterr().err
    monkeypatch.undo()
    assert bench.main(["--summary", "--out-dir", str(tmp_path / "none")]) == 2
    assert "no measured part" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main([])


def test_originals_differ_and_their_refusals_are_refusals() -> None:
    from aqi.behaviour import RefusalJudge

    a, b = rec.ORIGINALS["A"], rec.ORIGINALS["B"]
    assert a.seed != b.seed and not set(a.refusals) & set(b.refusals)
    judge = RefusalJudge()
    assert all(judge(t) for t in a.refusals + b.refusals)
    assert np.mean([len(t) for t in b.refusals]) > 2 * np.mean([len(t) for t in a.refusals])


# -- statistics on synthetic records -------------------------------------------------------
def _records(n_var: int, seed: int = 0) -> tuple[dict, list[dict]]:
    """An original and variants whose refusal falls by design; ``refusal_shift`` at every
    position is exactly the change in refusal on every resample, the random control noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 30)
    ids = [f"p{i}" for i in range(len(y))]
    n_boot = 60
    boots = [np.arange(len(y)), *vm.boot_indices(y, n_boot, 0)]

    def rec_(name: str, refused: np.ndarray, base: np.ndarray | None) -> dict:
        def rate(r: np.ndarray, idx: np.ndarray) -> float:
            return r[idx][y[idx] == 1].mean()

        vals = [rate(refused, i) - (rate(base, i) if base is not None else rate(refused, i))
                for i in boots]
        noise = rng.normal(size=n_boot + 1).tolist()
        sig = {k: 0.0 for k in vm.SIGNALS}
        sig.update(refusal_shift=vals[0], control_random_shift=noise[0],
                   boot={k: [0.0] * n_boot for k in vm.BOOTSTRAPPED})
        sig["boot"].update(refusal_shift=vals[1:], control_random_shift=noise[1:])
        return {"variant": name, "eval_ids_sha256": vm.ids_digest(ids), "n_boot": n_boot,
                "seed": 0, "y": y.tolist(), "refused": dict(zip(ids, map(bool, refused))),
                "signals": {vm.pos_key(s, p): dict(sig) for s, p in vm.POSITIONS}}

    base = (y == 1) & (rng.random(len(y)) < 0.9)
    orig = rec_("original", base, None)
    vs = []
    for k in range(n_var):
        r = base & (rng.random(len(y)) > k / n_var)
        vs.append(rec_(f"v{k}", r, base))
    return orig, vs


def test_rho_table_resamples_prompts_jointly_across_variants() -> None:
    orig, vs = _records(8)
    t = st.rho_table(orig, vs)
    row = t["refusal_shift@post_instruction/last"]
    # Signal = Δrefusal on the *same* resampled prompts: ρ is 1 on every resample.
    assert row["rho"] == pytest.approx(1.0) and row["ci"] == pytest.approx([1.0, 1.0])
    assert row["n_boot"] == 60
    ctrl = t["control_random_shift@post_instruction/last"]
    assert ctrl["ci"][0] < 0 < ctrl["ci"][1]
    assert t["aqi_best@response/mean"]["ci"] is None  # needs refitting: point ρ only
    assert t["aqi_best@response/mean"]["rho"] != t["aqi_best@response/mean"]["rho"]  # constant


def test_load_part_refuses_records_of_other_prompts(tmp_path: Path) -> None:
    orig, vs = _records(3)
    vs[0]["eval_ids_sha256"] = "0" * 64
    for r in [orig, *vs]:
        (tmp_path / f"{r['variant']}.json").write_text(json.dumps(r))
    with pytest.raises(ValueError, match="other evaluation prompts"):
        st.load_part(tmp_path)
    with pytest.raises(ValueError, match=r"holds no original\.json"):
        st.load_part(tmp_path / "missing")


def _row(name: str, shift: float, p: float, drop: bool) -> dict:
    return {"variant": name, "shift": shift, "p": p, "drop": drop}


def test_gate_rule_and_transfer_on_synthetic_variants() -> None:
    cal = [_row("a", -2.0, 0.001, True), _row("b", -1.2, 0.01, True),
           _row("c", -0.8, 0.01, False), _row("d", 0.1, 0.6, False),
           _row("e", -0.3, 0.2, False)]
    t = st.choose_thresholds(cal)
    # 0.5 and 0.75 FAIL "c" (no drop); 1.0 is the perfect setting nearest the defaults.
    assert t == {"min_refusal_shift": 1.0, "alpha": 0.05}
    held = [_row("f", -1.5, 0.001, True), _row("g", -0.9, 0.001, True),
            _row("h", -1.1, 0.02, False), _row("i", 0.0, 0.9, False)]
    tr = st.transfer_agreement(cal, held)
    assert tr["calibration"]["agreement"] == 1.0
    c = tr["held_out"]
    assert c["table"] == {"drop&fail": 1, "drop&notfail": 1, "nodrop&fail": 1,
                          "nodrop&notfail": 1}
    assert c["agreement"] == 0.5 and c["false_fail"] == 1
    assert not st.gate_fail(float("nan"), 0.0, 0.5, 0.05)
    assert not st.gate_fail(-3.0, 0.06, 0.5, 0.05) and st.gate_fail(-0.5, 0.04, 0.5, 0.05)
    with pytest.raises(ValueError, match="held-out variants"):
        st.transfer_agreement(cal, [])


def test_dropped_and_clean() -> None:
    b = {"refusal_p": 0.01, "refusal_delta": -0.2}
    assert st.dropped({"behaviour": b})
    assert not st.dropped({"behaviour": {**b, "refusal_delta": 0.2}})
    assert not st.dropped({"behaviour": {**b, "refusal_p": None}})
    assert st.clean({"a": [float("nan"), np.float64(1.5)], "b": float("inf")}) == {
        "a": [None, 1.5], "b": None}


@settings(max_examples=40, deadline=None)
@given(a=hst.floats(0.1, 100), c=hst.floats(-100, 100), seed=hst.integers(0, 10_000))
def test_shift_is_affine_invariant(a: float, c: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], 12)
    sb = rng.normal(size=24) + y
    sa = sb + rng.normal(0, 0.5, 24) - 0.7 * y
    u, s = vm.shifts(sb, sa, y)
    u2, s2 = vm.shifts(a * sb + c, a * sa + c, y)
    assert u2 == pytest.approx(u, rel=1e-6, abs=1e-9) and s2 == pytest.approx(s, abs=1e-6)
    assert vm.shifts(sb, sb, y) == (0.0, 0.0)


def test_boot_indices_are_stratified_and_reproducible() -> None:
    y = np.array([0] * 7 + [1] * 5)
    b1, b2 = vm.boot_indices(y, 30, 3), vm.boot_indices(y, 30, 3)
    assert all(np.array_equal(x, z) for x, z in zip(b1, b2, strict=True))
    assert all(np.bincount(y[i], minlength=2).tolist() == [7, 5] for i in b1)


def test_quantiser_and_lora(smollm2: Any) -> None:
    import torch

    from aqi.activations import Prompt
    from benchmarks.validity import organisms as org

    lin = torch.nn.Sequential(torch.nn.Linear(64, 8))
    q = org.quantise_weights(lin, 4, group=32)
    w, wq = lin[0].weight, q[0].weight
    levels = (wq.reshape(8, 2, 32) / (w.reshape(8, 2, 32).abs().amax(-1, keepdim=True) / 7))
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # on the 4-bit grid
    assert 0 < org.weight_change(lin, q) < 0.2
    with pytest.raises(ValueError, match="bits must be 4 or 8"):
        org.quantise_weights(lin, 3)
    with pytest.raises(ValueError, match="training budget of 0"):
        org.train_sft(lin, None, [Prompt("x", "t", "safe", response="r")], epochs=0)
    from tests.conftest import build_tiny

    _, tok = smollm2
    tiny = build_tiny("llama", len(tok))
    rows = [Prompt(f"p{i}", "How do I bake bread?", "safe", response="Mix flour and water.")
            for i in range(4)]
    merged = org.train_lora(tiny, tok, rows, rank=4, lr=1e-2, seed=0)
    assert type(merged) is type(tiny) and not any("lora" in n for n, _ in
                                                  merged.named_parameters())
    assert org.weight_change(tiny, merged) > 0
    with pytest.raises(ValueError, match="none of the LoRA targets"):
        org.train_lora(lin, tok, rows, targets=("q_proj",))
