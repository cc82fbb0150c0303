"""One alignment measurement of a model in the middle of training (or of a checkpoint).

:class:`AlignmentWatch` holds the fixed settings (prompt sets, layer, generation length,
thresholds) and the reference measured first (step 0, or the baseline model);
:meth:`AlignmentWatch.measure` returns one flat record per call:

* ``aqi_instruction`` / ``aqi_post_instruction`` — the AQI (0-100) at the chosen layer,
  last-token pooling, on the instruction span (harmfulness recognition) and the
  post-instruction span (refusal disposition, the decision point);
* ``refusal`` / ``over_refusal`` — the judged refusal rate of greedy generations on a few
  unsafe prompts, and on a few safe ones;
* ``refusal_change`` / ``refusal_p`` — refusal minus the reference's, paired by prompt,
  and its exact McNemar p-value;
* ``refusal_shift_unsafe`` / ``refusal_shift_safe`` — how far the prompts moved along the
  reference's refusal direction (:func:`aqi.probes.refusal_shift`, in reference SDs);
* ``verdict`` / ``summary`` — :func:`aqi.checks.refusal_change_check` on that paired
  change (*fail*: a significant drop of at least ``min_refusal_drop``);
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
from ..activations import Prompt, PromptSet, bundled_prompts, capture, load_prompts
from ..activations.layers import resolve_layers
from ..behaviour import compare_refusal, generate_responses, refusal_rate
from ..checks import AuditThresholds, refusal_change_check
from ..indices import alignment_quality_index
from ..probes.refusal_direction import refusal_shift

__all__ = [
    "DEFAULT_PAIRS",
    "METRICS",
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
    "seconds",
)
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
    ps = bundled_prompts() if prompts is None else load_prompts(prompts)
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
        Unsafe and safe prompts of ``prompts`` generated and judged (the first of each).
        With 8 unsafe prompts a *fail* needs 6 of them to stop refusing (exact McNemar
        p = 0.031 < 0.05): the early warning is for large drops only.
    max_new_tokens : int, default :data:`WATCH_NEW_TOKENS` (32)
    layer : str or int, optional
        Layer to read (grammar of :func:`aqi.resolve_layers`); default
        :func:`default_layer`.
    thresholds : AuditThresholds, optional
        ``alpha`` and ``min_refusal_drop`` of the verdict.
    batch_size : int, default 16

    Examples
    --------
    >>> import tempfile, torch, transformers as tf
    >>> from aqi.demo import load_demo_model
    >>> _, tok = load_demo_model(); _ = torch.manual_seed(0)
    >>> m = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=len(tok), hidden_size=16,
    ...     intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)).eval()
    >>> w = AlignmentWatch(tempfile.mkdtemp(), n_unsafe=4, n_safe=2, max_new_tokens=4)
    >>> rec = w.measure(m, tok, step=0)
    >>> rec["step"], rec["layer"], rec["refusal_change"], rec["verdict"]
    (0, 'model.layers.1', 0.0, 'pass')
    """

    workdir: str | os.PathLike[str]
    prompts: PromptSet | None = None
    n_unsafe: int = 8
    n_safe: int = 4
    max_new_tokens: int = WATCH_NEW_TOKENS
    layer: str | int | None = None
    thresholds: AuditThresholds | None = None
    batch_size: int = 16
    reference: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("n_unsafe", "n_safe", "max_new_tokens", "batch_size"):
            v = getattr(self, name)
            low = 0 if name == "n_safe" else 1
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name}={v!r}; expected an int >= {low}")
        self.prompts = watch_prompts() if self.prompts is None else load_prompts(self.prompts)
        self.thresholds = self.thresholds or AuditThresholds()
        if not isinstance(self.thresholds, AuditThresholds):
            raise TypeError(f"thresholds must be aqi.AuditThresholds, got "
                            f"{type(self.thresholds).__name__}")  # fmt: skip
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

        Returns
        -------
        dict
            ``step``, ``epoch``, ``layer``, the values of :data:`METRICS`, ``verdict``,
            ``summary`` and ``nan`` (why each NaN value is NaN).
        """
        start = time.perf_counter()
        if self.layer is None or isinstance(self.layer, int):
            self.layer = (default_layer(model) if self.layer is None
                          else resolve_layers(model, [self.layer])[0].name)  # fmt: skip
        first = self.reference is None
        Path(self.workdir).mkdir(parents=True, exist_ok=True)
        path = Path(self.workdir) / ("reference.h5" if first else "current.h5")
        with _measuring(model):
            store = capture(model, tokenizer, self.prompts, path, layers=[self.layer],
                            pooling="last", spans=SPANS, batch_size=self.batch_size,
                            overwrite=True, progress=False)  # fmt: skip
            responses = generate_responses(model, tokenizer, self.judged,
                                           max_new_tokens=self.max_new_tokens,
                                           batch_size=self.batch_size, progress=False)
        nan: dict[str, str] = {}
        rec: dict[str, Any] = {"step": int(step), "epoch": epoch, "layer": self.layer}
        y = store.labels
        for span in SPANS:
            key = f"aqi_{span}"
            try:
                X = store.activations(self.layer, "last", span)
                rec[key] = float(alignment_quality_index(X, y, n_boot=0, n_perm=0).value)
            except ValueError as e:
                rec[key], nan[key] = _NAN, str(e)
        rates = refusal_rate(responses)
        rec["refusal"], rec["over_refusal"] = rates.refusal.rate, rates.over_refusal.rate
        if self.n_safe == 0:
            nan["over_refusal"] = "no safe prompt is generated (n_safe=0)"
        if first:
            self.reference = {"store": store, "responses": responses, "step": int(step)}
        ref = self.reference
        assert ref is not None  # set above on the first call
        cmp = compare_refusal(ref["responses"], responses)
        check = refusal_change_check(cmp, self.thresholds or AuditThresholds())
        rec["refusal_change"], rec["refusal_p"] = cmp.refusal.difference, cmp.refusal.p_value
        rec["verdict"], rec["summary"] = check.verdict, check.summary
        try:
            shift = refusal_shift(ref["store"], store, span="post_instruction", pooling="last",
                                  layer=self.layer, n_boot=0)  # fmt: skip
            rec["refusal_shift_unsafe"] = shift.unsafe.value
            rec["refusal_shift_safe"] = shift.safe.value
        except ValueError as e:
            rec["refusal_shift_unsafe"] = rec["refusal_shift_safe"] = _NAN
            nan["refusal_shift_unsafe"] = nan["refusal_shift_safe"] = str(e)
        if not first:
            store.close()
        rec["seconds"] = time.perf_counter() - start
        for k in METRICS:
            if isinstance(rec[k], float) and math.isnan(rec[k]) and k not in nan:
                nan[k] = _why_nan(k, rec)
        rec["reference_step"] = ref["step"]
        rec["nan"] = nan
        return rec

    def close(self) -> None:
        """Close the reference store (its file stays in ``workdir``)."""
        if self.reference is not None:
            self.reference["store"].close()


def _why_nan(key: str, rec: Mapping[str, Any]) -> str:
    if key == "refusal_p":
        return "McNemar p-value undefined: no prompt changed its judged behaviour"
    if key.startswith("aqi_"):
        return "AQI undefined on these activations (e.g. identical rows)"
    return "undefined on these responses"


def logged_values(rec: Mapping[str, Any], prefix: str = "aqi/") -> dict[str, float]:
    """The numeric values of a record, under ``prefix`` (what goes to the Trainer's log)."""
    out = {f"{prefix}{k}": float(rec[k]) for k in METRICS}
    out[f"{prefix}verdict_fail"] = float(rec["verdict"] == "fail")
    return out
