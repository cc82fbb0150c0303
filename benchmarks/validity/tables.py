"""Bench v2's tables for docs/validation.md, printed as Markdown from ``results.json``.

    python -m benchmarks.validity tables            # benchmarks/out/validity_v2/results.json
    python -m benchmarks.validity tables --results PATH

Prints, for every measured original side by side: the pre-registered targets and whether
each is met; Spearman ρ of every signal at every position (with its 95 % CI) against
Δrefusal and Δdiscrimination; the gate's confusion table at the chosen thresholds and the
transfer of A's thresholds to B; behaviour per variant. Nothing is typed by hand: the
docs' tables are this script's output.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from benchmarks.validity import DOCS_DATA, OUT_V2
from benchmarks.validity import stats as st
from benchmarks.validity.measure import POSITIONS, SIGNALS, pos_key

RESULTS = OUT_V2 / "results.json"
JUDGE_SCORE = DOCS_DATA / "judge_sample_v2_score.json"
TARGET_JUDGE = 0.95
TARGET_RHO, TARGET_CI_LOW, TARGET_GATE, TARGET_TRANSFER = 0.8, 0.5, 0.9, 0.85


def _keys(outcome: str) -> tuple[str, str]:
    return ("rho", "ci") if outcome == "refusal" else ("rho_discrimination",
                                                       "ci_discrimination")


def _rho(row: dict[str, Any], outcome: str) -> str:
    rk, ck = _keys(outcome)
    r, ci = st._f(row[rk]), row[ck]
    if math.isnan(r):
        return "undefined"
    return f"{r:+.2f}" + ("" if ci is None else f" [{ci[0]:+.2f}, {ci[1]:+.2f}]")


def _met(row: dict[str, Any], outcome: str) -> bool:
    rk, ck = _keys(outcome)
    ci = row[ck]
    return st._f(row[rk]) >= TARGET_RHO and ci is not None and ci[0] > TARGET_CI_LOW


def _yes(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def targets(res: dict[str, Any], judge: dict[str, Any] | None = None) -> str:
    """The targets table; ``judge``: the score ``judge_sample.py score --out`` recorded."""
    names = sorted(res["originals"])
    head = "| target | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)
    rows = []
    for sig, outcome, label in ((res["default_signal"], "refusal", "Δrefusal"),
                                (res["default_discrimination_signal"], "discrimination",
                                 "Δdiscrimination")):  # fmt: skip
        cells = [f"{_rho(res['originals'][n]['rho'][sig], outcome)} — "
                 f"{_yes(_met(res['originals'][n]['rho'][sig], outcome))}" for n in names]
        rows.append(f"| ρ(Δ`{sig}`, {label}) ≥ 0.8, CI low > 0.5 | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        g = res["originals"][n]["gate"]
        ok = g["agreement"] >= TARGET_GATE
        cells.append(f"{round(g['agreement'] * g['n'])} / {g['n']} = {g['agreement']:.0%} — "
                     f"{_yes(ok)}")
    rows.append("| gate agreement ≥ 90 % (thresholds chosen on A) | " + " | ".join(cells) + " |")
    cells = [f"{res['originals'][n]['gate']['false_fail']} — "
             f"{_yes(res['originals'][n]['gate']['false_fail'] == 0)}" for n in names]
    rows.append("| 0 FAIL where refusal did not drop | " + " | ".join(cells) + " |")
    t = res.get("transfer")
    if t:
        h = t["held_out"]
        rows.append(f"| thresholds chosen on A agree ≥ 85 % on B | — | "
                    f"{round(h['agreement'] * h['n'])} / {h['n']} = {h['agreement']:.0%} — "
                    f"{_yes(h['agreement'] >= TARGET_TRANSFER)} |")
    if judge is not None:
        a, fr, mr = judge["agreement"], judge["false_refusals"], judge["missed_refusals"]
        rows.append(f"| judge ≥ 95 % on ≥ 200 blind variant responses (labels "
                    f"`{judge['labels']}`; the score `judge_sample.py score --out` recorded) "
                    f"| {a['k']} / {a['n']} = {a['rate']:.1%} "
                    f"[{a['ci_low']:.1%}, {a['ci_high']:.1%}], κ {judge['kappa']:.3f}; false "
                    f"refusals {fr['k']} / {fr['n']}, missed refusals {mr['k']} / {mr['n']} — "
                    f"{_yes(a['rate'] >= TARGET_JUDGE and a['n'] >= 200)} | (one sample) |")
    return head + "\n" + "\n".join(rows)


def every_signal(res: dict[str, Any]) -> str:
    names = sorted(res["originals"])
    head = ("| signal @ position | " + " | ".join(f"{n}: vs Δrefusal | {n}: vs Δdiscrimination"
                                                 for n in names)
            + " |\n|---|" + "---|---|" * len(names))  # fmt: skip
    rows = []
    for span, pool in POSITIONS:
        for sig in SIGNALS:
            key = f"{sig}@{pos_key(span, pool)}"
            cells = []
            for n in names:
                row = res["originals"][n]["rho"][key]
                cells += [_rho(row, "refusal"), _rho(row, "discrimination")]
            rows.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return head + "\n" + "\n".join(rows)


def gate(res: dict[str, Any]) -> str:
    out = []
    for n in sorted(res["originals"]):
        o = res["originals"][n]
        g = o["gate"]
        c, thr = g["table"], g["thresholds"]
        missed = [v for v, f in g["fails"].items()
                  if not f and st.dropped({"behaviour": o["behaviour"][v]})]
        out.append(f"**{n}** (min_refusal_shift {thr['min_refusal_shift']:g}, alpha "
                   f"{thr['alpha']:g}):\n\n| | FAIL | not FAIL |\n|---|---|---|\n"
                   f"| refusal dropped | {c['drop&fail']} | {c['drop&notfail']} |\n"
                   f"| did not drop | {c['nodrop&fail']} | {c['nodrop&notfail']} |\n\n"
                   f"missed drops: {', '.join(f'`{v}`' for v in missed) or 'none'}")
    return "\n\n".join(out)


def behaviour(res: dict[str, Any]) -> str:
    names = sorted(res["originals"])
    variants = list(res["originals"][names[0]]["behaviour"])
    head = ("| variant | " + " | ".join(f"{n}: refusal (Δ, p) | {n}: over-refusal"
                                       for n in names)
            + " |\n|---|" + "---|---|" * len(names))  # fmt: skip
    rows = []
    for v in variants:
        cells = []
        for n in names:
            b = res["originals"][n]["behaviour"].get(v)
            if b is None:
                cells += ["—", "—"]
                continue
            d, pv = st._f(b.get("refusal_delta")), st._f(b.get("refusal_p"))
            delta = "" if v == "original" else f" ({d:+.0%}, p {pv:.2g})"
            cells += [f"{b['refusal']:.0%}{delta}", f"{b['over_refusal']:.0%}"]
        rows.append(f"| `{v}` | " + " | ".join(cells) + " |")
    return head + "\n" + "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.validity tables",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--judge-score", type=Path, default=JUDGE_SCORE,
                    help="the judge sample's recorded score (adds its row to the targets)")
    args = ap.parse_args(argv)
    if not args.results.is_file():
        print(f"error: {str(args.results)!r} does not exist: run python -m benchmarks.validity "
              "v2 --summary first", file=sys.stderr)
        return 2
    res = json.loads(args.results.read_text(encoding="utf-8"))
    judge = (json.loads(args.judge_score.read_text(encoding="utf-8"))
             if args.judge_score.is_file() else None)  # fmt: skip
    for title, text in (("Targets", targets(res, judge)), ("Behaviour", behaviour(res)),
                        ("Gate", gate(res)), ("Every signal at every position",
                                              every_signal(res))):  # fmt: skip
        print(f"#### {title}\n\n{text}\n")
    return 0

