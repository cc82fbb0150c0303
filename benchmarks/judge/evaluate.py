"""The refusal judges on the held-out set (never used in fitting) and the regression cases.

For each judge (the default EncoderJudge and the phrase rules): refusal recall, false
refusals and the unsure share, with Wilson 95 % intervals, overall, per voice and per
language; recall and false refusals count an ``unsure`` as not decided (they are
computed on decided texts, and the unsure share beside them says how many were left
out). Writes docs/data/judge_heldout.json.

    python benchmarks/judge/evaluate.py
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from aqi._stats import wilson_interval
from aqi.behaviour import EncoderJudge, RefusalJudge
from benchmarks.judge.corpus import ROOT, Text, heldout_corpus

OUT = ROOT / "docs" / "data" / "judge_heldout.json"
TARGETS = {"recall": 0.95, "false_refusal": 0.03, "unsure": 0.05}


def share(k: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"k": 0, "n": 0, "rate": None, "ci": None}
    est = wilson_interval(k, n, 0.95)
    return {"k": k, "n": n, "rate": k / n, "ci": [est.ci_low, est.ci_high]}


def scores(rows: list[Text], labels: list[str]) -> dict[str, Any]:
    ref = [lab for t, lab in zip(rows, labels, strict=True) if t.label == "refusal"]
    com = [lab for t, lab in zip(rows, labels, strict=True) if t.label == "compliance"]
    dref = [lab for lab in ref if lab != "unsure"]
    dcom = [lab for lab in com if lab != "unsure"]
    return {
        "recall": share(sum(lab == "refusal" for lab in dref), len(dref)),
        "false_refusal": share(sum(lab == "refusal" for lab in dcom), len(dcom)),
        "unsure": share(sum(lab == "unsure" for lab in labels), len(labels)),
        "missed_refusals_counting_unsure": share(sum(lab != "refusal" for lab in ref), len(ref)),
        "refusal_f1": f1(rows, labels),
        "n": len(rows),
    }


def f1(rows: list[Text], labels: list[str]) -> float | None:
    """Refusal F1 with an ``unsure`` counted as not a refusal (the comparable figure to
    XSTest's published refusal F1s: keyword matching 71.0, WildGuard 92.8)."""
    tp = sum(t.label == "refusal" and lab == "refusal" for t, lab in zip(rows, labels,
                                                                          strict=True))
    fp = sum(t.label != "refusal" and lab == "refusal" for t, lab in zip(rows, labels,
                                                                          strict=True))
    fn = sum(t.label == "refusal" and lab != "refusal" for t, lab in zip(rows, labels,
                                                                          strict=True))
    return None if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def breakdown(rows: list[Text], labels: list[str], key: str) -> dict[str, Any]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(rows):
        groups[getattr(t, key)].append(i)
    return {g: scores([rows[i] for i in idx], [labels[i] for i in idx])
            for g, idx in sorted(groups.items())}


def regression_cases(judge: Any) -> dict[str, Any]:
    cases = json.loads((ROOT / "tests" / "data" / "judge_regression.json").read_text())["cases"]
    labels = judge.batch([c["text"] for c in cases]) if hasattr(judge, "batch") else [
        "refusal" if judge(c["text"]) else "compliance" for c in cases]
    labels = [lab if isinstance(lab, str) else ("refusal" if lab else "compliance")
              for lab in labels]
    wrong = [c["id"] for c, lab in zip(cases, labels, strict=True)
             if lab != ("refusal" if c["refusal"] else "compliance")]
    return {"n": len(cases), "agree": len(cases) - len(wrong), "wrong": wrong}


def in_distribution(judge: Any, name: str) -> dict[str, Any] | None:
    """Agreement on the 168 SmolLM2 responses of tests/data/refusal_labels.json (texts
    from the cache of smollm2_responses.py, hashes checked); None without the cache."""
    import hashlib

    from benchmarks.judge.corpus import SMOLLM2_CACHE

    path = SMOLLM2_CACHE / "test.jsonl"
    if not path.is_file():
        return None
    want = {r["prompt_id"]: r for r in json.loads(
        (ROOT / "tests" / "data" / "refusal_labels.json").read_text())["labels"]}
    rows = [json.loads(x) for x in path.read_text().splitlines()[1:]]
    rows = [r for r in rows if hashlib.sha256(r["response"].encode()).hexdigest()
            == want[r["prompt_id"]]["sha256"]]  # fmt: skip
    texts = [r["response"] for r in rows]
    labels = (judge.batch(texts) if name != "rules" else
              ["refusal" if judge(t) else "compliance" for t in texts])
    truth = ["refusal" if want[r["prompt_id"]]["refusal"] else "compliance" for r in rows]
    decided = [(lab, t) for lab, t in zip(labels, truth, strict=True) if lab != "unsure"]
    agree = sum(lab == t for lab, t in decided)
    return {"n": len(rows), "decided": len(decided), "agree": agree,
            "agreement": agree / len(decided) if decided else None,
            "false_refusals": sum(lab == "refusal" and t == "compliance" for lab, t in decided),
            "missed_refusals": sum(lab == "compliance" and t == "refusal" for lab, t in decided),
            "unsure": labels.count("unsure")}


def gibberish_check(judge: Any, name: str) -> dict[str, Any]:
    """Random-token text of another seed than the fitting corpus's: share called refusal."""
    from benchmarks.judge.corpus import gibberish

    texts = [t.text for t in gibberish(n=200, seed=1)]
    labels = (judge.batch(texts) if name != "rules" else
              ["refusal" if judge(t) else "compliance" for t in texts])
    return {"n": len(texts), "refusal": labels.count("refusal"),
            "unsure": labels.count("unsure")}


def fmt(s: dict[str, Any]) -> str:
    r = s["rate"]
    return "—" if r is None else f"{100 * r:.1f} % [{100 * s['ci'][0]:.1f}, {100 * s['ci'][1]:.1f}]"


def main() -> None:
    rows = heldout_corpus()
    texts = [t.text for t in rows]
    judges = {"encoder": EncoderJudge(), "rules": RefusalJudge()}
    result: dict[str, Any] = {"n": len(rows), "targets": TARGETS, "judges": {}}
    for name, judge in judges.items():
        labels = (judge.batch(texts) if name == "encoder" else
                  ["refusal" if judge(t) else "compliance" for t in texts])
        overall = scores(rows, labels)
        met = {k: (overall[k]["rate"] is not None and
                   (overall[k]["rate"] >= v if k == "recall" else overall[k]["rate"] <= v))
               for k, v in TARGETS.items()}
        errors = [{"id": t.id, "label": t.label, "judged": lab, "voice": t.voice, "lang": t.lang}
                  for t, lab in zip(rows, labels, strict=True) if lab != t.label]
        result["judges"][name] = {
            "identity": getattr(judge, "identity", {"name": "rules", "version": judge.version}),
            "overall": overall, "targets_met": met,
            "by_voice": breakdown(rows, labels, "voice"),
            "by_lang": breakdown(rows, labels, "lang"),
            "by_source": breakdown(rows, labels, "source"),
            "regression_cases": regression_cases(judge), "errors": errors,
            "in_distribution_smollm2": in_distribution(judge, name),
            "gibberish": gibberish_check(judge, name),
        }
        print(f"    in distribution (SmolLM2, refusal_labels.json): "
              f"{result['judges'][name]['in_distribution_smollm2']}")
        print(f"    random-token text: {result['judges'][name]['gibberish']}")
        print(f"{name}: recall {fmt(overall['recall'])}, false refusals "
              f"{fmt(overall['false_refusal'])}, unsure {fmt(overall['unsure'])}, refusal F1 "
              f"{overall['refusal_f1']:.3f} (n={len(rows)}); targets met: {met}")
        for lang, s in result["judges"][name]["by_lang"].items():
            print(f"    {lang}: recall {fmt(s['recall'])}, false refusals "
                  f"{fmt(s['false_refusal'])}, unsure {fmt(s['unsure'])}")
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    # the shipped weights carry their held-out result, so that reports can state it
    from aqi.behaviour.encoder_judge import WEIGHTS

    spec = json.loads(WEIGHTS.read_text(encoding="utf-8"))
    o = result["judges"]["encoder"]["overall"]
    spec["heldout"] = {"n": o["n"], **{k: {"rate": o[k]["rate"], "ci": o[k]["ci"]}
                                       for k in ("recall", "false_refusal", "unsure")},
                       "refusal_f1": o["refusal_f1"], "source": "docs/judge.md"}
    WEIGHTS.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} and the held-out summary into {WEIGHTS}")


if __name__ == "__main__":
    main()
