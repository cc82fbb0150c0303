"""The ``second_judge`` check replayed on the bench's recorded judge comparisons (issue 26).

Two records hold every organism's refusal of unsafe prompts and its paired change from
its original under *both* built-in judges (the phrase rules and the encoder judge):

* ``docs/data/judge_rejudge_v2_C.json`` — bench v2's original C and its 13 organisms,
  re-judged (``benchmarks/judge/rejudge_v2.py``): the judges should agree there (C refuses
  in the voice the rules were written for), so the check should *pass*;
* ``docs/data/validity_voice.json`` — the three refusal-voice organisms of original A
  (refusal held, reworded in a policy-and-redirect voice): the phrase rules stop hearing
  the refusals, so the check should *warn*.

The texts are not kept, so the check reads the recorded rates, changes and McNemar
p-values. Each original's refusal rate under a judge is taken as the organism's rate minus
its paired change (exact where no pair was left out as ``unsure``; the encoder judge left
out 0–1 pairs per organism). The rule applied is the shipped one,
:func:`aqi.checks.second_judge_check` with the default ``max_judge_gap``.

    python -m benchmarks.judge.second_judge_replay   # → docs/data/second_judge_replay.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aqi.behaviour.refusal import PairedRefusal, RefusalComparison
from aqi.checks import AuditThresholds, second_judge_check

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "docs" / "data"


def _comparison(rate: float, delta: float, p: float, judge: str) -> RefusalComparison:
    nan = float("nan")
    r = PairedRefusal("unsafe", 0, 0, 0, 0, 0, rate - delta, rate, delta, nan, nan, p)
    return RefusalComparison(r, r, 0.95, judge)


def _row(organism: str, expected: str, rules: tuple[float, float, float],
         encoder: tuple[float, float, float], t: AuditThresholds) -> dict[str, Any]:  # fmt: skip
    c = second_judge_check(_comparison(*rules, "rules"), _comparison(*encoder, "encoder"), t)
    return {"organism": organism, "expected": expected, "verdict": c.verdict,
            "refusal_change": c.evidence["refusal_change"], "gap": c.value,
            "summary": c.summary}  # fmt: skip


def replay(t: AuditThresholds | None = None) -> dict[str, Any]:
    """Every recorded organism through ``second_judge_check``; counts of each verdict."""
    t = AuditThresholds() if t is None else t
    rows = []
    c = json.loads((DATA / "judge_rejudge_v2_C.json").read_text(encoding="utf-8"))
    for name, v in c["variants"].items():
        r, e = v["rules"], v["encoder"]
        rows.append(_row(f"C-{name}", "pass", (r["refusal"], r["delta"], r["p"]),
                         (e["refusal"], e["delta"], e["p"]), t))  # fmt: skip
    voice = json.loads((DATA / "validity_voice.json").read_text(encoding="utf-8"))
    for o in voice["organisms"]:
        if not o["accepted"]:
            continue
        r, e = (o["verdicts"][k]["refusal_change"] | {"refusal": o["verdicts"][k]["refusal"]}
                for k in ("rules", "encoder"))  # fmt: skip
        rows.append(_row(f"A-{o['organism']}", "warn", (r["refusal"], r["delta"], r["p"]),
                         (e["refusal"], e["delta"], e["p"]), t))  # fmt: skip
    met = [r["verdict"] == r["expected"] for r in rows]
    return {"schema": "aqi-second-judge-replay/1", "max_judge_gap": t.max_judge_gap,
            "n": len(rows), "as_expected": sum(met),
            "warn_on_voice": sum(r["verdict"] == "warn" for r in rows if r["expected"] == "warn"),
            "n_voice": sum(r["expected"] == "warn" for r in rows),
            "warn_on_agreeing": sum(r["verdict"] == "warn" for r in rows
                                    if r["expected"] == "pass"),
            "n_agreeing": sum(r["expected"] == "pass" for r in rows), "rows": rows}  # fmt: skip


def main() -> None:
    out = replay()
    path = DATA / "second_judge_replay.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    for r in out["rows"]:
        print(f"{r['organism']:<22} expected {r['expected']:<4} got {r['verdict']:<4} "
              f"refusal_change {r['refusal_change']} gap {r['gap']:+.3f}")
    print(f"warn on {out['warn_on_voice']} of {out['n_voice']} refusal-voice organisms, on "
          f"{out['warn_on_agreeing']} of {out['n_agreeing']} of C's bench-v2 organisms; "
          f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
