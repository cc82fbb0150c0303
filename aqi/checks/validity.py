"""The validity check: whether the audit is of the kind the validation bench grounded in
behaviour (the model's own responses, against a baseline)."""

from __future__ import annotations

from ..verdicts import Check


def span_check(span: str, baseline: bool = True) -> Check:
    """Whether the audit is of the kind the validation bench grounded in behaviour.

    On the validation bench (docs/validation.md) the *change* in the AQI of the model's
    own responses (``span="response"``) against a baseline followed the change in refusal
    across model variants; the AQI of the *prompts* (``"instruction"``, ``"all"``) did not: a
    fine-tune that stopped refusing left it unchanged. Absolute AQI levels were not
    validated (a model that refuses 2 % of unsafe requests can have a response AQI above
    the floor: its answers to unsafe requests are about unsafe things). So: *pass* for
    response activations audited against a baseline; *warn* otherwise, saying why.

    Examples
    --------
    >>> span_check("response").verdict, span_check("instruction").verdict
    ('pass', 'warn')
    >>> span_check("post_instruction").summary[:50]
    "span='post_instruction': the decision point is not"
    >>> span_check("response", baseline=False).verdict
    'warn'
    """
    ev = {"span": span, "baseline": baseline, "validated": "span='response' with a baseline",
          "reference": "docs/validation.md"}
    if span == "response" and baseline:
        return Check(name="validity", verdict="pass", evidence=ev,
                     summary="the model's own responses against a baseline: the setting in "
                             "which AQI changes followed refusal changes (loosely) on the "
                             "validation bench")
    if span == "response":
        return Check(
            name="validity", verdict="warn", evidence=ev,
            summary="no baseline: the validation bench grounded AQI *changes* of the model's "
                    "own responses in refusal, not absolute AQI levels; audit against the "
                    "model before fine-tuning (--baseline, --baseline-responses)",
        )
    if span in ("post_instruction", "response_onset"):
        return Check(
            name="validity", verdict="warn", evidence=ev,
            summary=f"span={span!r}: the decision point is not validated as a gate: on "
                    "bench v2 (two originals, docs/validation.md) the refusal shift there "
                    "followed refusal (rho +0.94 and +0.85) but a gate on it missed 2 and 3 of "
                    "17 variants whose refusal dropped, so this audit cannot vouch for "
                    "behaviour; give it both models' responses so that a significant refusal "
                    "drop fails the gate (--responses, --baseline-responses)",
        )
    return Check(
        name="validity", verdict="warn", evidence=ev,
        summary=f"span={span!r}: on the validation bench the AQI of prompt activations did not "
                "follow refusal (fine-tunes that stopped refusing left it unchanged), so this "
                "audit cannot vouch for behaviour; audit the model's own responses (aqi "
                "generate --out r.jsonl, then aqi capture --responses r.jsonl --span response)",
    )
