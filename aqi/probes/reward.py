"""Reward-model probes: score preference pairs, read score dumps, analyse distribution shift.

After LeVine, Pikus, Chen & Hendryx (2023), "A Baseline Analysis of Reward
Models' Ability To Accurately Analyze Foundation Models Under Distribution
Shift", with three fixes to their code: confidences of exactly 1.0 are binned
(not dropped), calibration maps are fitted on an in-distribution split and never
evaluated on it, and the energy score is reported beside content-free controls
(``−max(r)``, response length) and label-free embedding detectors, so a
"detector" that only reads the reward's magnitude is visible as such.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit, logsumexp

from .._stats import Estimate, check_bootstrap_args, estimate, stratified_weights
from .calibration import (
    CalibrationResult,
    PlattScaling,
    TemperatureScaling,
    _contributions,
    _summaries,
    preference_calibration,
    reward_margins,
)
from .detectors import make_detector
from .metrics import DetectionResult, detection_metrics
from .ood import reference_split

__all__ = [
    "PairScores",
    "RewardShiftReport",
    "ShiftResult",
    "load_reward_scores",
    "reward_ood_scores",
    "reward_shift",
    "score_pairs",
]


@dataclass(frozen=True)
class PairScores:
    """Rewards of preference pairs, row-aligned, with optional lengths and embeddings.

    Attributes
    ----------
    chosen, rejected : ndarray of shape (n,)
    name : str
    response_length : ndarray, optional
        Characters of the chosen + rejected responses per pair (a content-free control).
    embeddings : dict
        ``{"prompt": (n, d), "prompt_response": (n, d)}`` reward-model embeddings,
        where captured.
    groups : ndarray, optional
        A subset / source label per pair (e.g. RewardBench's ``subset``).
    """

    chosen: np.ndarray
    rejected: np.ndarray
    name: str = ""
    response_length: np.ndarray | None = None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = reward_margins(self.chosen, self.rejected)
        object.__setattr__(self, "chosen", np.asarray(self.chosen, dtype=np.float64))
        object.__setattr__(self, "rejected", np.asarray(self.rejected, dtype=np.float64))
        n = len(m)
        for key, arr in [("response_length", self.response_length), ("groups", self.groups)]:
            if arr is not None and len(arr) != n:
                raise ValueError(f"{key} has {len(arr)} rows but there are {n} pairs")
        for key, arr in self.embeddings.items():
            if np.asarray(arr).ndim != 2 or len(arr) != n:
                raise ValueError(
                    f"embeddings[{key!r}] must have shape ({n}, d), got {np.shape(arr)}"
                )

    @property
    def margins(self) -> np.ndarray:
        return self.chosen - self.rejected

    def __len__(self) -> int:
        return len(self.chosen)

    def subset(self, rows: np.ndarray) -> PairScores:
        """The pairs at ``rows`` (lengths, embeddings and groups follow)."""
        return PairScores(
            self.chosen[rows],
            self.rejected[rows],
            self.name,
            None if self.response_length is None else self.response_length[rows],
            {k: np.asarray(v)[rows] for k, v in self.embeddings.items()},
            None if self.groups is None else self.groups[rows],
        )

    def __repr__(self) -> str:
        extra = f", embeddings={sorted(self.embeddings)}" if self.embeddings else ""
        return f"PairScores({self.name!r}, n={len(self)}{extra})"


_CHOSEN_KEYS = ("chosen", "scores_chosen", "score_chosen", "chosen_score", "reward_chosen")
_REJECTED_KEYS = ("rejected", "scores_rejected", "score_rejected", "rejected_score",
                  "reward_rejected")  # fmt: skip


def _scalar(v: Any, where: str) -> float:
    if isinstance(v, list):
        if len(v) != 1:
            raise ValueError(f"{where}: expected one score, got a list of {len(v)}")
        v = v[0]
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {v!r} is not a number") from None


def _pick(keys: Sequence[str], options: Sequence[str], path: Path) -> str:
    for k in options:
        if k in keys:
            return k
    raise ValueError(
        f"{path}: no reward column; expected one of {list(options)}, found {list(keys)}"
    )


def load_reward_scores(path: str | os.PathLike[str], *, name: str | None = None) -> PairScores:
    """Read reward scores of preference pairs from a CSV, JSON or JSONL file.

    Accepted layouts: the paper's CSVs (columns ``chosen,rejected``); RewardBench
    score dumps — JSONL records or a JSON list of records with ``scores_chosen`` /
    ``scores_rejected`` (scalars or one-element lists) and optionally ``subset``, or
    a JSON object of columns with those keys.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = p.write_text("chosen,rejected\\n1.5,0.2\\n-0.3,0.4\\n")
    >>> load_reward_scores(p).margins.round(2).tolist()
    [1.3, -0.7]
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"reward score file not found: {p}")
    records = _read_records(p)
    if not records:
        raise ValueError(f"{p} holds no pairs")
    kc, kr = _pick(list(records[0]), _CHOSEN_KEYS, p), _pick(list(records[0]), _REJECTED_KEYS, p)

    def column(key: str) -> np.ndarray:
        out = []
        for i, r in enumerate(records):
            if key not in r:
                raise ValueError(f"{p} row {i}: no {key!r} field (row 0 has one)")
            out.append(_scalar(r[key], f"{p} row {i}"))
        return np.array(out)

    groups = (
        np.array([str(r.get("subset", "")) for r in records]) if "subset" in records[0] else None
    )
    return PairScores(column(kc), column(kr), name or p.stem, groups=groups)


def _read_records(p: Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSONL, JSON list of records or JSON object of columns, as dicts."""
    suffix = p.suffix.lower()
    if suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if suffix == ".jsonl":
        lines = p.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    if suffix != ".json":
        raise ValueError(f"{p}: unsupported extension {suffix!r}; use .csv, .json or .jsonl")
    data = json.loads(p.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON list of records or an object of columns")
    lengths = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{p}: columns have different lengths {lengths}")
    n = next(iter(lengths.values()), 0)
    return [{k: data[k][i] for k in lengths} for i in range(n)]


def _reward_of(logits: torch.Tensor, reward_index: int | None) -> torch.Tensor:
    if logits.shape[-1] == 1:
        return logits[:, 0]
    if reward_index is None:
        raise ValueError(
            f"the model returns {logits.shape[-1]} logits per input; pass reward_index= "
            "to say which one is the reward"
        )
    return logits[:, reward_index]


def score_pairs(
    reward_model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    *,
    name: str = "",
    batch_size: int = 16,
    max_length: int | None = None,
    embedding_layer: str | int | None = -1,
    pooling: str = "mean",
    reward_index: int | None = None,
    progress: bool = False,
) -> PairScores:
    """Reward every ``(prompt, chosen)`` and ``(prompt, rejected)`` pair, batched.

    Parameters
    ----------
    reward_model : transformers sequence-classification model or callable
        A model whose logits hold the reward (one logit, or ``reward_index``), or any
        ``callable(prompts, responses) -> rewards``.
    tokenizer
        The model's tokenizer (ignored for a callable). Prompt and response are
        encoded as a text pair, or through the chat template when it has one.
    embedding_layer : layer spec or None
        Layer whose pooled output is captured through :class:`aqi.ActivationHooks`
        in the same forward passes (``"prompt_response"``: the prompt with the
        chosen response), plus one extra pass over the prompts alone
        (``"prompt"``). Default: the last block (``-1``); ``"final_norm"`` or any
        spec of :func:`aqi.resolve_layers`; ``None`` skips embeddings.

    Returns
    -------
    PairScores
        With ``response_length`` (characters of both responses) and ``embeddings``.
    """
    n = len(prompts)
    if not (len(chosen) == len(rejected) == n):
        raise ValueError(
            f"prompts, chosen and rejected must be row-aligned; got {n}, {len(chosen)}, "
            f"{len(rejected)}"
        )
    if n == 0:
        raise ValueError("no pairs to score")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    lengths = np.array([len(c) + len(r) for c, r in zip(chosen, rejected, strict=True)])
    if not isinstance(reward_model, torch.nn.Module):
        if not callable(reward_model):
            raise TypeError(
                "reward_model must be a torch module or a callable(prompts, responses), "
                f"got {type(reward_model).__name__}"
            )
        rc = np.asarray(reward_model(list(prompts), list(chosen)), dtype=np.float64)
        rr = np.asarray(reward_model(list(prompts), list(rejected)), dtype=np.float64)
        return PairScores(rc, rr, name, lengths)
    from ..activations.hooks import ActivationHooks
    from ..activations.layers import resolve_layers

    model = reward_model.eval()
    device = next(model.parameters()).device
    layer = None if embedding_layer is None else resolve_layers(model, embedding_layer)[0].name
    chat = getattr(tokenizer, "chat_template", None) is not None

    def encode(ps: Sequence[str], rs: Sequence[str] | None) -> dict[str, torch.Tensor]:
        kw = {"padding": True, "truncation": max_length is not None, "return_tensors": "pt"}
        if max_length is not None:
            kw["max_length"] = max_length
        if chat:
            texts = [
                tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}]
                    + ([{"role": "assistant", "content": r}] if rs is not None else []),
                    tokenize=False,
                )
                for p, r in zip(ps, rs if rs is not None else ps, strict=True)
            ]
            enc = tokenizer(texts, add_special_tokens=False, **kw)
        elif rs is None:
            enc = tokenizer(list(ps), **kw)
        else:
            enc = tokenizer(list(ps), list(rs), **kw)
        return {k: v.to(device) for k, v in enc.items()}

    def run(
        ps: Sequence[str], rs: Sequence[str] | None, capture: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        rewards, embs = [], []
        it: Any = range(0, n, batch_size)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=name or "reward", unit="batch")
        with contextlib.ExitStack() as stack, torch.inference_mode():
            hooks = (
                stack.enter_context(ActivationHooks(model, [layer], pooling))
                if capture and layer
                else None
            )
            for a in it:
                enc = encode(ps[a : a + batch_size], None if rs is None else rs[a : a + batch_size])
                if hooks is not None:
                    hooks.set_span(enc["attention_mask"].bool())
                logits = model(**enc).logits
                if hooks is not None:
                    embs.append(hooks.pop()[layer][pooling].float().cpu().numpy())
                rewards.append(_reward_of(logits.float(), reward_index).cpu().numpy())
        return np.concatenate(rewards), (np.concatenate(embs) if embs else None)

    rc, e_pr = run(prompts, chosen, capture=True)
    rr, _ = run(prompts, rejected, capture=False)
    embeddings: dict[str, np.ndarray] = {}
    if layer:
        embeddings["prompt_response"] = e_pr  # type: ignore[assignment]
        _, e_p = run(prompts, None, capture=True)
        embeddings["prompt"] = e_p  # type: ignore[assignment]
    return PairScores(rc, rr, name, lengths, embeddings)


def reward_ood_scores(pairs: PairScores) -> dict[str, np.ndarray]:
    """Label-free OOD scores of each pair from its rewards (higher = more OOD).

    * ``energy``: ``−logsumexp([r_chosen, r_rejected])`` (the paper's score);
    * ``max_softmax``: ``−σ(|r_chosen − r_rejected|)``, the top-label confidence;
    * ``neg_max_reward``: ``−max(r_chosen, r_rejected)`` — a content-free control:
      when energy does no better than this, it only reads the reward's magnitude;
    * ``response_length``: characters of both responses (where known), a second
      content-free control.

    Examples
    --------
    >>> s = reward_ood_scores(PairScores(np.array([0.0]), np.array([0.0])))
    >>> round(float(s["energy"][0]), 4), float(s["max_softmax"][0])
    (-0.6931, -0.5)
    """
    both = np.stack([pairs.chosen, pairs.rejected], axis=1)
    out = {
        "energy": -logsumexp(both, axis=1),
        "max_softmax": -expit(np.abs(pairs.margins)),
        "neg_max_reward": -both.max(axis=1),
    }
    if pairs.response_length is not None:
        out["response_length"] = np.asarray(pairs.response_length, dtype=np.float64)
    return out


@dataclass(frozen=True)
class ShiftResult:
    """One shifted condition against the in-distribution set."""

    name: str
    calibration: CalibrationResult
    calibrated: CalibrationResult | None
    accuracy_drop: Estimate
    ece_change: Estimate
    detection: dict[str, DetectionResult]
    paired: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paired": self.paired,
            "calibration": self.calibration.to_dict(),
            "calibrated": None if self.calibrated is None else self.calibrated.to_dict(),
            "accuracy_drop": self.accuracy_drop.to_dict(),
            "ece_change": self.ece_change.to_dict(),
            "detection": {k: v.to_dict() for k, v in self.detection.items()},
        }

    def __repr__(self) -> str:
        det = ", ".join(f"{k} AUROC {float(v.auroc):.3f}" for k, v in self.detection.items())
        return (
            f"ShiftResult({self.name!r}: accuracy {self.calibration.accuracy} "
            f"(drop {self.accuracy_drop}), ECE {self.calibration.ece} "
            f"(change {self.ece_change}); {det})"
        )


@dataclass(frozen=True)
class RewardShiftReport:
    """A reward model in distribution and under each shift."""

    reference: CalibrationResult
    reference_calibrated: CalibrationResult | None
    calibrator: str
    shifts: tuple[ShiftResult, ...]

    def __getitem__(self, name: str) -> ShiftResult:
        for s in self.shifts:
            if s.name == name:
                return s
        raise KeyError(f"no shift named {name!r}; have {[s.name for s in self.shifts]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference.to_dict(),
            "reference_calibrated": None
            if self.reference_calibrated is None
            else self.reference_calibrated.to_dict(),
            "calibrator": self.calibrator,
            "shifts": [s.to_dict() for s in self.shifts],
        }

    def __repr__(self) -> str:
        lines = [f"RewardShiftReport(in-distribution: {self.reference!r}"]
        lines += [f"  {s!r}" for s in self.shifts]
        return "\n".join(lines) + ")"


def _paired_changes(
    ref: PairScores, shifted: PairScores, paired: bool, n_bins: int, n_boot: int,
    confidence: float, rng: np.random.Generator,
) -> tuple[Estimate, Estimate]:  # fmt: skip
    """Accuracy drop (ref − shifted) and ECE change (shifted − ref) with bootstrap CIs."""
    Ma = _contributions(ref.margins, None, n_bins, "uniform")[0].astype(np.float32)
    Mb = _contributions(shifted.margins, None, n_bins, "uniform")[0].astype(np.float32)
    na, nb = len(ref), len(shifted)
    pa = _summaries(Ma.sum(0, keepdims=True).astype(np.float64), n_bins, na)
    pb = _summaries(Mb.sum(0, keepdims=True).astype(np.float64), n_bins, nb)
    drops, changes = [], []
    if paired:
        for W in stratified_weights([na], n_boot, rng, np.float32):
            sa = _summaries((W @ Ma).astype(np.float64), n_bins, na)
            sb = _summaries((W @ Mb).astype(np.float64), n_bins, nb)
            drops.append(sa[0] - sb[0])
            changes.append(sb[1] - sa[1])
    else:
        for W in stratified_weights([na, nb], n_boot, rng, np.float32):
            sa = _summaries((W[:, :na] @ Ma).astype(np.float64), n_bins, na)
            sb = _summaries((W[:, na:] @ Mb).astype(np.float64), n_bins, nb)
            drops.append(sa[0] - sb[0])
            changes.append(sb[1] - sa[1])
    cat = lambda v: np.concatenate(v) if v else None  # noqa: E731
    return (
        estimate(pa[0][0] - pb[0][0], cat(drops), confidence),
        estimate(pb[1][0] - pa[1][0], cat(changes), confidence),
    )


def reward_shift(
    reference: PairScores,
    shifted: Mapping[str, PairScores] | Sequence[PairScores],
    *,
    paired: bool | None = None,
    calibrator: str | None = "temperature",
    fit_fraction: float = 0.5,
    n_bins: int = 10,
    detectors: Sequence[str] = ("mahalanobis", "knn"),
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> RewardShiftReport:
    """How a reward model's accuracy, calibration and detectability change under shift.

    Parameters
    ----------
    reference : PairScores
        In-distribution pairs.
    shifted : mapping or sequence of PairScores
        Shifted conditions (e.g. prompt translated, response translated, both).
    paired : bool, optional
        Whether shifted rows are the reference rows transformed (row-aligned);
        default: when the lengths match. Paired conditions get a paired bootstrap
        of the accuracy drop and ECE change, and share the calibration split.
    calibrator : {"temperature", "platt", None}
        A map fitted on ``fit_fraction`` of the reference pairs and evaluated on
        the rest and on the shifted pairs (the same held-out rows when paired).
    detectors : sequence of str
        Embedding detectors (fitted on the reference fit split) run on every
        embedding kind the pairs carry (``prompt``, ``prompt_response``).
    n_boot : int
        Bootstrap resamples for every CI (0 = none).

    Returns
    -------
    RewardShiftReport
        Uncalibrated metrics and the reward-based OOD scores use all rows;
        calibrated metrics and embedding detectors use the held-out rows.
    """
    check_bootstrap_args(n_boot, confidence)
    if not isinstance(reference, PairScores):
        raise TypeError(f"reference must be PairScores, got {type(reference).__name__}")
    items = list(shifted.items()) if isinstance(shifted, Mapping) else [
        (s.name or f"shift {i}", s) for i, s in enumerate(shifted)
    ]  # fmt: skip
    if not items:
        raise ValueError("shifted is empty; pass at least one shifted condition")
    for k, s in items:
        if not isinstance(s, PairScores):
            raise TypeError(f"shifted[{k!r}] must be PairScores, got {type(s).__name__}")
    if calibrator not in ("temperature", "platt", None):
        raise ValueError(f"calibrator must be 'temperature', 'platt' or None, got {calibrator!r}")
    kw = {"n_bins": n_bins, "n_boot": n_boot, "confidence": confidence, "seed": seed}
    rng = np.random.default_rng(seed)
    if not 0 < fit_fraction < 1:
        raise ValueError(
            f"fit_fraction must be in (0, 1) (share of reference pairs the calibrator is fitted "
            f"on), got {fit_fraction!r}"
        )
    fit, held = reference_split(np.zeros(len(reference)), None, 1 - fit_fraction, seed)
    cal = None
    if calibrator is not None:
        cal = (TemperatureScaling() if calibrator == "temperature" else PlattScaling()).fit(
            reference.chosen[fit], reference.rejected[fit]
        )
    ref_res = preference_calibration(reference.chosen, reference.rejected, label=reference.name
                                     or "in-distribution", **kw)  # fmt: skip
    ref_held = reference.subset(held)
    ref_cal = None if cal is None else preference_calibration(
        ref_held.chosen, ref_held.rejected, calibrator=cal, label="in-distribution (held out)", **kw
    )  # fmt: skip
    ref_scores = reward_ood_scores(reference)
    results = []
    for name, s in items:
        is_paired = (len(s) == len(reference)) if paired is None else bool(paired)
        if is_paired and len(s) != len(reference):
            raise ValueError(
                f"paired=True but {name!r} has {len(s)} pairs and the reference {len(reference)}"
            )
        res = preference_calibration(s.chosen, s.rejected, label=name, **kw)
        s_held = s.subset(held) if is_paired else s
        calibrated = None if cal is None else preference_calibration(
            s_held.chosen, s_held.rejected, calibrator=cal, label=f"{name} (calibrated)", **kw
        )  # fmt: skip
        drop, change = _paired_changes(reference, s, is_paired, n_bins, n_boot, confidence, rng)
        det: dict[str, DetectionResult] = {}
        s_scores = reward_ood_scores(s)
        for key in ref_scores:
            if key in s_scores:
                det[key] = detection_metrics(
                    ref_scores[key], s_scores[key], n_boot=n_boot, confidence=confidence,
                    seed=seed, label=f"{name}: {key}",
                )  # fmt: skip
        for kind in sorted(set(reference.embeddings) & set(s.embeddings)):
            Xr = np.asarray(reference.embeddings[kind])
            Xs = np.asarray(s_held.embeddings[kind])
            for dname in detectors:
                d = make_detector(dname).fit(Xr[fit])
                det[f"{dname}:{kind}"] = detection_metrics(
                    d.score(Xr[held]), d.score(Xs), n_boot=n_boot, confidence=confidence,
                    seed=seed, label=f"{name}: {dname} on {kind} embeddings",
                )  # fmt: skip
        results.append(ShiftResult(name, res, calibrated, drop, change, det, is_paired))
    return RewardShiftReport(ref_res, ref_cal, repr(cal) if cal else "none", tuple(results))
