"""Bench v3 (issue 27): does a rule in behaviour's own units decide what refusal did?

Replays bench v2's parts without generating for the organisms: each original and its 17
organisms are rebuilt exactly as bench v2 built them (``v2.py``'s recipes, seeds
and direction split), each rebuilt model is checked against bench v2's record (the
original: the SHA-256 of all 208 greedy responses; an organism: its relative weight
change from the original, to 1e-9), and the evaluation prompts are captured at the
decision point (``post_instruction``, last token, every block) — one forward pass per
prompt. :func:`aqi.probes.predicted_refusal` then predicts each organism's refusal from
the original's judged responses (bench v2's per-prompt labels) and the organism's
activations. Behaviour (judged refusal, paired McNemar) is bench v2's record.

    python -m benchmarks.validity v3 --original A   # one part (~35-45 min, 2 cores)
    python -m benchmarks.validity v3 --original B
    python -m benchmarks.validity v3 --summary      # the rule chosen on A, tables
    python -m benchmarks.validity v3 --original C --v2-stores /tmp/aqi-v2-kept/C

``--v2-stores DIR``: an organism whose bench-v2 store ``DIR/<original>-<variant>.h5`` is
there (``v2 --keep-stores``, or hard links made while bench v2 ran) is read from it
instead of being rebuilt — the very model bench v2 measured, so it is reproduced by
identity. Bench v2 captured the prompts with their responses appended; the decision point
comes before the response, so its rows differ from a fresh capture only by batch padding
arithmetic, which the part measures on the original (``DIR/<original>-original.h5``
against the fresh baseline), refuses above :data:`STORE_TOL` of a row's norm, and records
in each such organism's record.

The pre-registration (rule candidates, grids, block rule, targets) is docs/validation.md,
"Bench v3 — the latent verdict: pre-registration", committed before the first run.
Records: ``benchmarks/out/validity_v3/<original>/<variant>.json`` (labels, numbers, per-
prompt predicted probabilities; no text, no weights); a re-run skips measured variants.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import aqi
from aqi.behaviour import generate_responses
from aqi.probes import predicted_refusal
from benchmarks.validity import OUT_V2, OUT_V3, v2
from benchmarks.validity import organisms as org
from benchmarks.validity import recipes as rec
from benchmarks.validity import stats as st
from benchmarks.validity.measure import sha256

OUT = OUT_V3
V2 = OUT_V2
SCHEMA = "aqi-validity-v3-variant/1"
N_BOOT = 1000
WEIGHT_TOL = 1e-9
STORE_TOL = 1e-4  # --v2-stores: largest relative row difference on the original accepted


def _capture(model: Any, tok: Any, prompts: Any, path: Path,
             batch_size: int) -> aqi.ActivationStore:
    path.unlink(missing_ok=True)
    return aqi.capture(model, tok, prompts, path, layers="blocks", pooling=("last",),
                       spans=("post_instruction",),
                       writing=aqi.Writing(batch_size=batch_size, progress=False))


def hash_check(name: str, want: dict[str, str], wd: Path,
               scale: v2.Scale) -> Callable[[Any, Any, dict[str, Any]], None]:
    """A ``check`` for :func:`v2.rebuild_original`: the rebuilt original must be bench v2's,
    every evaluation response hashed as ``want`` (prompt id → SHA-256) records."""
    def check(model: Any, tok: Any, sets: dict[str, Any]) -> None:
        rs = generate_responses(model, tok, sets["eval"], wd / "original-eval.jsonl",
                                decoding=aqi.Decoding(max_new_tokens=scale.max_new_tokens),
                                writing=aqi.Writing(batch_size=scale.batch_size,
                                                    progress=False))
        got = {r.prompt_id: sha256(r.text) for r in rs if r.sample == 0}
        differ = sorted(i for i in want if got.get(i) != want[i])
        if differ:
            raise ValueError(f"the rebuilt original {name} answers {len(differ)} of "
                             f"{len(want)} evaluation prompts differently from bench v2 "
                             f"(first: {differ[0]!r}); its organisms would not be bench "
                             "v2's: stop")
    return check


def store_difference(fresh: aqi.ActivationStore, kept: aqi.ActivationStore) -> dict[str, float]:
    """How far a bench-v2 store's decision-point rows are from a fresh capture of the same
    model and prompts: the largest absolute difference and the largest one relative to the
    row's norm, over every block and prompt."""
    a, b = fresh.with_span("post_instruction"), kept.with_span("post_instruction")
    ids = [str(i) for i in a.ids]
    ra, rb = a.positions(ids), b.positions(ids)
    worst_abs = worst_rel = 0.0
    for layer in a.layers:
        xa = a.activations(layer, "last")[ra].astype(np.float64)
        xb = b.activations(layer, "last")[rb].astype(np.float64)
        d = np.abs(xa - xb)
        worst_abs = max(worst_abs, float(d.max()))
        norm = np.linalg.norm(xa, axis=1)
        worst_rel = max(worst_rel, float((np.linalg.norm(xa - xb, axis=1) / norm).max()))
    return {"max_abs": worst_abs, "max_rel": worst_rel, "n_layers": len(a.layers),
            "n_rows": len(ids)}


def run_part(name: str, scale: v2.Scale, workdir: Path, out_dir: Path, v2_dir: Path,
             kept: Path | None = None) -> None:
    spec = rec.original_spec(name)
    t_start = time.perf_counter()
    part, wd, old = out_dir / name, workdir / name, v2_dir / name
    if not (old / "original.json").is_file():
        raise ValueError(f"no bench-v2 record in {str(old)!r}: restore them first "
                         "(benchmarks/data/README.md) or run v2 --original "
                         f"{name} --{scale.name}")
    recorded = {p.stem: json.loads(p.read_text()) for p in old.glob("*.json")}
    if recorded["original"]["scale"] != scale.name:
        raise ValueError(f"{str(old)!r} holds a {recorded['original']['scale']!r} run, "
                         f"not {scale.name!r}")
    names = [x.name for x in rec.variants(scale, spec)]
    todo = [n for n in names if not (part / f"{n}.json").is_file()]
    print(f"[{name}] {len(names) - len(todo)} of {len(names)} variants already replayed",
          flush=True)
    if not todo:
        return
    want = recorded["original"]["response_sha256"]
    check = hash_check(name, want, wd, scale)
    # Rebuilt exactly as bench v2, direction split included (the abliteration organisms
    # need it); checked against bench v2's responses before that split.
    original = v2.rebuild_original(name, scale, workdir, check=check,
                                   fresh_direction_store=True)
    model, tok, ev = original.model, original.tok, original.sets["eval"]
    t_ready = original.t_align + original.t_fix
    print(f"[{name}] original rebuilt and checked ({len(want)} response hashes equal) in "
          f"{t_ready:.0f} s", flush=True)
    tc = time.perf_counter()
    base = _capture(model, tok, ev, wd / "latent-original.h5", scale.batch_size)
    base_capture = time.perf_counter() - tc
    from_v2 = {vn for vn in todo
               if kept is not None and (kept / f"{name}-{vn}.h5").is_file()}
    difference = None
    if from_v2:
        kept_original = kept / f"{name}-original.h5"
        if not kept_original.is_file():
            raise ValueError(f"--v2-stores {str(kept)!r} holds organism stores but not "
                             f"{kept_original.name!r}, the original's, against which their "
                             "rendering is checked")
        with aqi.open_store(kept_original) as ko:
            difference = store_difference(base, ko)
        if difference["max_rel"] > STORE_TOL:
            raise ValueError(f"bench v2's store of the original differs from a fresh capture "
                             f"by {difference['max_rel']:.2g} of a row's norm (accepted: "
                             f"{STORE_TOL:g}); its organisms' stores are not read: run "
                             "without --v2-stores to rebuild them")
        print(f"[{name}] {len(from_v2)} organisms read from bench v2's stores; the original's "
              f"decision-point rows differ from a fresh capture by at most "
              f"{difference['max_abs']:.2g} ({difference['max_rel']:.2g} of a row's norm)",
              flush=True)
    refused = recorded["original"]["refused"]
    ctx = original.context(spec, scale)
    deps, consumers = v2.shared_variants(scale)
    for order, spec_v in enumerate(rec.variants(scale, spec)):
        vn = spec_v.name
        if vn not in todo:
            continue
        wc_v2 = float(recorded[vn]["weight_change"])
        t1 = time.perf_counter()
        if vn in from_v2:  # bench v2's own model: reproduced by identity, not rebuilt
            variant, wc, reproduced, t_build = None, wc_v2, True, 0.0
            t2 = time.perf_counter()
            store = aqi.open_store(kept / f"{name}-{vn}.h5", span="post_instruction")
        else:
            variant = ctx.model(vn) if vn in deps else rec.build(vn, ctx)
            t_build = time.perf_counter() - t1
            wc = org.weight_change(model, variant)
            reproduced = bool(abs(wc - wc_v2) <= WEIGHT_TOL * max(1.0, abs(wc_v2)))
            t2 = time.perf_counter()
            store = _capture(variant, tok, ev, wd / f"latent-{vn}.h5", scale.batch_size)
        t_cap = time.perf_counter() - t2
        t3 = time.perf_counter()
        pred = predicted_refusal(base, store, refused, n_boot=N_BOOT, seed=scale.seed)
        t_pred = time.perf_counter() - t3
        b = recorded[vn]["behaviour"]
        v2._write(part / f"{vn}.json", {
            "schema": SCHEMA, "original": name, "variant": vn, "kind": spec_v.kind,
            "order": order, "scale": scale.name, "seed": scale.seed, "n_boot": N_BOOT,
            "reproduced": reproduced, "weight_change": wc, "weight_change_v2": wc_v2,
            "activations": ("bench v2's store" if vn in from_v2 else "rebuilt and captured"),
            "v2_store_difference": difference if vn in from_v2 else None,
            "behaviour": {k: b[k] for k in ("refusal", "refusal_ci", "refusal_delta",
                                            "refusal_p", "over_refusal")},
            "dropped": st.dropped(recorded[vn]),
            "judged_refused": recorded[vn]["refused"],
            "predicted": pred.to_dict(),
            "probabilities": {k: round(p, 6) for k, p in pred.probabilities.items()},
            "baseline_probabilities": {k: round(p, 6)
                                       for k, p in pred.baseline_probabilities.items()},
            "pooled_sd_gate": (recorded[vn].get("audit") or {}).get("refusal_shift"),
            "seconds": {"build": t_build, "capture": t_cap, "predict": t_pred,
                        "base_capture": base_capture,
                        "v2_generate": recorded[vn]["seconds"]["generate"],
                        "v2_capture": recorded[vn]["seconds"]["capture"]},
        })
        print(f"[{name}] {vn:<16} judged {b['refusal']:.0%} (Δ {b['refusal_delta']:+.0%}) "
              f"predicted {pred.refusal!r} Δ {pred.change!r} p {pred.p_drop:.2g}; gap "
              f"{pred.gap_fraction.value:+.2f}; reproduced {reproduced}; build {t_build:.0f} s "
              f"capture {t_cap:.0f} s", flush=True)
        store.close()
        (wd / f"latent-{vn}.h5").unlink(missing_ok=True)
        if vn in consumers and vn not in from_v2:
            ctx.forget()
        del variant
        gc.collect()
    print(f"[{name}] part done in {time.perf_counter() - t_start:.0f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.validity v3",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--original", choices=sorted(rec.ORIGINALS), help="replay one part")
    ap.add_argument("--summary", action="store_true", help="choose the rule on A; tables")
    ap.add_argument("--quick", action="store_true", help="plumbing run on a tiny model")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/aqi-validity-v3"))
    ap.add_argument("--out-dir", type=Path, default=OUT)
    ap.add_argument("--v2-dir", type=Path, default=V2, help="bench v2's records")
    ap.add_argument("--v2-stores", type=Path, default=None,
                    help="read organisms from bench v2's kept stores here (not rebuilt)")
    args = ap.parse_args(argv)
    if not args.original and not args.summary:
        ap.error("give --original NAME, --summary, or both")
    scale = v2.QUICK if args.quick else v2.SMALL
    try:
        if args.original:
            run_part(args.original, scale, args.workdir, args.out_dir, args.v2_dir,
                     args.v2_stores)
        if args.summary:
            from benchmarks.validity import v3_stats as ls

            ls.print_summary(ls.summarise(args.out_dir))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

