"""Bench v2's figure (docs/img/validity_v2.png), drawn from the per-variant records only.

    python -m benchmarks.validity figure      # every part in benchmarks/out/validity_v2
    python -m benchmarks.validity figure --out-dir DIR --png PATH

One row per measured original, three panels:

1. the pre-registered default signal (``refusal_shift@post_instruction/last``) against
   Δrefusal on unsafe prompts, each variant named and coloured by the gate rule at the
   chosen thresholds (red: FAIL; grey: not) with a ring where refusal dropped
   significantly (the behaviour the gate is judged against);
2. the discrimination signal (``aqi_fixed@post_instruction/last``) against
   Δdiscrimination;
3. ρ with Δrefusal of the refusal-score shift and of its two controls (random direction,
   shuffled-label direction) at every position, with the joint-bootstrap CIs — where a
   control reaches the signal, the position does not separate refusal from change.

Reads ``results.json`` of ``validity.py --summary`` for ρ, CIs and thresholds, and the
records for the per-variant points; nothing is recomputed here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.validity import OUT_V2, ROOT
from benchmarks.validity import stats as st
from benchmarks.validity.measure import POSITIONS, pos_key

OUT = OUT_V2
PNG = ROOT / "docs" / "img" / "validity_v2.png"
CONTROLS = (("refusal_shift", "refusal direction", "tab:blue"),
            ("control_random_shift", "random direction", "tab:orange"),
            ("control_shuffled_shift", "shuffled-label direction", "tab:gray"))


def _delta(orig: dict[str, Any], v: dict[str, Any], signal: str) -> float:
    sig, key = signal.split("@")
    return st._f(v["signals"][key][sig]) - st._f(orig["signals"][key][sig])


def figure(out_dir: Path = OUT, png: Path = PNG) -> Path:
    """Draw the figure from ``out_dir``'s parts and its ``results.json``; return ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res_path = out_dir / "results.json"
    if not res_path.is_file():
        raise ValueError(f"{str(res_path)!r} does not exist: run python -m benchmarks.validity v2 "
                         "--summary first")
    res = json.loads(res_path.read_text(encoding="utf-8"))
    names = sorted(res["originals"])
    if not names:
        raise ValueError(f"{str(res_path)!r} holds no measured original")
    fig, axes = plt.subplots(len(names), 3, figsize=(15, 4.6 * len(names)), squeeze=False)
    n_variants = 0
    for row, name in zip(axes, names, strict=True):
        orig, variants = st.load_part(out_dir / name)
        n_variants += len(variants)
        r = res["originals"][name]
        fails = r["gate"]["fails"]
        thr = r["gate"]["thresholds"]
        b0 = orig["behaviour"]
        for ax, signal, outcome, label in (
                (row[0], res["default_signal"], "refusal", "Δ refusal on unsafe prompts"),
                (row[1], res["default_discrimination_signal"], "discrimination",
                 "Δ discrimination")):
            xs = [st._f(v["behaviour"][outcome]) - st._f(b0[outcome]) for v in variants]
            ys = [_delta(orig, v, signal) for v in variants]
            col = ["tab:red" if fails.get(v["variant"]) else "0.45" for v in variants]
            ax.scatter(xs, ys, c=col, s=30, zorder=3)
            drop = [st.dropped(v) for v in variants]
            ax.scatter([x for x, d in zip(xs, drop, strict=True) if d],
                       [y for y, d in zip(ys, drop, strict=True) if d],
                       s=110, facecolors="none", edgecolors="black", linewidths=0.8, zorder=2)
            for x, y, v in zip(xs, ys, variants, strict=True):
                ax.annotate(v["variant"], (x, y), fontsize=6.5, xytext=(3, 2),
                            textcoords="offset points")
            ax.axhline(0, color="0.8", lw=0.8)
            ax.axvline(0, color="0.8", lw=0.8)
            t = r["rho"][signal]
            rk, ck = ("rho", "ci") if outcome == "refusal" else ("rho_discrimination",
                                                                 "ci_discrimination")
            ci = t[ck] or [float("nan")] * 2
            ax.set_title(f"{name}: {signal}\nρ = {st._f(t[rk]):+.2f} "
                         f"[{st._f(ci[0]):+.2f}, {st._f(ci[1]):+.2f}] with {label}",
                         fontsize=9)
            ax.set_xlabel(f"{label} (variant − original)", fontsize=8)
            ax.set_ylabel(f"Δ {signal.split('@')[0]}", fontsize=8)
            ax.tick_params(labelsize=7)
        row[0].text(0.02, 0.98, f"red: gate FAIL (shift ≤ −{thr['min_refusal_shift']:g} SD,\n"
                    f"p < {thr['alpha']:g}); ring: refusal dropped\n(McNemar p < 0.05)",
                    transform=row[0].transAxes, fontsize=6.5, va="top")
        ax = row[2]
        xs_pos = list(range(len(POSITIONS)))
        for k, (sig, lab, colour) in enumerate(CONTROLS):
            for x, (span, pool) in zip(xs_pos, POSITIONS, strict=True):
                t = r["rho"][f"{sig}@{pos_key(span, pool)}"]
                xx = x + (k - 1) * 0.22
                ci = t["ci"]
                if ci is not None:
                    ax.plot([xx, xx], ci, color=colour, lw=1.4)
                ax.plot([xx], [st._f(t["rho"])], "o", color=colour, ms=4,
                        label=lab if x == 0 else None)
        ax.axhline(0.8, color="tab:green", lw=0.8, ls="--", label="target 0.8")
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_xticks(xs_pos, [s.replace("_", "\n") + f"\n({p})" for s, p in POSITIONS],
                      fontsize=6.5)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("ρ with Δ refusal (95 % CI)", fontsize=8)
        ax.set_title(f"{name}: the refusal-score shift and its controls, every position",
                     fontsize=9)
        ax.legend(fontsize=6.5, loc="lower right")
        ax.tick_params(labelsize=7)
    fig.suptitle(f"Bench v2: {n_variants} "
                 "variants of SmolLM2-135M-Instruct originals, each against its original",
                 fontsize=10)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.validity figure",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=OUT)
    ap.add_argument("--png", type=Path, default=PNG)
    args = ap.parse_args(argv)
    try:
        print(figure(args.out_dir, args.png))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

