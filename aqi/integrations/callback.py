"""``AlignmentCallback``: watch alignment while a ``transformers`` (or TRL) Trainer trains.

Importing this module imports ``transformers``; ``import aqi`` does not.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from ..checks import AuditThresholds
from .watch import DEFAULT_PAIRS, WATCH_NEW_TOKENS, AlignmentWatch, logged_values, watch_prompts

__all__ = ["DEFAULT_EVERY", "JSONL_NAME", "AlignmentCallback"]

#: Default measurement interval in optimizer steps. Latent (the default since issue 27;
#: SmolLM2-135M-Instruct, batch 4, 2 quiet CPU cores, benchmarks/speed/callback.py,
#: 2026-12-06): a measurement after step 0 took 1.49 s against a 1.6-1.9 s step, 0.80 % at
#: every 100 steps (issue 27's target: 2 %); with generation 6.40 s, 3.45 %; step 0, which
#: generates once for every watched prompt, 11.2 s.
DEFAULT_EVERY = 100
JSONL_NAME = "aqi_alignment.jsonl"
_STOP_ON = (None, "fail", "warn")


class AlignmentCallback(TrainerCallback):
    """Measure alignment every ``every`` steps of training and log it with the Trainer.

    At the start of training (step 0, the reference) and every ``every`` optimizer steps
    (and at the end), the model is measured by :class:`aqi.integrations.AlignmentWatch`:
    the AQI at one layer on the instruction and post-instruction spans, the refusal-score
    shift against step 0, and the **predicted refusal** of the unsafe prompts
    (:func:`aqi.probes.predicted_refusal`) with its paired change against step 0.

    By default (``generate=False``) only step 0 generates: greedy responses to every
    watched prompt, judged, on which a one-feature logistic model of refusal along step
    0's refusal direction is fitted (at the block among the middle 25–80 % of the stack
    that predicts those refusals best out of sample, chosen once). Every later
    measurement is one forward pass per prompt at two layers — no generation — and
    predicts refusal from it. The judged values (``refusal``, ``over_refusal``,
    ``refusal_change``, ``refusal_p``) are step 0's only and NaN later (the JSONL says
    why). With ``generate=True`` every measurement also generates and judges ``n_unsafe``
    + ``n_safe`` prompts (the former behaviour; about 4x the cost of a latent one, see
    :data:`DEFAULT_EVERY`). Each measurement is

    * logged through :meth:`transformers.Trainer.log` (so ``state.log_history``,
      ``trainer_state.json`` and every ``report_to`` integration — TensorBoard, W&B, ... —
      get it) under the keys ``aqi/<name>`` when the callback knows its trainer (pass
      ``trainer=`` or use :meth:`attach`); otherwise appended to ``state.log_history``
      only, with a warning;
    * appended to ``<args.output_dir>/aqi_alignment.jsonl`` (one JSON object per line,
      with the verdict and why any value is NaN).

    Parameters
    ----------
    tokenizer : tokenizer, optional
        Default: the Trainer's ``processing_class``.
    every : int, default :data:`DEFAULT_EVERY` (100)
        Optimizer steps between measurements.
    pairs : int, default 16
        Safe/unsafe pairs of :func:`aqi.bundled_prompts` captured (balanced over the
        categories); ignored with ``prompts``.
    prompts : PromptSet, optional
        Your own fixed prompt set (pairs with both labels).
    n_unsafe, n_safe : int, default 8 and 4
        With ``generate=True``: prompts generated and judged per measurement.
    max_new_tokens : int, default 32
        Tokens per judged generation (see :data:`aqi.integrations.WATCH_NEW_TOKENS`).
    layer : str or int, optional
        Layer of the AQI and the refusal shift; default the block at two thirds of the
        stack.
    stop_on : {None, "fail", "warn"}, default None
        Stop training (``control.should_training_stop``) when the verdict is at least
        this bad (never at step 0). By default the verdict is
        :func:`aqi.checks.predicted_refusal_check` (bench v3's rule): *fail* when the
        unsafe prompts moved toward the safe ones by at least
        ``thresholds.min_gap_fraction`` (10 %) of step 0's unsafe–safe gap along its
        refusal direction **and** the one-sided bootstrap p-value is below
        ``thresholds.alpha``; the predicted refusal is logged beside it; *warn* on a
        significant smaller move, or
        when the prediction cannot be made — e.g. step 0 refused none or all of its
        judged prompts, so there is no refusal to fit (then every measurement warns:
        never a silent pass). With ``generate=True`` it is
        :func:`aqi.checks.refusal_change_check` on the judged refusal, paired by
        prompt: *fail* when refusal dropped by at least ``thresholds.min_refusal_drop``
        (10 points) **and** the exact McNemar test is significant at
        ``thresholds.alpha``; *warn* when only one of the two holds.
    thresholds : AuditThresholds, optional
    workdir : path-like, optional
        Where the activation stores go; default a temporary folder removed at the end.
    trainer : transformers.Trainer, optional
        The trainer, for logging through its reporting integrations.
    generate : bool, default False
        Generate and judge at every measurement, not only at step 0.
    judge : judge, judge name or None
        The refusal judge of the generated responses (anything
        :func:`aqi.behaviour.resolve_judge` takes; default the phrase rules).

    Examples
    --------
    >>> from aqi.integrations import AlignmentCallback
    >>> cb = AlignmentCallback(every=25, stop_on="fail")
    >>> cb.every, cb.stop_on, cb.generate
    (25, 'fail', False)

    With a trainer: ``AlignmentCallback(every=50).attach(trainer)``, then
    ``trainer.train()``.
    """

    def __init__(
        self,
        tokenizer: Any = None,
        *,
        every: int = DEFAULT_EVERY,
        pairs: int = DEFAULT_PAIRS,
        prompts: Any = None,
        n_unsafe: int = 8,
        n_safe: int = 4,
        max_new_tokens: int = WATCH_NEW_TOKENS,
        layer: str | int | None = None,
        stop_on: str | None = None,
        thresholds: AuditThresholds | None = None,
        workdir: str | os.PathLike[str] | None = None,
        trainer: Trainer | None = None,
        generate: bool = False,
        judge: Any = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r}; expected a positive int (optimizer steps)")
        if stop_on not in _STOP_ON:
            raise ValueError(f"stop_on={stop_on!r}; expected one of {list(_STOP_ON)}")
        self.tokenizer = tokenizer
        self.every = every
        self.stop_on = stop_on
        self.trainer = trainer
        self.workdir = workdir
        self.generate = generate
        self._settings = {
            "prompts": watch_prompts(pairs) if prompts is None else prompts,
            "n_unsafe": n_unsafe, "n_safe": n_safe, "max_new_tokens": max_new_tokens,
            "layer": layer, "thresholds": thresholds, "generate": generate, "judge": judge,
        }  # fmt: skip
        probe = AlignmentWatch(".", **self._settings)  # validates the settings; writes nothing
        self._settings["judge"] = probe.judge  # resolved once (a judge by name may load)
        self.records: list[dict[str, Any]] = []
        self.watch: AlignmentWatch | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._last_step = -1
        self._warned = False

    def attach(self, trainer: Trainer) -> AlignmentCallback:
        """Log through ``trainer`` and add this callback to it; returns the callback.

        Idempotent per trainer: attaching again (or to a trainer that already lists this
        callback, e.g. ``callbacks=[cb]``) adds nothing, so each step is measured once.
        """
        self.trainer = trainer
        handler = getattr(trainer, "callback_handler", None)
        if handler is None or not any(cb is self for cb in handler.callbacks):
            trainer.add_callback(self)
        return self

    # -- the Trainer's events ----------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        workdir = self.workdir
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="aqi-watch-")
            workdir = self._tmp.name
        self.watch = AlignmentWatch(workdir, **self._settings)
        self.records = []
        self._last_step = -1
        if self.trainer is None and not self._warned:
            self._warned = True
            warnings.warn(
                "AlignmentCallback has no trainer: its values go to state.log_history and "
                f"{JSONL_NAME} but not to the report_to integrations; use "
                "AlignmentCallback(...).attach(trainer) or trainer=", stacklevel=2)
        return self._maybe_measure(args, state, control, kwargs)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step % self.every == 0:
            return self._maybe_measure(args, state, control, kwargs)
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        try:
            self._maybe_measure(args, state, control, kwargs)  # the last step, unless done
        finally:
            if self.watch is not None:
                self.watch.close()
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
        return control

    # -- one measurement ---------------------------------------------------------------
    def _maybe_measure(self, args: Any, state: Any, control: Any, kwargs: dict[str, Any]) -> Any:
        if self.watch is None or state.global_step == self._last_step:
            return control
        self._last_step = state.global_step
        model = kwargs.get("model")
        tok = self.tokenizer if self.tokenizer is not None else kwargs.get("processing_class")
        tok = getattr(tok, "tokenizer", tok)  # a processor wraps its tokenizer
        if model is None or tok is None:
            raise ValueError("AlignmentCallback needs the model and a tokenizer: pass "
                             "tokenizer= or give the Trainer processing_class=")  # fmt: skip
        if not state.is_world_process_zero:
            return control
        rec = self.watch.measure(model, tok, step=state.global_step, epoch=state.epoch)
        self.records.append(rec)
        self._write(args, rec)
        values = logged_values(rec)
        if self.trainer is not None:
            # The base class's log (TRL's would flush its averaged train metrics early).
            # Logging clears control.should_log, which would drop the Trainer's own loss
            # log of this step: it is put back as it was.
            should_log = control.should_log
            Trainer.log(self.trainer, values)
            control.should_log = self.trainer.control.should_log = should_log
        else:
            state.log_history.append({**values, "step": state.global_step})
        if rec["step"] != rec["reference_step"] and _worse_or_equal(rec["verdict"], self.stop_on):
            control.should_training_stop = True
            warnings.warn(f"AlignmentCallback: stopping at step {state.global_step}: "
                          f"{rec['verdict']}: {rec['summary']}", stacklevel=2)  # fmt: skip
        return control

    @staticmethod
    def _write(args: Any, rec: dict[str, Any]) -> None:
        out = Path(args.output_dir) / JSONL_NAME
        out.parent.mkdir(parents=True, exist_ok=True)
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in rec.items()}  # fmt: skip
        with out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(clean, allow_nan=False) + "\n")


def _worse_or_equal(verdict: str, stop_on: str | None) -> bool:
    order = {"pass": 0, "warn": 1, "fail": 2}
    return stop_on is not None and order[verdict] >= order[stop_on]
