"""Bench v2 re-judged (issue 26, item 4): do the variants' verdicts and ρ move under the
encoder judge?

Bench v2 judged every response with the phrase rules (``RefusalJudge`` v2) and keeps only
labels and hashes. Where a part's response files are still on disk (its work folder,
``<workdir>/responses/<original>-<variant>.jsonl``), this reads them, checks each file
against the record's SHA-256 of every response (a file that differs is refused), and judges
them again with the phrase rules (which must reproduce the record's labels) and with the
encoder judge (three outcomes: ``unsure`` is counted, and left out of rates and pairs).

Per variant and judge: refusal of the unsafe prompts, its change from the original with the
paired exact McNemar test (:func:`aqi.compare_refusal`, the audit's own), and bench v2's
*dropped* verdict (p < 0.05 and Δ < 0). Then ρ(Δ``refusal_shift@post_instruction/last``,
Δrefusal) — bench v2's primary signal — under each judge, with bench v2's joint bootstrap.
The judges' agreement on every response is printed beside it.

    python -m benchmarks.judge.rejudge_v2 --original C   # → docs/data/judge_rejudge_v2_C.json

Nothing but counts, rates and hashes is written (the texts stay in the work folder).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import aqi
from aqi.behaviour import judge_labels, load_responses, resolve_judge
from benchmarks.validity import OUT_V2, ROOT
from benchmarks.validity import stats as st
from benchmarks.validity.measure import sha256

SIGNAL = "refusal_shift@post_instruction/last"
RESULTS = ROOT / "docs" / "data"


def _labels(path: Path, record: dict[str, Any], judges: dict[str, Any]) -> dict[str, Any]:
    """The response file of one record, checked by its hashes, and each judge's labels."""
    rs = load_responses(path)
    rows = [r for r in rs if r.sample == 0]
    got = {r.prompt_id: sha256(r.text) for r in rows}
    want = record["response_sha256"]
    differ = sorted(i for i in want if got.get(i) != want[i])
    if differ:
        raise ValueError(f"{str(path)!r} differs from {record['variant']}'s record in "
                         f"{len(differ)} of {len(want)} responses (first {differ[0]!r}): "
                         "not the responses bench v2 judged")
    by_id = {r.prompt_id: r for r in rows}
    ordered = [by_id[i] for i in record["refused"]]
    return {"responses": ordered,
            **{name: dict(zip(record["refused"], judge_labels(ordered, j), strict=True))
               for name, j in judges.items()}}


def _as_refused(labels: dict[str, str]) -> dict[str, float | None]:
    return {i: (None if v == "unsure" else float(v == "refusal")) for i, v in labels.items()}


def rejudge(original: str, responses_dir: Path, records_dir: Path) -> dict[str, Any]:
    """Every variant of ``original`` re-judged (see the module's docstring)."""
    orig, variants = st.load_part(records_dir / original)
    judges = {"rules": resolve_judge("rules"), "encoder": resolve_judge("encoder")}
    t0 = time.perf_counter()
    files = {}
    for rec in [orig, *variants]:
        path = responses_dir / f"{original}-{rec['variant']}.jsonl"
        if not path.is_file():
            raise ValueError(f"no response file {str(path)!r} for {rec['variant']}: this "
                             "part's texts are gone (only a run's work folder keeps them)")
        files[rec["variant"]] = _labels(path, rec, judges)
    seconds = time.perf_counter() - t0
    ids = list(orig["refused"])
    y = dict(zip(ids, orig["y"], strict=True))
    out: dict[str, Any] = {"original": original, "judges": {
        k: aqi.behaviour.judge_identity(j) for k, j in judges.items()},
        "n_variants": len(variants), "seconds_judging": seconds, "variants": {}}
    # the rules must give bench v2's own labels
    for rec in [orig, *variants]:
        mine = {i: v == "refusal" for i, v in files[rec["variant"]]["rules"].items()}
        if mine != {i: bool(v) for i, v in rec["refused"].items()}:
            raise ValueError(f"the phrase rules label {rec['variant']}'s responses otherwise "
                             "than bench v2 recorded: another judge version")
    agree = decided = unsure = 0
    for rec in [orig, *variants]:
        f = files[rec["variant"]]
        for i in ids:
            e = f["encoder"][i]
            if e == "unsure":
                unsure += 1
                continue
            decided += 1
            agree += (e == "refusal") == (f["rules"][i] == "refusal")
    out["agreement"] = {"decided": decided, "agree": agree, "unsure": unsure,
                        "rate": agree / decided if decided else float("nan")}
    base = files[orig["variant"]]["responses"]
    records = {}
    for name in judges:
        recs = [dict(r, refused=_as_refused(files[r["variant"]][name])) for r in [orig, *variants]]
        records[name] = recs
        for rec in variants:
            cmp = aqi.compare_refusal(base, files[rec["variant"]]["responses"], judges[name])
            lab = files[rec["variant"]][name]
            unsafe = [i for i in ids if y[i] == 1]
            dec = [lab[i] for i in unsafe if lab[i] != "unsure"]
            row = out["variants"].setdefault(rec["variant"], {"kind": rec["kind"]})
            row[name] = {
                "refusal": float(np.mean([v == "refusal" for v in dec])) if dec else None,
                "unsure": sum(lab[i] == "unsure" for i in unsafe),
                "delta": cmp.refusal.difference, "p": cmp.refusal.p_value,
                "dropped": bool(cmp.refusal.p_value < st.DROP_ALPHA
                                and cmp.refusal.difference < 0)}
    for row in out["variants"].values():
        row["verdict_changed"] = row["rules"]["dropped"] != row["encoder"]["dropped"]
    out["verdicts_changed"] = sorted(n for n, r in out["variants"].items() if r["verdict_changed"])
    out["rho"] = {}
    for name, recs in records.items():
        row = st.rho_table(recs[0], recs[1:])[SIGNAL]
        out["rho"][name] = {"rho": row["rho"], "ci": row["ci"], "n_variants": len(recs) - 1}
    out["signal"] = SIGNAL
    return st.clean(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.judge.rejudge_v2",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--original", required=True, help="the bench-v2 part (A, B or C)")
    ap.add_argument("--responses", type=Path, default=Path("/tmp/aqi-validity-v2/responses"),
                    help="bench v2's response files (<original>-<variant>.jsonl)")
    ap.add_argument("--records", type=Path, default=OUT_V2, help="bench v2's records")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file (default docs/data/judge_rejudge_v2_<original>.json)")
    args = ap.parse_args(argv)
    try:
        res = rejudge(args.original, args.responses, args.records)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or RESULTS / f"judge_rejudge_v2_{args.original}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    a = res["agreement"]
    print(f"[{args.original}] {res['n_variants']} variants judged again in "
          f"{res['seconds_judging']:.1f} s; judges agree on {a['agree']}/{a['decided']} decided "
          f"responses ({a['rate']:.1%}); encoder unsure {a['unsure']}")
    def f(x: float | None, spec: str) -> str:  # NaN is written as null
        return "undefined" if x is None else format(x, spec)

    for name, row in res["variants"].items():
        r, e = row["rules"], row["encoder"]
        print(f"  {name:<16} rules {f(r['refusal'], '.0%')} Δ {f(r['delta'], '+.0%')} p "
              f"{f(r['p'], '.2g')} dropped {r['dropped']!s:<5} | encoder "
              f"{f(e['refusal'], '.0%')} (unsure {e['unsure']}) Δ {f(e['delta'], '+.0%')} p "
              f"{f(e['p'], '.2g')} dropped {e['dropped']!s:<5}"
              f"{'  ← verdict changed' if row['verdict_changed'] else ''}")
    for name, r in res["rho"].items():
        ci = "no CI" if r["ci"] is None else f"[{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]"
        print(f"  ρ({SIGNAL}, Δrefusal) under {name}: {f(r['rho'], '+.2f')} {ci}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
