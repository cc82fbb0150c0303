"""benchmarks/validity/judge_sample.py on a tiny synthetic example: draw, sheet, labels, score."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from aqi._stats import wilson_interval
from aqi.behaviour import RefusalJudge, Response, Responses

ROOT = Path(__file__).resolve().parents[1]
REFUSE = "I'm sorry, but I can't help with that."
COMPLY = "Sure! Here is how to fix the printer: open the tray and remove the paper."
EVASIVE = "Let's focus on something more positive, like a walk in the park."  # a refusal


@pytest.fixture(scope="module")
def js() -> object:
    sys.path.insert(0, str(ROOT))  # the repository: benchmarks
    from benchmarks.validity import judge_sample

    return judge_sample


def _variant(name: str, folder: Path, n_unsafe: int, n_safe: int) -> None:
    texts = [REFUSE, COMPLY, EVASIVE]
    rows = [Response(f"{name}-u{i}", 0, f"{texts[i % 3]} ({name} {i})", "unsafe", "c")
            for i in range(n_unsafe)]
    rows += [Response(f"{name}-s{i}", 0, f"{COMPLY} ({name} {i})", "safe", "c")
             for i in range(n_safe)]  # fmt: skip
    Responses(records=tuple(rows)).to_jsonl(folder / f"{name}.jsonl")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "responses"
    d.mkdir()
    _variant("a", d, 12, 6)
    _variant("b", d, 6, 2)
    _variant("a-T1", d, 30, 0)  # sampled responses: left out by default
    return d


def test_allocation_is_proportional_and_covers_every_stratum(js):
    assert js._allocate([12, 6, 6, 2], 13) == [6, 3, 3, 1]
    assert js._allocate([100, 1, 1], 5) == [3, 1, 1]  # the minimum of one per stratum
    assert sum(js._allocate([7, 5, 3], 15)) == 15


def test_draw_is_stratified_blind_and_reproducible(js, folder):
    items = js.draw_sample(folder, 13, seed=3)
    strata = {}
    for it in items:
        strata[(it["variant"], it["prompt_label"])] = strata.get(
            (it["variant"], it["prompt_label"]), 0) + 1
    assert strata == {("a", "unsafe"): 6, ("a", "safe"): 3, ("b", "unsafe"): 3, ("b", "safe"): 1}
    assert len({it["id"] for it in items}) == 13
    assert all(it["refusal"] is None and it["sha256"] == js.sha256(it["text"]) for it in items)
    assert not any("judge" in k for it in items for k in it)  # labels are given blind
    assert items == js.draw_sample(folder, 13, seed=3)
    with pytest.raises(ValueError, match="n=99 but the folder holds only 26"):
        js.draw_sample(folder, 99)
    with pytest.raises(ValueError, match="no responses files"):
        js.draw_sample(folder, 3, pattern="*.none")


def test_sheet_labels_score_round_trip(js, folder, tmp_path):
    with pytest.raises(ValueError, match="inside the repository"):
        js.write_sheet([], ROOT / "benchmarks" / "out" / "sheet")
    items = js.draw_sample(folder, 16, seed=0)
    sheet = js.write_sheet(items, tmp_path / "sheet")
    with pytest.raises(ValueError, match="no true/false 'refusal' label"):
        js.labels_from_sheet(sheet)
    # the reader: refusal for the apology and the deflection; one deliberate slip each way
    rows = [json.loads(x) for x in sheet.read_text().splitlines()]
    for r in rows:
        r["refusal"] = r["text"].startswith((REFUSE, EVASIVE))
    slip_fr = next(r for r in rows if not r["refusal"])
    slip_fr["refusal"] = True  # reader says refusal, judge compliance -> a missed refusal
    slip_fp = next(r for r in rows if r["refusal"] and r is not slip_fr)
    slip_fp["refusal"] = False  # reader compliance, judge refusal -> a false refusal
    sheet.write_text("".join(json.dumps(r) + "\n" for r in rows))
    doc = js.labels_from_sheet(sheet, note="synthetic")
    assert "text" not in json.dumps(doc["labels"])  # ids + hashes + labels only
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(doc))
    labels = js.read_labels(path)
    score = js.score_sample(labels, folder)
    judge = RefusalJudge()
    judged = [judge(r["text"]) for r in rows]
    ref = [r["refusal"] for r in rows]
    agree = sum(j == r for j, r in zip(judged, ref, strict=True))
    assert (score.agreement.k, score.agreement.n) == (agree, 16) and agree == 14
    w = wilson_interval(agree, 16, 0.95)
    assert (score.agreement.ci_low, score.agreement.ci_high) == (w.ci_low, w.ci_high)
    assert score.kappa == pytest.approx(cohen_kappa_score(judged, ref))
    assert score.false_refusals.k == 1 and score.missed_refusals.k == 1
    assert score.false_refusals.n == sum(not r for r in ref)
    assert score.missed_refusals.n == sum(ref)
    assert {d["id"] for d in score.disagreements} == {slip_fr["id"], slip_fp["id"]}
    assert all(d["why"].startswith("JudgeVerdict(") for d in score.disagreements)
    assert sum(s.n for s in score.by_variant.values()) == 16
    assert set(score.to_dict()) >= {"agreement", "kappa", "false_refusals", "missed_refusals"}


def test_score_refuses_changed_responses_and_bad_files(js, folder, tmp_path):
    items = js.draw_sample(folder, 4, seed=1)
    labels = [{**{k: v for k, v in it.items() if k != "text"}, "refusal": False} for it in items]
    _variant("a", folder, 12, 6)  # unchanged texts: still fine
    js.score_sample(labels, folder)
    labels[0]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match="hash mismatch"):
        js.score_sample(labels, folder)
    labels[0]["variant"] = "zzz"
    with pytest.raises(ValueError, match="no response of variant 'zzz'"):
        js.score_sample(labels, folder)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "other", "labels": []}))
    with pytest.raises(ValueError, match="not an aqi-judge-sample-labels file"):
        js.read_labels(bad)
    bad.write_text(json.dumps({"schema": js.LABELS_SCHEMA, "labels": [{**items[0]}]}))
    with pytest.raises(ValueError, match="never the text"):
        js.read_labels(bad)


def test_command_line(js, folder, tmp_path, capsys):
    assert js.main(["draw", str(folder), "--n", "5", "--out", str(tmp_path / "s")]) == 0
    sheet = tmp_path / "s" / "sheet.jsonl"
    rows = [{**json.loads(x), "refusal": False} for x in sheet.read_text().splitlines()]
    sheet.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "labels.json"
    assert js.main(["labels", str(sheet), "--out", str(out)]) == 0
    assert js.main(["score", str(out), str(folder)]) == 0
    assert "agreement" in capsys.readouterr().out
    assert js.main(["draw", str(tmp_path / "missing"), "--n", "5"]) == 2
    assert "is not a directory" in capsys.readouterr().err
