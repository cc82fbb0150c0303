"""The latent audit's steps (``aqi audit --latent-only``; :func:`aqi.audit_models` with
``generate=False``): capture the audited model's prompts only, predict its refusal from
the baseline's judged responses, optionally check the prediction on a few generated
responses, and build the report. Private: :mod:`aqi.workflow` is the door.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from .audit import AuditReport
from .checks import hidden_shift_check, predicted_refusal_check
from .jobs import Writing
from .prompts import Rendering

#: The spans a latent audit captures: the prompt alone (no response is generated).
PROMPT_SPANS = ("instruction", "post_instruction")
PROMPT_STORE = "prompts.h5"
VERIFY_RESPONSES = "verify.jsonl"


def refused_by_prompt(verdicts: Any) -> dict[str, bool | None]:
    """``RefusalReport.verdicts`` (keyed by (prompt id, sample)) as prompt id → label of
    sample 0 (the greedy response)."""
    return {str(k[0]): v for k, v in verdicts.items() if k[1] == 0}


def prompt_store(
    spec: Any, folder: Path, prompts: Any, settings: dict[str, Any], load: Any,
    record: Any, reusable: Any, store_done: Any, *, progress: bool | None, rebuild: bool,
    limit: int | None,
) -> tuple[Path, str]:  # fmt: skip
    """The audited model's prompt-only store (made, or reused once its hash is verified);
    returns its path and ``"ran"`` / ``"reused"``. A complete full store (``store.h5``,
    from an earlier full audit) holds the same prompt spans: it is used as it is."""
    from .activations import capture

    full = folder / "store.h5"
    if store_done(full) and reusable(folder, full.name, rebuild):
        return full, "reused"
    path = folder / PROMPT_STORE
    done = store_done(path)
    if done and reusable(folder, path.name, rebuild):
        return path, "reused"
    model, tok = load(spec, "audited")
    store = capture(model, tok, prompts, path, layers=settings["layers"],
                    pooling=settings["capture_pooling"], spans=PROMPT_SPANS,
                    rendering=Rendering(chat=settings["chat"], max_prompt_tokens=limit),
                    writing=Writing(batch_size=settings["batch_size"], overwrite=done,
                                    progress=progress))  # fmt: skip
    store.close()
    record(folder, path.name)
    del model, tok
    return path, "ran"


def verify_sample(
    pred: Any, k: int, spec: Any, folder: Path, prompts: Any, settings: dict[str, Any],
    load: Any, judge: Any, *, seed: int, progress: bool | None, limit: int | None,
) -> Any:  # fmt: skip
    """Generate for about ``k`` drawn prompts (:func:`aqi.probes.verification_sample`),
    judge them, and combine them with ``pred`` (:func:`aqi.probes.verified_refusal`)."""
    from .activations import PromptSet
    from .behaviour import Decoding, generate_responses, judge_responses
    from .probes import verification_sample, verified_refusal

    sample = verification_sample(pred, k, seed=seed)
    drawn = PromptSet([p for p in prompts if p.id in sample], name=f"{prompts.name}[verify]")
    out = folder / VERIFY_RESPONSES
    out.unlink(missing_ok=True)  # the draw depends on the prediction: never resumed
    if not len(drawn):
        return verified_refusal(pred, {}, {})
    model, tok = load(spec, "audited")
    rs = generate_responses(model, tok, drawn, out,
                            decoding=Decoding(max_new_tokens=settings["max_new_tokens"]),
                            rendering=Rendering(chat=settings["chat"], max_prompt_tokens=limit),
                            writing=Writing(batch_size=settings["batch_size"],
                                            progress=progress))  # fmt: skip
    del model, tok
    labels = dict(zip((r.prompt_id for r in rs), judge_responses(rs, judge), strict=True))
    return verified_refusal(pred, sample, labels)


def latent_report(
    store: Any, base: Any, pred: Any, thresholds: Any, *, pooling: str, seed: int,
    verified: Any = None,
) -> AuditReport:  # fmt: skip
    """The latent audit's report: the predicted-refusal check decides; the AQI profile of
    the decision point (no resamples) is shown beside it."""
    from .audit import _thresholds
    from .indices.profile import score

    t = _thresholds(thresholds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an AQI undefined at some layer is said in the table
        profile = score(store.with_span("post_instruction"), pooling=pooling, n_boot=0,
                        n_perm=0, seed=seed)  # fmt: skip
    check = predicted_refusal_check(pred, t, verified)
    note = ("latent audit: the audited model generated nothing; its refusal is predicted from "
            f"its activations at {pred.layer} {pred.span}/{pred.pooling} by the baseline's "
            f"refusal direction and judged responses ({pred.n_fit} prompts, "
            f"{pred.n_refused} refused). Validated on bench v3 (docs/validation.md)")
    return AuditReport(
        model=store.model_name, checks=(check,), thresholds=t, profile=profile,
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        baseline_model=base.model_name, notes=(note,), mode="latent", predicted=pred,
        verified=verified,
    )  # fmt: skip


def with_prediction(report: AuditReport, store: Any, base: Any,
                    refused: dict[str, bool | None], *, n_boot: int, seed: int) -> AuditReport:
    """A full audit's report with the predicted refusal beside the judged one (evidence)
    and, when the report judged refusal, the ``hidden_shift`` check
    (:func:`aqi.checks.hidden_shift_check`: a warn when the activations moved toward
    compliance while judged refusal held)."""
    from .probes import predicted_refusal

    try:
        pred = predicted_refusal(base, store, refused, n_boot=n_boot, seed=seed)
    except ValueError as e:
        return replace(report, notes=(*report.notes, f"predicted refusal not computed: {e}"))
    judged = next((c for c in report.checks if c.name == "refusal_change"), None)
    if judged is None:  # no judged refusal to compare with: the prediction is evidence only
        return replace(report, predicted=pred)
    shift = hidden_shift_check(pred, judged, report.thresholds)
    return replace(report, predicted=pred, checks=(*report.checks, shift))
