"""What :func:`aqi.audit` checks of its inputs before it scores: the types, unfinished
captures, stores of another model, and responses that do not belong with their stores."""

from __future__ import annotations

import warnings
from typing import Any

from .activations.store import ActivationStore
from .behaviour import Responses
from .behaviour.evidence import check_same_prompts, check_written_by, describe, same_responses
from .probes.calibration import CalibrationResult
from .probes.reward import RewardShiftReport

__all__ = ["check_partial", "check_responses", "check_same_model"]


def _fingerprint(store: ActivationStore) -> str | None:
    return store.provenance.get("identity", {}).get("weights_fingerprint")


def check_same_model(store: ActivationStore, other: ActivationStore, role: str) -> None:
    """Refuse ``other`` when it was captured from another model than ``store``.

    Stores without a weights fingerprint (e.g. :func:`aqi.store_from_arrays`) cannot
    be checked and are accepted.
    """
    a, b = _fingerprint(store), _fingerprint(other)
    if a is not None and b is not None and a != b:
        raise ValueError(
            f"{role} store {str(other.path)!r} was captured from another model than "
            f"{str(store.path)!r} (weights fingerprint {b[:12]}… vs {a[:12]}…); its verdict "
            "would not speak about the audited model — capture it with the same model"
        )


def _store_prompts(store: ActivationStore) -> dict[str, str | None]:
    """``{id: text}`` of a store's rows; texts ``None`` where a bring-your-own store has none."""
    ids, texts = [str(i) for i in store.ids], [str(t) for t in store.texts]
    placeholder = store.provenance.get("source") == "store_from_arrays" and all(
        t == f"<row {k}>" for k, t in enumerate(texts)
    )
    return {i: None if placeholder else t for i, t in zip(ids, texts, strict=True)}


def check_responses(
    store: ActivationStore,
    responses: Responses | None,
    *,
    baseline: ActivationStore | None = None,
    baseline_responses: Responses | None = None,
    allow_other_model: bool = False,
) -> list[str]:
    """Refuse responses that do not belong with the stores they are audited beside.

    ``responses`` must answer the prompts of ``store`` (same ids and texts) and
    be written by its model (same weights fingerprint); ``baseline_responses``
    the same against ``baseline`` (or, without a baseline store, the prompts of
    ``store``), and the two must answer the same prompts. Another model's
    responses pass only with ``allow_other_model``; the returned notes then say so.
    The same responses on both sides warn (the comparison is of a model with itself).

    Returns
    -------
    list of str
        Notes for the report.

    Raises
    ------
    ValueError
        Naming both files and what differs (prompt ids, a text, the weights fingerprint).
    """
    notes: list[str] = []
    for rs, s, role in ((responses, store, "audited"), (baseline_responses, baseline, "baseline")):
        if rs is None:
            continue
        if s is None:  # baseline responses without a baseline store: paired with the audit
            check_same_prompts(rs, _store_prompts(store), against=f"audited store "
                               f"{str(store.path)!r}", allow_extra=not store.complete)  # fmt: skip
            continue
        against = f"{role} store {str(s.path)!r}"
        check_same_prompts(rs, _store_prompts(s), against=against, allow_extra=not s.complete)
        note = check_written_by(rs, s.provenance.get("identity", {}), against=against,
                                allow_other_model=allow_other_model)  # fmt: skip
        if note:
            notes.append(note)
    if responses is not None and baseline_responses is not None:
        if same_responses(responses, baseline_responses):
            msg = (f"{describe(responses)} and baseline {describe(baseline_responses)} are the "
                   "same responses: refusal_change compares a model with itself")  # fmt: skip
            warnings.warn(msg, stacklevel=3)
            notes.append(msg)
        texts = {r.prompt_id: r.prompt_text for r in responses}
        check_same_prompts(baseline_responses, texts, against=describe(responses))
    return notes


def check_partial(stores: dict[str, ActivationStore | None], allow_partial: bool) -> list[str]:
    """Refuse unfinished captures unless ``allow_partial``; return the notes to print."""
    notes = []
    for role, s in stores.items():
        if s is None or s.complete:
            continue
        if not allow_partial:
            raise ValueError(
                f"{role} store {str(s.path)!r} is an unfinished capture ({s.n_rows} of "
                f"{s.n_total} rows); run the same capture again to finish it, or pass "
                "allow_partial=True (CLI: --partial) to audit the rows written so far"
            )
        notes.append(f"partial: {role} store {str(s.path)!r} has {s.n_rows} of {s.n_total} rows")
    return notes


def _check_store_types(roles: dict[str, Any], reward: Any) -> None:
    """Refuse a store or reward report of the wrong type, naming the argument."""
    if reward is not None and not isinstance(reward, (RewardShiftReport, CalibrationResult)):
        raise TypeError(
            "reward must be a RewardShiftReport (aqi.probes.reward_shift) or a "
            f"CalibrationResult (aqi.probes.preference_calibration), got {type(reward).__name__}"
        )
    for role, other in roles.items():
        if other is not None and not isinstance(other, ActivationStore):
            raise TypeError(f"{role} must be an aqi ActivationStore, got {type(other).__name__}")


def _check_response_types(responses: Any, baseline_responses: Any) -> None:
    """Refuse responses of the wrong type, naming the argument."""
    for name, rs in (("responses", responses), ("baseline_responses", baseline_responses)):
        if rs is not None and not isinstance(rs, Responses):
            raise TypeError(f"{name} must be aqi Responses (aqi.load_responses), got "
                            f"{type(rs).__name__}")  # fmt: skip
