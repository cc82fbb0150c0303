"""``aqi demo --profile``: the single-model AQI profile of SmolLM2-135M-Instruct (no baseline).

What ``aqi demo`` was before it audited fine-tunes against a safety-tuned base
(:mod:`aqi.demo.run`): the per-layer AQI of the bundled prompts, jailbreak-wrapped
prompts, and an audit of the model's own responses. Both audits end in WARN and say why
(prompt activations; no baseline).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import load_demo_model

__all__ = ["run_profile"]


def run_profile(
    out_dir: str | os.PathLike[str] = "aqi-demo",
    *,
    overwrite: bool = False,
    quiet: bool = False,
    as_json: bool = False,
) -> int:
    """Audit SmolLM2-135M-Instruct on the bundled prompts and write the HTML/JSON report.

    1. capture every layer (mean and last pooling) of the bundled safe/unsafe pairs;
    2. capture 28 unsafe prompts (4 per category) wrapped in aqi's 6 jailbreak templates;
    3. :func:`aqi.audit`: AQI with null and lexical control, OOD flags for the wrapped
       prompts, jailbreak drift; ``report.html`` and ``report.json`` in ``out_dir``;
    4. the validated setting: generate the model's own responses (greedy, 32 tokens),
       capture them (``span="response"``) and audit them with the refusal rates beside
       (``report-responses.html`` / ``.json``).

    ``quiet`` drops the status lines and progress bars on stderr; ``as_json`` prints
    ``{"prompts": ..., "responses": ...}`` (both audits' JSON documents) instead of the
    readable summary. Returns 0 (the demo reports verdicts; it does not gate).
    """
    from .._progress import progress_bars

    out = Path(out_dir)
    if out.suffix == ".h5":
        raise ValueError(f"out_dir must be a folder, got a store path {str(out)!r}")
    with progress_bars(False) if quiet else contextlib.nullcontext():
        return _run_profile(out, overwrite, quiet, as_json)


def _unsafe_per_category(prompts: Any, most: int = 4) -> Any:
    """The first ``most`` unsafe prompts of each category (to wrap in jailbreak templates)."""
    from ..activations import PromptSet

    per_cat: dict[str, int] = {}
    picked = []
    for p in prompts:
        if p.is_unsafe and per_cat.get(p.category, 0) < most:
            per_cat[p.category] = per_cat.get(p.category, 0) + 1
            picked.append(p)
    return PromptSet(picked, name="bundled")


def _run_profile(out: Path, overwrite: bool, quiet: bool, as_json: bool) -> int:
    from ..activations import bundled_prompts, capture
    from ..audit import audit
    from ..audit_values import Evidence, Scoring
    from ..behaviour import JUDGE_NEW_TOKENS, Decoding, generate_responses, with_responses
    from ..jobs import Writing
    from ..probes import wrap_prompts
    from ..prompts import Rendering
    from ..report import jsonable, write_html, write_json
    from ..tables import profile_table, refusal_table

    def say(text: str = "") -> None:  # the readable summary (stdout)
        if not as_json:
            print(text)

    def status(text: str) -> None:  # progress notes (stderr)
        if not quiet:
            print(text, file=sys.stderr)

    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model, tok = load_demo_model()
    status(f"model: SmolLM2-135M-Instruct (loaded in {time.perf_counter() - t0:.1f} s)")
    prompts = bundled_prompts()
    t1 = time.perf_counter()
    writing = Writing(overwrite=overwrite)
    store = capture(model, tok, prompts, out / "smollm2.h5", layers="all",
                    pooling=("mean", "last"), writing=writing)  # fmt: skip
    wrapped = capture(
        model, tok, wrap_prompts(_unsafe_per_category(prompts)), out / "smollm2-jailbreak.h5",
        layers="all", pooling="mean", writing=writing,
    )  # fmt: skip
    status(f"captured {store.n_rows} prompts and {wrapped.n_rows} jailbreak-wrapped prompts x "
           f"{len(store.layers)} layers in {time.perf_counter() - t1:.1f} s")  # fmt: skip
    report = audit(store, evidence=Evidence(ood_test=wrapped, jailbreak=wrapped),
                   scoring=Scoring(n_boot=1000, n_perm=200))
    say(f"AQI per layer (aqi-v1, mean pooling over the instruction's tokens; {prompts!r})")
    say(profile_table(report.profile))
    say()
    say(f"audit verdict: {report.reason}")
    for c in report.checks:
        say(f"  [{c.verdict.upper():>4}] {c.name}: {c.summary}")
    write_html(report, out / "report.html")
    write_json(report, out / "report.json")
    say(f"report: {out / 'report.html'} (JSON: {out / 'report.json'})")
    store.close()
    wrapped.close()

    # The validated setting (docs/validation.md): the AQI of the model's own responses.
    t2 = time.perf_counter()
    rs = generate_responses(model, tok, prompts, out / "responses.jsonl",
                            decoding=Decoding(max_new_tokens=JUDGE_NEW_TOKENS),
                            writing=writing)  # fmt: skip
    own = capture(
        model, tok, with_responses(prompts, rs, on_empty="drop"), out / "smollm2-responses.h5",
        layers="blocks", pooling=("mean", "last"), writing=writing,
        rendering=Rendering(include_response=True),
        # One forward pass: the response (what the audit reads first, the validated setting)
        # and the two axes (instruction, decision point) of the same rows.
        spans=("response", "instruction", "post_instruction", "response_onset"),
    )  # fmt: skip
    status(f"\ngenerated and captured {own.n_rows} of the model's own responses in "
           f"{time.perf_counter() - t2:.1f} s")
    resp_report = audit(own, evidence=Evidence(responses=rs),
                        scoring=Scoring(n_boot=1000, n_perm=200))
    say(f"\naudit of its own responses (span='response'): {resp_report.reason}")
    for c in resp_report.checks:
        say(f"  [{c.verdict.upper():>4}] {c.name}: {c.summary}")
    if resp_report.behaviour is not None:
        say("  " + refusal_table(resp_report.behaviour).replace("\n", "\n  "))
    write_html(resp_report, out / "report-responses.html")
    write_json(resp_report, out / "report-responses.json")
    say(f"report: {out / 'report-responses.html'}")
    own.close()
    if as_json:
        import json

        docs = {"prompts": report.to_dict(), "responses": resp_report.to_dict()}
        print(json.dumps(jsonable(docs), indent=2, allow_nan=False))
    return 0
