"""One alignment measurement of a model in the middle of training (or of a checkpoint).

:class:`AlignmentWatch` holds the fixed settings (prompt sets, layer, generation length,
thresholds, judge) and the reference measured first (step 0, or the baseline model);
:meth:`AlignmentWatch.measure` returns one flat record per call:

* ``aqi_instruction`` / ``aqi_post_instruction`` — the AQI (0-100) at the chosen layer,
  last-token pooling, on the instruction span (harmfulness recognition) and the
  post-instruction span (refusal disposition, the decision point);
* ``predicted_refusal`` (``_low``, ``_high``) — the refusal rate of the unsafe prompts
  predicted from one forward pass (:func:`aqi.probes.predicted_refusal`: a logistic model
  of the reference's judged refusals on its refusal direction, at the block chosen once
  on the reference), with its bootstrap interval; ``predicted_change`` (``_low``,
  ``_high``) and ``predicted_p_drop`` — the paired change against the reference and the
  one-sided p-value that it dropped;
* ``refusal`` / ``over_refusal`` — the judged refusal rate of greedy generations on the
  unsafe prompts, and on the safe ones; ``refusal_change`` / ``refusal_p`` — refusal minus
  the reference's, paired by prompt, and its exact McNemar p-value. By default
  (``generate=False``) only the reference is generated and judged, so these are NaN
  later (the reason is in ``nan``); with ``generate=True`` every measurement generates;
* ``refusal_shift_unsafe`` / ``refusal_shift_safe`` — how far the prompts moved along the
  reference's refusal direction (:func:`aqi.probes.refusal_shift`, in reference SDs);
* ``verdict`` / ``summary`` — by default :func:`aqi.checks.predicted_refusal_check`
  (*fail*: the unsafe prompts moved significantly, by at least ``min_gap_fraction`` of
  the reference's unsafe–safe gap, bench v3's rule); with
  ``generate=True``, :func:`aqi.checks.refusal_change_check` on the judged change
  (*fail*: a significant drop of at least ``min_refusal_drop``);
* ``nan`` — for every value that is NaN, why.

The model is measured in eval mode under ``torch.no_grad``, with every random number
generator (Python, NumPy, torch CPU and CUDA) restored afterwards and the model put back
in the mode it was in, so training numerics are unchanged.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import ArgumentError
from ..activations import Prompt, PromptSet, capture
from ..activations.layers import resolve_layers
from ..behaviour import (
    Decoding,
    Responses,
    compare_refusal,
    generate_responses,
    refusal_rate,
    resolve_judge,
)
from ..checks import AuditThresholds, Check, predicted_refusal_check, refusal_change_check
from ..indices import alignment_quality_index
from ..jobs import Writing
from ..probes.predicted_refusal import PredictedRefusal, predicted_refusal
from ..probes.refusal_direction import refusal_shift
from ..prompts.resolve import resolve_prompts

__all__ = [
    "DEFAULT_PAIRS",
    "METRICS",
    "PREDICTED_N_BOOT",
    "WATCH_NEW_TOKENS",
    "AlignmentWatch",
    "default_layer",
    "watch_prompts",
]

#: Prompt pairs captured at every measurement (balanced over the bundled categories).
DEFAULT_PAIRS = 16
#: New tokens per judged generation: half of :data:`aqi.behaviour.JUDGE_NEW_TOKENS`.
#: Generation is most of a measurement's cost and grows with this; the reference (step 0)
#: is generated with the same length, so a late refusal (after ~30 tokens) is missed the
#: same way at every step and the change stays comparable.
WATCH_NEW_TOKENS = 32
#: Bootstrap resamples of the predicted refusal at each measurement (an audit uses 1,000).
#: Each refits the direction and the logistic model on the reference's prompts: at 16
#: pairs and width 576 (SmolLM2-135M), 200 resamples took 0.07 s against 0.33 s for
#: 1,000 (2 busy CPU cores, 2026-12-06). The p-value is read from a normal fit to the
#: resamples' SD, which 200 resamples estimate to about 5 % (relative).
PREDICTED_N_BOOT = 200
SPANS = ("instruction", "post_instruction")
#: The numeric values of a record, in the order they are logged.
METRICS = (
    "aqi_instruction",
    "aqi_post_instruction",
    "refusal",
    "over_refusal",
    "refusal_change",
    "refusal_p",
    "refusal_shift_unsafe",
    "refusal_shift_safe",
    "predicted_refusal",
    "predicted_refusal_low",
    "predicted_refusal_high",
    "predicted_change",
    "predicted_change_low",
    "predicted_change_high",
    "predicted_p_drop",
    "seconds",
)
_JUDGED = ("refusal", "over_refusal", "refusal_change", "refusal_p")
_PREDICTED = METRICS[8:15]
_NAN = float("nan")


def watch_prompts(pairs: int = DEFAULT_PAIRS, prompts: Any = None) -> PromptSet:
    """A balanced subset of ``prompts``: ``pairs`` safe/unsafe pairs, round-robin over the
    categories (the first pair of each category, then the second, ...).

    Parameters
    ----------
    pairs : int, default 16
        Pairs to keep (at least 4: the refusal shift fits on half the pairs and needs two
        of each class on each half).
    prompts : PromptSet or anything :func:`aqi.load_prompts` accepts, optional
        Default :func:`aqi.bundled_prompts`. Rows without a pair are not used.

    Examples
    --------
    >>> ps = watch_prompts(8)
    >>> len(ps), ps.labels.count("unsafe"), len(set(ps.categories))
    (16, 8, 7)
    """
    if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 4:
        raise ArgumentError("{pairs}; expected an int >= 4 (the refusal shift needs two pairs "
                            "on each half)", pairs=pairs)  # fmt: skip
    ps = resolve_prompts(prompts)
    by_pair: dict[str, list[Prompt]] = {}
    for p in ps:
        if p.pair_id:
            by_pair.setdefault(p.pair_id, []).append(p)
    complete = [rows for rows in by_pair.values()
                if sorted(r.label for r in rows) == ["safe", "unsafe"]]  # fmt: skip
    if len(complete) < pairs:
        raise ValueError(f"pairs={pairs} but the prompt set has {len(complete)} complete "
                         "safe/unsafe pairs")  # fmt: skip
    by_cat: dict[str, list[list[Prompt]]] = {}
    for rows in complete:
        by_cat.setdefault(rows[0].category, []).append(rows)
    chosen: list[list[Prompt]] = []
    depth = 0
    while len(chosen) < pairs:
        for rows in by_cat.values():
            if depth < len(rows) and len(chosen) < pairs:
                chosen.append(rows[depth])
        depth += 1
    out = [r for rows in chosen for r in sorted(rows, key=lambda r: r.label)]
    return PromptSet(out, name=f"{ps.name or 'prompts'}[{pairs} pairs]", source=ps.source)


def default_layer(model: Any) -> str:
    """The block at two thirds of the stack (``model.layers.20`` of SmolLM2's 30: the
    validation bench's fixed layer, docs/validation.md).

    Examples
    --------
    >>> import transformers as tf
    >>> m = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=3, n_embd=8, n_head=2, vocab_size=10))
    >>> default_layer(m)
    'transformer.h.2'
    """
    blocks = resolve_layers(model, "blocks")
    return blocks[min(len(blocks) - 1, round(2 * len(blocks) / 3))].name


@contextmanager
def _measuring(model: Any) -> Iterator[None]:
    """Eval mode, no gradients, and every RNG restored: the training run cannot tell."""
    import torch

    state = (random.getstate(), np.random.get_state())  # noqa: NPY002 - the global one
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    was_training = bool(getattr(model, "training", False))
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)
            random.setstate(state[0])
            np.random.set_state(state[1])  # noqa: NPY002


@dataclass
class _Reference:
    """What the later measurements are compared with (set by the first one)."""

    store: Any
    responses: Responses  # the judged series' responses (see AlignmentWatch.measure)
    step: int
    refused: dict[str, bool | None]  # every prompt's judged response
    predicted_layer: str | None  # the block of the predicted refusal; None: not fitted
    predicted_error: str | None  # why the predicted refusal could not be fitted


@dataclass
class AlignmentWatch:
    """Settings and reference of a series of alignment measurements (see the module doc).

    Parameters
    ----------
    workdir : path-like
        Folder for the activation stores (the reference's stays; the current one is
        rewritten at every measurement).
    prompts : PromptSet, optional
        Captured at every measurement; default :func:`watch_prompts` (16 pairs).
    n_unsafe, n_safe : int, default 8 and 4
        With ``generate=True``: the unsafe and safe prompts of ``prompts`` generated and
        judged at every measurement (the first of each). With 8 unsafe prompts a *fail*
        needs 6 of them to stop refusing (exact McNemar p = 0.031 < 0.05): the early
        warning is for large drops only. Not used by the default (latent) mode, whose
        reference judges every prompt.
    max_new_tokens : int, default :data:`WATCH_NEW_TOKENS` (32)
    layer : str or int, optional
        Layer of the AQI and the refusal shift (grammar of :func:`aqi.resolve_layers`);
        default :func:`default_layer`. The predicted refusal chooses its own block.
    thresholds : AuditThresholds, optional
        ``alpha``, ``min_gap_fraction`` (and with ``generate=True``
        ``min_refusal_drop``) of the verdict.
    batch_size : int, default 16
    generate : bool, default False
        ``False`` (latent mode): only the reference generates (greedy, every prompt) and is
        judged; every later measurement is one forward pass per prompt at two layers, and
        its verdict is :func:`aqi.checks.predicted_refusal_check`. ``True``: every
        measurement also generates for the ``n_unsafe`` + ``n_safe`` judged prompts and
        the verdict is :func:`aqi.checks.refusal_change_check` on the judged change (the
        predicted values are recorded too).
    judge : judge, judge name or None
        Judges the generated responses; anything :func:`aqi.behaviour.resolve_judge`
        takes (default the phrase rules). In latent mode it labels the reference's
        responses the predicted refusal is fitted on.

    Examples
    --------
    >>> import tempfile, torch, transformers as tf
    >>> from aqi.demo import load_demo_model
    >>> _, tok = load_demo_model(); _ = torch.manual_seed(0)
    >>> m = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=len(tok), hidden_size=16,
    ...     intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)).eval()
    >>> w = AlignmentWatch(tempfile.mkdtemp(), prompts=watch_prompts(6), max_new_tokens=4)
    >>> rec = w.measure(m, tok, step=0)
    >>> rec["step"], rec["layer"], rec["refusal"], rec["verdict"]
    (0, 'model.layers.1', 0.0, 'warn')
    >>> "refused 0 of its 12 judged prompts" in rec["summary"]  # a random model never refuses
    True
    >>> later = w.measure(m, tok, step=10)  # no generation: NaN judged refusal, and why
    >>> later["nan"]["refusal"][:31]
    'not generated: generate=False ('
    """

    workdir: str | os.PathLike[str]
    prompts: PromptSet | None = None
    n_unsafe: int = 8
    n_safe: int = 4
    max_new_tokens: int = WATCH_NEW_TOKENS
    layer: str | int | None = None
    thresholds: AuditThresholds | None = None
    batch_size: int = 16
    generate: bool = False
    judge: Any = None
    reference: _Reference | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("n_unsafe", "n_safe", "max_new_tokens", "batch_size"):
            v = getattr(self, name)
            low = 0 if name == "n_safe" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name}={v!r}; expected an int >= {low}")
        if not isinstance(self.generate, bool):
            raise TypeError(f"generate={self.generate!r}; expected True (generate and judge "
                            "at every measurement) or False (only at the reference)")
        self.prompts = watch_prompts() if self.prompts is None else resolve_prompts(self.prompts)
        self.thresholds = self.thresholds or AuditThresholds()
        if not isinstance(self.thresholds, AuditThresholds):
            raise TypeError(f"thresholds must be aqi.AuditThresholds, got "
                            f"{type(self.thresholds).__name__}")  # fmt: skip
        self.judge = resolve_judge(self.judge)
        unsafe = [p for p in self.prompts if p.is_unsafe][: self.n_unsafe]
        safe = [p for p in self.prompts if not p.is_unsafe][: self.n_safe]
        if not unsafe:
            raise ValueError("prompts has no unsafe prompt to generate for")
        self.judged = PromptSet(unsafe + safe, name=f"{self.prompts.name}[judged]")
        self.workdir = Path(self.workdir)

    # -- one measurement ---------------------------------------------------------------
    def measure(self, model: Any, tokenizer: Any, *, step: int,
                epoch: float | None = None) -> dict[str, Any]:  # fmt: skip
        """Measure ``model`` now; the first call becomes the reference of the later ones.

        The first call generates for every prompt (greedy, ``max_new_tokens``), judges the
        responses and captures every block, then chooses the predicted refusal's block
        on them. A later call captures two layers (the AQI's and that block) in one
        forward pass per prompt and, unless ``generate=True``, generates nothing.

        Returns
        -------
        dict
            ``step``, ``epoch``, ``layer``, ``generated`` (whether this call generated),
            ``predicted_layer``, the values of :data:`METRICS`, ``verdict``, ``summary``,
            ``reference_step`` and ``nan`` (why each NaN value is NaN).
        """
        start = time.perf_counter()
        if self.layer is None or isinstance(self.layer, int):
            self.layer = (default_layer(model) if self.layer is None
                          else resolve_layers(model, [self.layer])[0].name)  # fmt: skip
        first = self.reference is None
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        path = Path(self.workdir) / ("reference.h5" if first else "current.h5")
        with _measuring(model):
            store = capture(model, tokenizer, self.prompts, path, layers=self._layers(model),
                            pooling="last", spans=SPANS,
                            writing=Writing(batch_size=self.batch_size, overwrite=True,
                                            progress=False))  # fmt: skip
            series, everything = self._generate(model, tokenizer, first)
        nan: dict[str, str] = {}
        rec: dict[str, Any] = {"step": int(step), "epoch": epoch, "layer": self.layer,
                               "generated": series is not None}  # fmt: skip
        self._aqi(store, rec, nan)
        report = refusal_rate(series, self.judge) if series is not None else None
        if first:
            assert series is not None and everything is not None  # the reference generates
            self.reference = self._make_reference(store, series, everything, report, step)
        ref = self.reference
        assert ref is not None  # set above on the first call
        judged_check = self._judged(ref, series, report, rec, nan)
        self._shift(ref, store, rec, nan)
        predicted_check = self._predicted(ref, store, rec, nan)
        check = judged_check if self.generate else predicted_check
        assert check is not None  # generate=True always has the judged check
        rec["verdict"], rec["summary"] = check.verdict, check.summary
        if not first:
            store.close()
        rec["seconds"] = time.perf_counter() - start
        for k in METRICS:
            if isinstance(rec[k], float) and math.isnan(rec[k]) and k not in nan:
                nan[k] = _why_nan(k, rec)
        rec["reference_step"] = ref.step
        rec["nan"] = nan
        return rec

    def close(self) -> None:
        """Close the reference store (its file stays in ``workdir``)."""
        if self.reference is not None:
            self.reference.store.close()

    # -- the steps of a measurement ----------------------------------------------------
    def _layers(self, model: Any) -> list[str]:
        """Every block (and the AQI layer) for the reference; later the AQI layer and the
        predicted refusal's block only."""
        assert isinstance(self.layer, str)  # resolved by measure
        if self.reference is None:
            names = [li.name for li in resolve_layers(model, "blocks")]
        else:
            names = [n for n in (self.reference.predicted_layer,) if n is not None]
        return list(dict.fromkeys([self.layer, *names]))

    def _generate(self, model: Any, tokenizer: Any,
                  first: bool) -> tuple[Responses | None, Responses | None]:  # fmt: skip
        """The responses of the judged series (``None``: none generated) and, for the
        reference, the responses to every prompt (what the predicted refusal is fitted on).

        With ``generate=True`` the judged prompts are generated on their own, as at every
        later measurement (batches are formed by length, so the same batches give the same
        greedy text), and the reference's other prompts in a second call.
        """
        def gen(prompts: PromptSet) -> Responses:
            return generate_responses(model, tokenizer, prompts,
                                      decoding=Decoding(max_new_tokens=self.max_new_tokens),
                                      writing=Writing(batch_size=self.batch_size,
                                                      progress=False))  # fmt: skip

        assert self.prompts is not None  # set in __post_init__
        if not self.generate:
            everything = gen(self.prompts) if first else None
            return everything, everything
        judged = gen(self.judged)
        if not first:
            return judged, None
        done = set(judged.prompt_ids)
        rest = [p for p in self.prompts if p.id not in done]
        if not rest:
            return judged, judged
        others = gen(PromptSet(rest, name=f"{self.prompts.name}[reference only]"))
        return judged, Responses(records=judged.records + others.records,
                                 header=judged.header)  # fmt: skip

    def _make_reference(self, store: Any, series: Responses, everything: Responses,
                        report: Any, step: int) -> _Reference:  # fmt: skip
        full = report if everything is series else refusal_rate(everything, self.judge)
        refused = {pid: v for (pid, _sample), v in full.verdicts.items()}
        try:
            pred = predicted_refusal(store, store, refused, span="post_instruction",
                                     pooling="last", n_boot=PREDICTED_N_BOOT, seed=0)
            layer, error = pred.layer, None
        except ValueError as e:
            layer, error = None, str(e)
        return _Reference(store=store, responses=series, step=int(step), refused=refused,
                          predicted_layer=layer, predicted_error=error)  # fmt: skip

    def _aqi(self, store: Any, rec: dict[str, Any], nan: dict[str, str]) -> None:
        y = store.labels
        for span in SPANS:
            key = f"aqi_{span}"
            try:
                X = store.activations(self.layer, "last", span)
                rec[key] = float(alignment_quality_index(X, y, n_boot=0, n_perm=0).value)
            except ValueError as e:
                rec[key], nan[key] = _NAN, str(e)

    def _judged(self, ref: _Reference, series: Responses | None, report: Any,
                rec: dict[str, Any], nan: dict[str, str]) -> Check | None:  # fmt: skip
        """The judged refusal and its paired change against the reference (NaN, with why,
        when this measurement generated nothing)."""
        if series is None:
            why = (f"not generated: generate=False (judged at the reference, step "
                   f"{ref.step}, only; the predicted_* values stand in for it)")
            for k in _JUDGED:
                rec[k], nan[k] = _NAN, why
            return None
        rec["refusal"], rec["over_refusal"] = report.refusal.rate, report.over_refusal.rate
        if report.over_refusal.total == 0:
            nan["over_refusal"] = "no safe prompt is generated (n_safe=0)"
        cmp = compare_refusal(ref.responses, series, self.judge)
        rec["refusal_change"], rec["refusal_p"] = cmp.refusal.difference, cmp.refusal.p_value
        return refusal_change_check(cmp, self.thresholds or AuditThresholds())

    def _shift(self, ref: _Reference, store: Any, rec: dict[str, Any],
               nan: dict[str, str]) -> None:  # fmt: skip
        try:
            shift = refusal_shift(ref.store, store, span="post_instruction", pooling="last",
                                  layer=self.layer, n_boot=0)  # fmt: skip
            rec["refusal_shift_unsafe"] = shift.unsafe.value
            rec["refusal_shift_safe"] = shift.safe.value
        except ValueError as e:
            rec["refusal_shift_unsafe"] = rec["refusal_shift_safe"] = _NAN
            nan["refusal_shift_unsafe"] = nan["refusal_shift_safe"] = str(e)

    def _predicted(self, ref: _Reference, store: Any, rec: dict[str, Any],
                   nan: dict[str, str]) -> Check:  # fmt: skip
        """The predicted refusal against the reference and its verdict (*warn*, with why,
        when it cannot be computed: never a silent *pass*)."""
        rec["predicted_layer"] = ref.predicted_layer
        pred: PredictedRefusal | None = None
        error = ref.predicted_error
        if error is None:
            try:
                pred = predicted_refusal(ref.store, store, ref.refused, span="post_instruction",
                                         pooling="last", layer=ref.predicted_layer,
                                         n_boot=PREDICTED_N_BOOT, seed=0)  # fmt: skip
            except ValueError as e:
                error = str(e)
        if pred is None:
            for k in _PREDICTED:
                rec[k], nan[k] = _NAN, f"predicted refusal not computed: {error}"
            return Check(name="predicted_refusal", verdict="warn",
                         summary=f"predicted refusal not computed (the reference, step "
                                 f"{ref.step}): {error}")  # fmt: skip
        rec["predicted_refusal"] = pred.refusal.value
        rec["predicted_refusal_low"] = pred.refusal.ci_low
        rec["predicted_refusal_high"] = pred.refusal.ci_high
        rec["predicted_change"] = pred.change.value
        rec["predicted_change_low"] = pred.change.ci_low
        rec["predicted_change_high"] = pred.change.ci_high
        rec["predicted_p_drop"] = pred.p_drop
        return predicted_refusal_check(pred, self.thresholds or AuditThresholds())


def _why_nan(key: str, rec: Mapping[str, Any]) -> str:
    if key == "refusal_p":
        return "McNemar p-value undefined: no prompt changed its judged behaviour"
    if key.startswith("aqi_"):
        return "AQI undefined on these activations (e.g. identical rows)"
    if key.startswith("predicted_"):
        return ("bootstrap interval or p-value not computed: too few of the "
                f"{PREDICTED_N_BOOT} resamples could be fitted (one outcome only)")
    return "undefined on these responses"


def logged_values(rec: Mapping[str, Any], prefix: str = "aqi/") -> dict[str, float]:
    """The numeric values of a record, under ``prefix`` (what goes to the Trainer's log)."""
    out = {f"{prefix}{k}": float(rec[k]) for k in METRICS}
    out[f"{prefix}verdict_fail"] = float(rec["verdict"] == "fail")
    return out
