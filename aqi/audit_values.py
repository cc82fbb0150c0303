"""The settings values of an audit: :class:`Scoring` (what is scored, with what
uncertainty, against which thresholds), :class:`Judging` (how the audited model's
behaviour is known) and :class:`Evidence` (what :func:`aqi.audit` reads beside the stores).

Each is a small frozen value, checked when it is made, shared by :func:`aqi.audit` and
:func:`aqi.audit_models` (``Evidence``: ``audit`` only), like :class:`aqi.Rendering`,
:class:`aqi.Writing` and :class:`aqi.Decoding` for capture and generation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import ArgumentError
from ._settings import check_bool
from ._stats import check_n_boot

__all__ = ["Evidence", "Judging", "Scoring"]


@dataclass(frozen=True, kw_only=True)
class Scoring:
    """What an audit scores, with what uncertainty, against which thresholds.

    Parameters
    ----------
    layers : layer spec, optional
        :func:`aqi.audit`: the layers scored (default every layer of the store);
        :func:`aqi.audit_models`: the layers captured and scored (default ``"blocks"``,
        :func:`aqi.capture`'s layer spec).
    pooling : str, optional
        The pooling scored (:func:`aqi.audit`: default the store's only one, refused
        when it holds several; :func:`aqi.audit_models`: default ``"mean"``).
    n_boot : int, default 1000
        Bootstrap resamples for every confidence interval of the activation checks (``0``:
        none; the checks that need an interval then say *not computed*).
    n_perm : int, default 200
        Permutations of the AQI's null (label-shuffle) test (``0``: none).
    seed : int, default 0
        Seed of every resample.
    thresholds : AuditThresholds or mapping, optional
        The rule book's thresholds (:class:`aqi.AuditThresholds`, or a mapping of its
        fields; default the project's ``[tool.aqi]`` table, else the defaults).

    Raises
    ------
    ValueError
        A field that is not what it may be, named with its value and what is accepted
        (:class:`aqi._errors.ArgumentError` but for the resample counts).

    Examples
    --------
    >>> import aqi
    >>> aqi.Scoring(n_boot=200, n_perm=50).n_boot
    200
    >>> aqi.Scoring(n_perm=-1)
    Traceback (most recent call last):
    ...
    ValueError: n_perm=-1; expected an integer in [0, 1000000] (0 = none)
    """

    layers: Any = None
    pooling: str | None = None
    n_boot: int = 1000
    n_perm: int = 200
    seed: int = 0
    thresholds: Any = None

    def __post_init__(self) -> None:
        check_n_boot(self.n_boot)  # 0 is allowed: no intervals (the checks say "not computed")
        check_n_boot(self.n_perm, "n_perm")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ArgumentError("{seed}; expected an int >= 0", seed=self.seed)
        if self.pooling is not None and not isinstance(self.pooling, str):
            raise ArgumentError("{pooling}; expected one pooling name such as 'mean' or "
                                "'last', or None", pooling=self.pooling)  # fmt: skip
        from .verdicts import AuditThresholds

        if self.thresholds is not None and not isinstance(self.thresholds,
                                                          (AuditThresholds, Mapping)):
            raise ArgumentError("{thresholds}; expected an aqi.AuditThresholds, a mapping of "
                                "its fields, or None", thresholds=self.thresholds)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Judging:
    """How the audited model's behaviour is known: judged from its generated responses,
    or predicted from its activations.

    Parameters
    ----------
    judge : judge or judge name, optional
        The refusal judge (:func:`aqi.resolve_judge`: ``"default"``, ``"rules"``,
        ``"hf:…"``, ``"module:function"`` or a judge object; default ``[tool.aqi] judge``
        of the current project, else the phrase rules, :class:`aqi.RefusalJudge`). Both
        models' responses are judged by this one judge.
    labels : path, optional
        A person's labels of a sample of both models' responses, written with
        ``aqi label`` for this judge: ``refusal_change`` then decides on the
        prediction-powered interval, which carries the judge's error (docs/judge.md).
    generate : bool, default True
        :func:`aqi.audit_models` only. ``False``: a **latent** audit (``aqi audit
        --latent-only``): the audited model generates nothing, its refusal is *predicted*
        from the baseline's refusal direction (:func:`aqi.probes.predicted_refusal`).
    verify : int, default 0
        :func:`aqi.audit_models` only, with ``generate=False``: generate and judge about
        this many unsafe prompts of the audited model, drawn where the prediction is
        least certain (:func:`aqi.probes.verified_refusal`).
    early_stop : bool, default False
        :func:`aqi.audit_models` only: stop each response once the judge's verdict on it
        can no longer change (``stop_when_settled`` of :func:`aqi.generate_responses`).

    Raises
    ------
    aqi._errors.ArgumentError
        A field that is not what it may be, or fields that do not go together (``verify``
        without ``generate=False``; ``labels`` with it).

    Examples
    --------
    >>> import aqi
    >>> aqi.Judging(generate=False, verify=40).verify
    40
    >>> aqi.Judging(verify=40)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: verify=40 checks a latent prediction: it needs generate=False ...
    """

    judge: Any = None
    labels: str | Path | None = None
    generate: bool = True
    verify: int = 0
    early_stop: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.generate, bool):
            raise ArgumentError("{generate}; expected True (generate and judge) or False (a "
                                "latent audit)", generate=self.generate)  # fmt: skip
        v = self.verify
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ArgumentError("{verify}; expected a whole number of prompts >= 0", verify=v)
        if v and self.generate:
            raise ArgumentError("{verify} checks a latent prediction: it needs {generate} (the "
                                "full audit judges every response already)", verify=v,
                                generate=False)  # fmt: skip
        if self.labels is not None and not isinstance(self.labels, (str, Path)):
            raise ArgumentError("{labels}; expected the path of a labels file written by "
                                "`aqi label`, or None", labels=self.labels)  # fmt: skip
        if self.labels is not None and not self.generate:
            raise ArgumentError("{labels} label generated responses; a latent audit "
                                "({generate}) has none of the audited model",
                                labels=str(self.labels), generate=False)  # fmt: skip
        check_bool("early_stop", self.early_stop)


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """What :func:`aqi.audit` reads beside the audited (and baseline) store.

    Parameters
    ----------
    responses, baseline_responses : Responses, optional
        The audited (and baseline) model's generated responses
        (:func:`aqi.generate_responses`): the report gains a *Behaviour* section —
        refusal on unsafe and over-refusal on safe prompts, and with both, the paired
        change (``refusal_change``). They must answer the prompts of the store they
        stand beside (same ids and texts) and come from its model (same weights
        fingerprint).
    ood_test : ActivationStore, optional
        The audited model on new inputs: adds the ``ood`` coverage check.
    jailbreak : ActivationStore, optional
        The audited model on :func:`aqi.probes.wrap_prompts` output: adds
        ``jailbreak_drift`` at the best AQI layer.
    reward : RewardShiftReport or CalibrationResult, optional
        Reward-model calibration (in distribution, or under shift).

    The types are checked by :func:`aqi.audit` (with the stores), where each message
    names the argument.

    Examples
    --------
    >>> import aqi
    >>> aqi.Evidence().responses is None
    True
    """

    responses: Any = None
    baseline_responses: Any = None
    ood_test: Any = None
    jailbreak: Any = None
    reward: Any = None
