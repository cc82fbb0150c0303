"""Bench v1: turn its result into docs/validation.md's table and figure (v2: v2 --summary).

    python -m benchmarks.validity v1-report benchmarks/out/validity.json          # print
    python -m benchmarks.validity v1-report benchmarks/out/validity.json --write \\
        --workdir /tmp/aqi-validity-XXXX    # + docs, + the sampled / jailbreak comparison

The table and the figure are regenerated from ``validity.json`` (written by
bench v1's ``benchmarks/validity.py``, commit ``2c80f12``) and replace what lies between the
``<!-- validity:table -->`` and ``<!-- /validity:table -->`` markers of
docs/validation.md; the prose around them is written by hand after reading the numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.validity import ROOT

DOC = ROOT / "docs" / "validation.md"
FIG = ROOT / "docs" / "img" / "validity.png"
START, END = "<!-- validity:table -->", "<!-- /validity:table -->"

#: The signals drawn, with their plain names.
PANELS = {
    "aqi_best": "AQI, best layer",
    "aqi_fixed": "AQI, layer fixed on the original",
    "aqi_response": "AQI on own responses",
    "probe_auroc": "linear-probe AUROC",
    "direction_d": "separation along refusal direction (d)",
    "control_shuffled_aqi": "control: AQI, shuffled labels",
}


def _f(v: Any, fmt: str = "{:.2f}") -> str:
    return fmt.format(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def table(res: dict[str, Any]) -> str:
    """The per-variant table (behaviour first, then the signals), as markdown."""
    head = ("| variant | kind | refusal (unsafe) | Δ refusal (McNemar p) | over-refusal "
            "| refusal T=1 ×5 | refusal, jailbreak-wrapped | AQI best | AQI fixed layer "
            "| AQI own responses | probe AUROC | d along refusal dir. | compare Δ [CI] "
            "| gate |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in res["rows"]:
        ci = r.get("compare_ci") or [float("nan")] * 2
        lines.append(
            f"| `{r['variant']}` | {r['kind']} | {r['refusal']:.0%} "
            f"[{r['refusal_ci'][0]:.0%}, {r['refusal_ci'][1]:.0%}] "
            f"| {r['refusal_delta']:+.0%} ({_f(r['refusal_p'], '{:.2g}')}) "
            f"| {r['over_refusal']:.0%} | {r['sampled_refusal']:.0%} "
            f"| {r['jailbreak_refusal']:.0%} | {r['aqi_best']:.2f} | {r['aqi_fixed']:.2f} "
            f"| {r['aqi_response']:.2f} | {r['probe_auroc']:.3f} | {r['direction_d']:.2f} "
            f"| {r['compare_delta']:+.2f} [{ci[0]:+.2f}, {ci[1]:+.2f}] | {r['gate']} |")
    return "\n".join(lines)


def spearman_table(res: dict[str, Any]) -> str:
    lines = ["| signal | ρ(Δsignal, Δrefusal) [95 % CI] | ρ(Δsignal, Δover-refusal) |",
             "|---|---|---|"]
    for k, v in res["spearman"].items():
        lo, hi = v["ci"]
        ci = f" [{lo:+.2f}, {hi:+.2f}]" if lo == lo else " (no resampled CI)"
        lines.append(f"| `{k}` | {v['rho_refusal']:+.2f}{ci} | {v['rho_over_refusal']:+.2f} |")
    return "\n".join(lines)


def confusion_table(res: dict[str, Any]) -> str:
    c = res["gate_confusion"]
    return "\n".join([
        "| | gate FAIL | gate pass / warn |",
        "|---|---|---|",
        f"| refusal dropped (McNemar p < 0.05) | {c['drop&fail']} | {c['drop&notfail']} |",
        f"| refusal did not drop | {c['nodrop&fail']} | {c['nodrop&notfail']} |",
        "",
        f"Agreement: **{res['gate_agreement']:.0%}** of {sum(c.values())} variants.",
    ])


def sampled_difference(a: Any, b: Any, n_flip: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """Refusal-rate difference b − a under sampling, and a paired sign-flip p-value.

    Each prompt contributes its share of refused samples in ``a`` and in ``b``; the
    p-value flips the sign of every prompt's difference at random (two-sided).
    """
    import numpy as np

    from aqi.behaviour import RefusalJudge

    judge = RefusalJudge()

    def shares(rs: Any) -> dict[str, float]:
        out: dict[str, list[bool]] = {}
        for r in rs:
            out.setdefault(r.prompt_id, []).append(judge(r.text))
        return {k: float(np.mean(v)) for k, v in out.items()}

    sa, sb = shares(a), shares(b)
    if set(sa) != set(sb):
        raise ValueError("the two sampled response sets cover different prompts")
    d = np.array([sb[k] - sa[k] for k in sorted(sa)])
    observed = abs(d.mean())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_flip, len(d)))
    p = (1 + np.sum(np.abs((signs * d).mean(1)) >= observed - 1e-12)) / (n_flip + 1)
    return float(d.mean()), float(p)


def resampled_rho(res: dict[str, Any], workdir: Path, n_boot: int = 1000,
                  seed: int = 1) -> dict[str, dict[str, Any]]:
    """ρ(ΔAQI, Δrefusal) with a CI that resamples evaluation prompts jointly across variants.

    Recomputed from the stores and responses in the bench's work folder, for the AQI at
    the fixed layer on the prompts (``aqi_fixed``) and on the model's own responses
    (``aqi_response``): each resample draws prompt ids (stratified by label), and every
    variant's AQI and refusal rate are recomputed on the same ids.
    """
    import numpy as np
    from scipy.stats import spearmanr

    import aqi
    from aqi.behaviour import RefusalJudge, load_responses

    judge = RefusalJudge()
    names = [r["variant"] for r in res["rows"]]
    layer = res["fixed_layer"]
    base = aqi.ActivationStore(workdir / "original.h5")
    ids = [str(i) for i in base.ids]
    y = base.y.astype(int)
    pos = {i: k for k, i in enumerate(ids)}
    data = {}
    for n in names:
        refused = {r.prompt_id: judge(r.text) for r in load_responses(workdir / f"{n}.jsonl")}
        entry = {"refused": np.array([refused[i] for i in ids], dtype=float)}
        for key, suffix in (("aqi_fixed", ""), ("aqi_response", "-resp")):
            st = aqi.ActivationStore(workdir / f"{n}{suffix}.h5")
            X = st.activations(layer, "mean").astype(np.float64)
            rows = np.full(len(ids), -1)
            for k, i in enumerate(str(i) for i in st.ids):
                rows[pos[i]] = k
            entry[key] = (X, rows)
        data[n] = entry

    def aqi_on(n: str, key: str, idx: np.ndarray) -> float:
        X, rows = data[n][key]
        r = rows[idx]
        keep = r >= 0  # a variant with an empty response has no response row for it
        return aqi.alignment_quality_index(X[r[keep]], y[idx][keep], n_boot=0, n_perm=0).value

    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(y == k) for k in (0, 1)]
    out = {}
    def rho(a: list[float], b: list[float]) -> float:
        return spearmanr(a, b).statistic if np.ptp(a) > 0 and np.ptp(b) > 0 else np.nan

    def behaviour(n: str, idx: np.ndarray) -> tuple[float, float]:
        """Refusal of unsafe prompts, and discrimination (refusal − over-refusal)."""
        r, yi = data[n]["refused"][idx], y[idx]
        return r[yi == 1].mean(), r[yi == 1].mean() - r[yi == 0].mean()

    full = np.arange(len(ids))
    boots = [full] + [np.concatenate([rng.choice(s, len(s)) for s in strata])
                      for _ in range(n_boot)]
    for key in ("aqi_fixed", "aqi_response"):
        vals: list[tuple[float, float]] = []
        for idx in boots:
            b0 = aqi_on(names[0], key, idx)
            r0, j0 = behaviour(names[0], idx)
            ds = [aqi_on(n, key, idx) - b0 for n in names[1:]]
            beh = [behaviour(n, idx) for n in names[1:]]
            vals.append((rho(ds, [r - r0 for r, _ in beh]), rho(ds, [j - j0 for _, j in beh])))
        arr = np.array(vals[1:])
        ci = [np.nanquantile(arr[:, k], [0.025, 0.975]).tolist() for k in (0, 1)]
        out[key] = {"rho_refusal": float(vals[0][0]), "ci": ci[0],
                    "rho_discrimination": float(vals[0][1]), "ci_discrimination": ci[1],
                    "n_boot": int(np.isfinite(arr[:, 0]).sum())}
    return out


def missed(res: dict[str, Any], workdir: Path) -> str:
    """Variants whose greedy refusal did not change: does sampling or a jailbreak show a drop?

    Refusal under sampling (T = 1, 5 samples per prompt) and under the jailbreak wrappers
    is compared with the original's, paired by prompt (and sample), from the responses the
    bench left in its work folder (exact McNemar).
    """
    from aqi.behaviour import compare_refusal, load_responses

    lines = ["| variant | greedy Δ (p) | sampled Δ (p) | jailbreak-wrapped Δ (p) | AQI compare Δ "
             "| gate |", "|---|---|---|---|---|---|"]
    for r in res["rows"][1:]:
        if r["refusal_p"] < 0.05:
            continue
        a = load_responses(workdir / "original-T1.jsonl")
        b = load_responses(workdir / f"{r['variant']}-T1.jsonl")
        diff, p = sampled_difference(a, b)
        cells = [f"{diff:+.0%} ({p:.2g})"]
        c = compare_refusal(load_responses(workdir / "original-jb.jsonl"),
                            load_responses(workdir / f"{r['variant']}-jb.jsonl")).refusal
        cells.append(f"{c.difference:+.0%} ({c.p_value:.2g})")
        lines.append(f"| `{r['variant']}` | {r['refusal_delta']:+.0%} ({r['refusal_p']:.2g}) "
                     f"| {cells[0]} | {cells[1]} | {r['compare_delta']:+.2f} | {r['gate']} |")
    return "\n".join(lines)


def figure(res: dict[str, Any], path: Path) -> Path:
    """Δsignal against Δrefusal on unsafe prompts, one panel per signal, variants named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["rows"]
    base = rows[0]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    for ax, (key, title) in zip(axes.flat, PANELS.items(), strict=True):
        xs = [r["refusal"] - base["refusal"] for r in rows[1:]]
        ys = [r[key] - base[key] for r in rows[1:]]
        colours = ["tab:red" if r["gate"] == "fail" else "tab:orange" if r["gate"] == "warn"
                   else "tab:green" for r in rows[1:]]
        ax.scatter(xs, ys, c=colours, s=28, zorder=3)
        for x, y, r in zip(xs, ys, rows[1:], strict=True):
            ax.annotate(r["variant"], (x, y), fontsize=7, xytext=(3, 2),
                        textcoords="offset points")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        s = res["spearman"].get(key, {})
        ax.set_title(f"{title}\nρ = {s.get('rho_refusal', float('nan')):+.2f}", fontsize=9)
        ax.set_xlabel("Δ refusal on unsafe prompts (vs original)", fontsize=8)
        ax.set_ylabel("Δ signal", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Validation bench: each variant of SmolLM2-135M-Instruct against the original "
                 "(colour = gate verdict: red fail, orange warn, green pass)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def block(res: dict[str, Any], workdir: Path | None = None) -> str:
    mins = res["seconds"] / 60
    extra = []
    if workdir is not None:
        rr = resampled_rho(res, workdir)
        extra = [
            "ρ recomputed with 1,000 joint resamples of the evaluation prompts (AQI at the "
            "fixed layer, on the prompts and on the model's own responses):",
            "\n".join(["| signal | ρ(ΔAQI, Δrefusal) [95 % CI] | ρ(ΔAQI, Δdiscrimination) "
                       "[95 % CI] (post hoc) |", "|---|---|---|"]
                      + [f"| `{k}` | {v['rho_refusal']:+.2f} [{v['ci'][0]:+.2f}, "
                         f"{v['ci'][1]:+.2f}] | {v['rho_discrimination']:+.2f} "
                         f"[{v['ci_discrimination'][0]:+.2f}, {v['ci_discrimination'][1]:+.2f}] |"
                         for k, v in rr.items()]),
            "Variants whose greedy refusal did not change significantly, under sampling and "
            "jailbreak wrappers (the \"missed by refusal metrics\" test):", missed(res, workdir)]
    return "\n\n".join([
        START,
        f"Measured by `{' '.join(['benchmarks/validity.py', res.get('scale_flag', '')]).strip()}`"
        f" in **{mins:.0f} min** on 2 CPU cores (evaluation set: {res['sizes']['eval']} "
        f"prompts; fixed layer `{res['fixed_layer']}`).",
        table(res),
        spearman_table(res),
        confusion_table(res),
        *extra,
        f"![Δsignal against Δrefusal per variant](img/{FIG.name})",
        END,
    ])


def write_docs(res: dict[str, Any], workdir: Path | None = None) -> None:
    figure(res, FIG)
    text = DOC.read_text()
    new = block(res, workdir)
    if START in text and END in text:
        text = text[: text.index(START)] + new + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.validity v1-report",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("result", type=Path, help="validity.json from benchmarks/validity.py")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="the bench's work folder (adds the sampled / jailbreak comparison)")
    ap.add_argument("--write", action="store_true", help="rewrite docs/validation.md's block")
    args = ap.parse_args(argv)
    res = json.loads(args.result.read_text())
    print(block(res, args.workdir))
    if args.write:
        write_docs(res, args.workdir)
        print(f"wrote {DOC} and {FIG}")
    return 0

