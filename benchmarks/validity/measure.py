"""Bench v2: measure one variant — behaviour, and every signal at every position.

One capture per variant: the evaluation prompts with the variant's **own** greedy
responses appended, pooled at every span of :data:`SPANS` from the same forward pass
(the forward is causal, so the instruction and post-instruction activations are those of
the prompt alone). Signals, at every position of :data:`POSITIONS`:

* ``aqi_best`` (best block of the variant), ``aqi_fixed`` (the block fixed on the
  original's direction split alone), ``probe_auroc`` (linear probe at the fixed block),
  ``compare_drop`` (:func:`aqi.compare` of original and variant at the fixed block:
  positive = the variant separates less);
* ``refusal_shift`` / ``refusal_shift_safe``: the shift of the unsafe (safe) prompts'
  mean projection on the original's refusal direction, against the original, in the
  original's pooled-SD units (evaluation split); the direction is the difference of
  means on the bench's *direction* split at the block chosen there (within the first
  80 % of the stack, cross-fitted by pair);
* controls: ``control_shuffled_aqi`` (labels permuted once), ``control_random_shift``
  (a random unit direction), ``control_shuffled_shift`` (a direction fitted on shuffled
  direction-split labels).

For the CIs of the rank correlations the resampling-friendly signals are recomputed on
the bench's shared bootstrap resamples of the evaluation prompts (:func:`boot_indices`:
the same rows for every variant), and only those replicate values are kept — no
activations, no text. The gate's input is the audit's own figure:
``aqi.audit(store, baseline=original)`` and its refusal shift (post_instruction/last).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import aqi
from aqi.activations import Prompt, PromptSet
from aqi.behaviour import RefusalJudge, compare_refusal, generate_responses, refusal_rate
from aqi.probes import linear_probe, split_by_pair

# The library's own definitions, so the bench measures exactly what the audit computes:
# pooled within-class SD, and the (unsafe, safe) shift of scores in the baseline's SDs.
from aqi.probes.refusal_direction import _pooled_sd
from aqi.probes.refusal_direction import _shifts as shifts

SPANS = ("instruction", "post_instruction", "response_onset", "response")
#: (span, pooling) read by every signal; ``post_instruction/last`` is t_post-inst.
POSITIONS = (("instruction", "mean"), ("instruction", "last"), ("post_instruction", "last"),
             ("post_instruction", "mean"), ("response_onset", "mean"), ("response", "mean"))
#: Signals with bootstrap replicates (recomputable on resampled rows without refitting).
BOOTSTRAPPED = ("aqi_fixed", "refusal_shift", "refusal_shift_safe", "control_shuffled_aqi",
                "control_random_shift", "control_shuffled_shift")
SIGNALS = ("aqi_best", "aqi_fixed", "probe_auroc", "compare_drop", "refusal_shift",
           "refusal_shift_safe", "control_shuffled_aqi", "control_random_shift",
           "control_shuffled_shift")


def pos_key(span: str, pooling: str) -> str:
    return f"{span}/{pooling}"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ids_digest(ids: Any) -> str:
    return sha256("\n".join(map(str, ids)))


def boot_indices(y: np.ndarray, n_boot: int, seed: int) -> list[np.ndarray]:
    """Stratified bootstrap resamples of the evaluation rows, shared by every variant."""
    rng = np.random.default_rng(seed + 1)
    strata = [np.flatnonzero(y == k) for k in (0, 1)]
    return [np.concatenate([rng.choice(s, len(s)) for s in strata]) for _ in range(n_boot)]


def _aqi(X: np.ndarray, y: np.ndarray) -> float:
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(aqi.alignment_quality_index(X, y, n_boot=0, n_perm=0).value)


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return None if n == 0 or not np.isfinite(n) else v / n


def _diff_means(X: np.ndarray, y: np.ndarray) -> np.ndarray | None:
    return _unit(X[y == 1].mean(0) - X[y == 0].mean(0))


# -- what is fixed on the original alone --------------------------------------------------
@dataclass
class Fixed:
    """Per position: the AQI block, the direction block and the three directions."""

    aqi_layer: dict[str, str]
    dir_layer: dict[str, str]
    direction: dict[str, np.ndarray]
    shuffled: dict[str, np.ndarray]
    random: dict[str, np.ndarray]
    shuffle_perm: np.ndarray  # the permutation of evaluation labels of control_shuffled_aqi

    def layers(self) -> dict[str, dict[str, str]]:
        return {k: {"aqi_layer": self.aqi_layer[k], "direction_layer": self.dir_layer[k]}
                for k in self.aqi_layer}


def fix_on_original(dir_store: aqi.ActivationStore, n_eval: int, seed: int,
                    max_depth: float = 0.8) -> Fixed:
    """Blocks and directions from the original on the direction split (nothing else)."""
    y = dir_store.y.astype(int)
    fit, score_rows = split_by_pair(dir_store.ids, dir_store.pair_ids, 0.5, seed)
    blocks = [li for li in dir_store.layer_info if li.block is not None]
    n_blocks = max(li.block for li in blocks) + 1
    early = [li.name for li in blocks if li.block < max(1, int(np.ceil(max_depth * n_blocks)))]
    out: dict[str, dict[str, Any]] = {k: {} for k in ("aqi", "dir", "d", "sh", "rnd")}
    rng = np.random.default_rng(seed + 7)
    for span, pool in POSITIONS:
        key = pos_key(span, pool)
        view = dir_store.with_span(span)
        prof = aqi.score(view, pooling=pool, n_boot=0, n_perm=0, by_category=False,
                         lexical_control=False)
        out["aqi"][key] = prof.best().layer
        seps = {}
        for la in early or [blocks[0].name]:
            X = view.activations(la, pool).astype(np.float64)
            d = _diff_means(X[fit], y[fit])
            s = None if d is None else X[score_rows] @ d
            sd = None if s is None else _pooled_sd(s, y[score_rows])
            seps[la] = -np.inf if not sd else (s[y[score_rows] == 1].mean()
                                              - s[y[score_rows] == 0].mean()) / sd
        la = max(seps, key=lambda k: seps[k])
        X = view.activations(la, pool).astype(np.float64)
        out["dir"][key] = la
        out["d"][key] = _diff_means(X, y)
        out["sh"][key] = _diff_means(X, rng.permutation(y))
        out["rnd"][key] = _unit(rng.normal(size=X.shape[1]))
    return Fixed(out["aqi"], out["dir"], out["d"], out["sh"], out["rnd"],
                 np.random.default_rng(seed + 3).permutation(n_eval))


# -- behaviour ----------------------------------------------------------------------------
def own_prompts(prompts: PromptSet, responses: Any, placeholder: str) -> tuple[PromptSet, int]:
    """The prompts with their own response attached; an empty response (the model ended its
    turn at once) becomes ``placeholder`` so every prompt keeps its row (counted)."""
    by_id = {r.prompt_id: r.text for r in responses if r.sample == 0}
    rows, empty = [], 0
    for p in prompts:
        text = by_id[p.id]
        if not text.strip():
            text, empty = placeholder, empty + 1
        rows.append(Prompt(p.id, p.text, p.label, p.category, p.pair_id, response=text))
    return PromptSet(rows, name=prompts.name), empty


def behaviour(responses: Any, base_responses: Any, ids: list[str]) -> dict[str, Any]:
    judge = RefusalJudge()
    rep = refusal_rate(responses, judge)
    cmp = compare_refusal(base_responses, responses, judge)
    by_id = {r.prompt_id: r.text for r in responses if r.sample == 0}
    refused = {i: bool(judge(by_id[i])) for i in ids}
    r, o = rep.refusal.rate, rep.over_refusal.rate
    return {
        "refusal": r, "refusal_ci": [rep.refusal.ci_low, rep.refusal.ci_high],
        "over_refusal": o, "over_refusal_ci": [rep.over_refusal.ci_low, rep.over_refusal.ci_high],
        "discrimination": r - o,
        "refusal_delta": cmp.refusal.difference, "refusal_p": cmp.refusal.p_value,
        "over_refusal_delta": cmp.over_refusal.difference,
        "over_refusal_p": cmp.over_refusal.p_value,
        "discrimination_delta": cmp.refusal.difference - cmp.over_refusal.difference,
    }, refused, {i: sha256(by_id[i]) for i in ids}


# -- signals ------------------------------------------------------------------------------
def _rows(store: aqi.ActivationStore, ids: list[str]) -> np.ndarray:
    where = {str(i): k for k, i in enumerate(store.ids)}
    return np.array([where[i] for i in ids])


def position_signals(store: aqi.ActivationStore, base: aqi.ActivationStore, fixed: Fixed,
                     span: str, pool: str, ids: list[str], boots: list[np.ndarray],
                     scale: Any) -> dict[str, Any]:
    """Every signal at one position, with the replicates of :data:`BOOTSTRAPPED`."""
    key = pos_key(span, pool)
    ra, rb = _rows(store, ids), _rows(base, ids)
    view, bview = store.with_span(span), base.with_span(span)
    y = store.y[ra].astype(int)
    la, ld = fixed.aqi_layer[key], fixed.dir_layer[key]
    X = view.activations(la, pool)[ra].astype(np.float64)
    Xd = view.activations(ld, pool)[ra].astype(np.float64)
    Bd = bview.activations(ld, pool)[rb].astype(np.float64)
    proj = {name: (Bd @ d, Xd @ d) for name, d in (("refusal", fixed.direction[key]),
                                                  ("random", fixed.random[key]),
                                                  ("shuffled", fixed.shuffled[key]))
            if d is not None}
    yperm = y[fixed.shuffle_perm]

    def at(idx: np.ndarray) -> dict[str, float]:
        yi = y[idx]
        out = {"aqi_fixed": _aqi(X[idx], yi), "control_shuffled_aqi": _aqi(X[idx], yperm[idx])}
        for name, sig in (("refusal", "refusal_shift"), ("random", "control_random_shift"),
                          ("shuffled", "control_shuffled_shift")):
            u, s = shifts(proj[name][0][idx], proj[name][1][idx], yi) if name in proj else (
                float("nan"), float("nan"))
            out[sig] = u
            if name == "refusal":
                out["refusal_shift_safe"] = s
        return out

    full = at(np.arange(len(y)))
    reps = [at(idx) for idx in boots]
    prof = aqi.score(view, pooling=pool, n_boot=0, n_perm=0, by_category=False,
                     lexical_control=False)
    probe = linear_probe(view, layers=[la], pooling=pool, n_boot=0, seed=scale.seed).layers[0]
    cmp = aqi.compare(bview, view, pooling=pool, layers=[la], n_boot=scale.n_boot_compare,
                      seed=scale.seed).layers[0]
    return {
        **full,
        "aqi_best": float(prof.best().value), "aqi_best_layer": prof.best().layer,
        "probe_auroc": float(probe.auroc),
        "compare_drop": float(cmp.difference),
        "compare_drop_ci": [float(cmp.ci_low), float(cmp.ci_high)],
        "boot": {k: [r[k] for r in reps] for k in BOOTSTRAPPED},
    }


def audit_gate(store: aqi.ActivationStore, base: aqi.ActivationStore, scale: Any) -> dict:
    """The audit against the original, and the refusal shift its two-axes check reads."""
    rep = aqi.audit(store, baseline=base, scoring=aqi.Scoring(
        n_boot=scale.n_boot_audit, n_perm=scale.n_perm, seed=scale.seed))
    two = next((c for c in rep.checks if c.name == "two_axes"), None)
    sh = rep.axes.refusal if rep.axes is not None else None
    return {
        "verdict": rep.verdict, "reason": rep.reason,
        "two_axes": None if two is None else {"verdict": two.verdict, "summary": two.summary},
        "refusal_shift": None if sh is None else {
            "layer": sh.layer, "span": sh.span, "pooling": sh.pooling,
            "unsafe": sh.unsafe.value, "unsafe_ci": [sh.unsafe.ci_low, sh.unsafe.ci_high],
            "p_unsafe": sh.p_unsafe, "safe": sh.safe.value, "p_safe": sh.p_safe,
            "controls": dict(sh.controls)},
    }


def measure(name: str, model: Any, tok: Any, ev: PromptSet, base: dict[str, Any] | None,
            fixed: Fixed, scale: Any, workdir: Path, responses_dir: Path, *,
            signals: bool = True) -> dict[str, Any]:
    """Everything the bench keeps about one variant (``base``: the original's measurement
    handles; ``None`` when ``name`` is the original itself). ``signals=False``: responses,
    store and behaviour only (the original of a resumed part, already measured)."""
    t0 = time.perf_counter()
    writing = aqi.Writing(batch_size=scale.batch_size, progress=False)
    rs = generate_responses(model, tok, ev, responses_dir / f"{name}.jsonl",
                            decoding=aqi.Decoding(max_new_tokens=scale.max_new_tokens),
                            writing=writing)
    t_gen = time.perf_counter() - t0
    own, empty = own_prompts(ev, rs, tok.eos_token or ".")
    store = aqi.capture(model, tok, own, workdir / f"{name}.h5", layers="blocks",
                        pooling=("mean", "last"), spans=SPANS,
                        rendering=aqi.Rendering(include_response=True,
                                                onset_tokens=scale.onset_tokens),
                        writing=writing)
    t_cap = time.perf_counter() - t0 - t_gen
    ids = [p.id for p in ev]
    base_store = store if base is None else base["store"]
    beh, refused, hashes = behaviour(rs, rs if base is None else base["responses"], ids)
    onset = store.span_tokens_of("response_onset")
    beh["empty_responses"] = empty
    beh["short_onset"] = int((onset < scale.onset_tokens).sum())
    sig: dict[str, Any] = {}
    gate: dict[str, Any] = {}
    if signals:
        boots = boot_indices(store.y[_rows(store, ids)].astype(int), scale.n_boot, scale.seed)
        sig = {pos_key(s, p): position_signals(store, base_store, fixed, s, p, ids, boots, scale)
               for s, p in POSITIONS}
        gate = audit_gate(store, base_store, scale)
    return {"behaviour": beh, "refused": refused, "response_sha256": hashes, "signals": sig,
            "audit": gate, "eval_ids_sha256": ids_digest(ids), "n_eval": len(ids),
            "seconds": {"generate": t_gen, "capture": t_cap,
                        "signals": time.perf_counter() - t0 - t_gen - t_cap},
            "_store": store, "_responses": rs}
