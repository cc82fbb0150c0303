"""The commands that read stores and score files: ``info``, ``score``, ``compare``,
``probe ood`` / ``probe reward``, ``report`` and ``gate`` (no model is loaded).

:func:`run_store_command` runs one of them and returns its exit code, or ``None`` for a
command that is not one of these (the model commands stay in :mod:`aqi.cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from . import tables
from ._cli_parser import EXIT_GATE_FAILED, EXIT_OK

__all__ = ["dump_json", "print_summary", "run_store_command", "store_summary"]


def run_store_command(args: argparse.Namespace) -> int | None:
    """Run ``args.command`` if it reads stores only; ``None`` if it is another command."""
    key = f"probe {args.probe}" if args.command == "probe" else args.command
    run = _COMMANDS.get(key)
    return None if run is None else run(args)


def _emit(args: argparse.Namespace, result: Any, table: Callable[[Any], str]) -> int:
    """``result`` as JSON (``--json``) or as its plain-text ``table``."""
    if args.json:
        dump_json(result.to_dict())
    else:
        print(table(result))
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    from .activations import open_store

    with open_store(args.store) as store:
        print_summary(store_summary(store), args.json)
    return EXIT_OK


def _score(args: argparse.Namespace) -> int:
    from .activations import open_store
    from .indices import score

    with open_store(args.store, span=args.span) as store:
        _partial({"audited": store}, args.partial)
        prof = score(
            store, pooling=args.pooling, layers=args.layers, n_boot=args.n_boot,
            n_perm=args.n_perm, seed=args.seed,
        )  # fmt: skip
    dump_json(prof.to_dict()) if args.json else _print_profile(prof)
    return EXIT_OK


def _compare(args: argparse.Namespace) -> int:
    from .activations import open_store
    from .indices import compare

    with (
        open_store(args.baseline, span=args.span) as a,
        open_store(args.audited, span=args.span) as b,
    ):
        _partial({"baseline": a, "audited": b}, args.partial)
        cmp = compare(a, b, pooling=args.pooling, n_boot=args.n_boot, seed=args.seed,
                      allow_text_mismatch=args.allow_text_mismatch)
    return _emit(args, cmp, tables.comparison_table)


def _probe_ood(args: argparse.Namespace) -> int:
    from .activations import open_store
    from .probes import ood_probe

    with (
        open_store(args.reference, span=args.span) as ref,
        open_store(args.test, span=args.span) as test,
    ):
        rep = ood_probe(
            ref, test, layers=args.layers, pooling=args.pooling, detector=args.detector,
            false_alarm_rate=args.false_alarm_rate, n_boot=args.n_boot,
        )  # fmt: skip
    _warn_thin_ood(rep)
    return _emit(args, rep, tables.ood_table)


def _probe_reward(args: argparse.Namespace) -> int:
    from .probes import load_reward_scores, preference_calibration, reward_shift

    if args.calibrator not in (None, "none") and not args.shifted:
        raise ValueError(
            f"--calibrator {args.calibrator} is fitted on half the reference pairs and "
            "applied to shifted score files, and none were given; add them after the "
            "reference, or leave --calibrator out"
        )
    ref = load_reward_scores(args.reference)
    if args.shifted:
        shifted = {s.name: s for s in map(load_reward_scores, args.shifted)}
        cal = {None: "temperature", "none": None}.get(args.calibrator, args.calibrator)
        res: Any = reward_shift(ref, shifted, calibrator=cal, n_boot=args.n_boot)
    else:
        res = preference_calibration(ref.chosen, ref.rejected, n_boot=args.n_boot,
                                     label=ref.name)  # fmt: skip
    return _emit(args, res, tables.reward_table)


def _report_or_gate(args: argparse.Namespace) -> int:
    if args.command == "report":
        _check_out_paths(args)  # before the imports of the audit's machinery (seconds)
    from .checks import gate_failed
    from .report import to_json, write_html, write_json

    report = _run_audit(args)
    if args.command == "report":
        write_html(report, args.out, overwrite=args.overwrite)
        _note(args, f"wrote {args.out}")
        if args.json_out:
            write_json(report, args.json_out, overwrite=args.overwrite)
    if args.json:
        print(to_json(report))
    else:
        _print_checks(report)
    if args.command == "gate" and gate_failed(report.verdict, strict=args.strict):
        return EXIT_GATE_FAILED
    return EXIT_OK


def _label(args: argparse.Namespace) -> int:
    """``aqi label``: a blind sample of both models' responses for a person to label."""
    from ._outputs import check_output
    from .behaviour import judge_identity, load_responses
    from .behaviour.labelling import draw_label_sample, label_in_terminal, write_label_sheet

    if (args.sheet is None) == (args.terminal is None):
        raise ValueError("aqi label needs one of --sheet SHEET.html (label in a browser) or "
                         "--terminal LABELS.json (label here)")  # fmt: skip
    inputs = [args.responses, args.baseline_responses]
    if args.sheet is not None:  # before the responses are read: one guard for every output
        check_output(args.sheet, flag="--sheet", inputs=inputs)
    else:  # a labels file is resumed; read_labels refuses one that is not ours
        check_output(args.terminal, flag="--terminal", inputs=inputs, ours=lambda p: True)
    ident = judge_identity(cli_judge(args))
    sample = draw_label_sample(load_responses(args.baseline_responses),
                               load_responses(args.responses), args.n, judge=ident["name"],
                               judge_version=str(ident["version"]), seed=args.seed)  # fmt: skip
    after = (f"then pass it to aqi audit / aqi gate with --labels and --judge "
             f"{ident['name']}: refusal_change decides on the prediction-powered interval")
    doc = {"n_prompts": sample.n_prompts, "n_responses": len(sample.items),
           "strata": {k: list(v) for k, v in sample.strata.items()},
           "audit_id": sample.audit_id, "judge": ident}  # fmt: skip
    if args.terminal is not None:
        labels = label_in_terminal(sample, args.terminal)
        doc.update(path=str(args.terminal), labelled=len(labels.labels))
        text = f"{args.terminal}: {labels!r}; {after}"
    else:
        write_label_sheet(sample, args.sheet)
        doc.update(path=str(args.sheet))
        text = (f"{args.sheet}: {len(sample.items)} responses to {sample.n_prompts} prompts "
                f"(blind, both models); open it in a browser, label, save the labels file; "
                f"{after}")  # fmt: skip
    if args.json:
        dump_json(doc)
    else:
        print(text)
    return EXIT_OK


_COMMANDS = {"info": _info, "score": _score, "compare": _compare, "probe ood": _probe_ood,
             "probe reward": _probe_reward, "report": _report_or_gate, "gate": _report_or_gate,
             "label": _label}


def store_summary(store: Any) -> dict[str, Any]:
    return {
        "path": str(store.path),
        "complete": store.complete,
        "rows": store.n_rows,
        "rows_total": store.n_total,
        "unsafe": int(store.y.sum()),
        "layers": list(store.layers),
        "poolings": list(store.poolings),
        "spans": list(store.spans),
        "model": store.provenance.get("model", {}),
        "truncated": int(store.truncated.sum()),
    }


def print_summary(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2))
        return
    state = "complete" if info["complete"] else "in progress"
    print(
        f"{info['path']}: {state}, {info['rows']}/{info['rows_total']} rows "
        f"({info['unsafe']} unsafe), {len(info['layers'])} layers, poolings "
        f"{', '.join(info['poolings'])}, spans {', '.join(info['spans'])}, "
        f"{info['truncated']} truncated"
    )


def _note(args: argparse.Namespace, text: str) -> None:
    """A status line on stderr (silent under ``--quiet``)."""
    if not args.quiet:
        print(f"aqi: {text}", file=sys.stderr)


def _print_profile(prof: Any) -> None:
    print(tables.profile_table(prof))
    b = prof.best()
    print(f"best layer: {b.layer}, AQI {b.value:.2f} {tables.ci_text(b.ci_low, b.ci_high)}")


def dump_json(obj: Any) -> None:
    from .report import jsonable

    print(json.dumps(jsonable(obj), indent=2, allow_nan=False))


def cli_judge(args: argparse.Namespace) -> Any:
    """The judge of ``--judge``, else ``[tool.aqi] judge`` (``--config`` or the project's),
    else the default; resolved once, before any model loads."""
    from .behaviour import resolve_judge
    from .checks import configured_judge

    name = getattr(args, "judge", None)
    if name is None:
        name = configured_judge(getattr(args, "config", None))
    return resolve_judge(name)


def _run_audit(args: argparse.Namespace) -> Any:
    import contextlib

    from .activations import open_store
    from .audit import audit
    from .audit_values import Evidence, Judging, Scoring
    from .checks import load_thresholds
    from .probes import load_reward_scores, preference_calibration, reward_shift

    try:
        thresholds = load_thresholds(args.config)
    except (ValueError, FileNotFoundError) as e:
        if not args.config:
            raise  # found by the search upward: the message names the file
        raise type(e)(f"--config {e}") from None
    if args.reward_shift and not args.reward:
        raise ValueError("--reward-shift needs --reward (the in-distribution scores)")
    reward = None
    if args.reward:
        ref = load_reward_scores(args.reward)
        if args.reward_shift:
            shifted = {s.name: s for s in map(load_reward_scores, args.reward_shift)}
            reward = reward_shift(ref, shifted, n_boot=args.reward_n_boot, seed=args.seed)
        else:
            reward = preference_calibration(
                ref.chosen, ref.rejected, n_boot=args.reward_n_boot, seed=args.seed,
                label=ref.name,
            )  # fmt: skip
    from .behaviour import load_responses

    if args.baseline_responses and not args.responses:
        raise ValueError("--baseline-responses needs --responses (the audited model's)")
    judge = cli_judge(args)
    responses = {k: load_responses(v) for k, v in (("responses", args.responses),
                 ("baseline_responses", args.baseline_responses)) if v}
    _note(args, "running the audit…")
    with contextlib.ExitStack() as stack:
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        stack.callback(_print_warnings, args, caught)
        store = stack.enter_context(open_store(args.store, span=args.span))
        paths = {"baseline": args.baseline, "ood_test": args.ood_test, "jailbreak": args.jailbreak}
        others = {
            k: stack.enter_context(open_store(v, span=args.span or store.span))
            for k, v in paths.items() if v
        }  # fmt: skip
        return audit(
            store, baseline=others.pop("baseline", None),
            evidence=Evidence(reward=reward, **others, **responses),
            scoring=Scoring(pooling=args.pooling, layers=args.layers, n_boot=args.n_boot,
                            n_perm=args.n_perm, seed=args.seed, thresholds=thresholds),
            judging=Judging(judge=judge, labels=args.labels),
            allow_partial=args.partial, allow_other_model=args.allow_other_model,
        )  # fmt: skip


def _print_warnings(args: argparse.Namespace, caught: list[Any]) -> None:
    """The audit's warnings, one line each (not Python's two-line form with a source line)."""
    for w in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        print(f"aqi {args.command}: warning: {w}", file=sys.stderr)


def _warn_thin_ood(rep: Any) -> None:
    """The gate's insufficient-data rule (:func:`aqi.checks.ood_coverage_check`) on stderr."""
    from .checks import AuditThresholds, ood_coverage_check

    check = ood_coverage_check(rep, rep.best().layer, AuditThresholds())
    if check.summary.startswith("insufficient data"):
        print(f"aqi probe ood: warning: {check.summary}", file=sys.stderr)


def _partial(stores: dict[str, Any], allow: bool) -> None:
    from .audit import check_partial

    for note in check_partial(stores, allow):
        print(f"aqi: {note}", file=sys.stderr)


def _print_checks(report: Any) -> None:
    from .viz.style import display_name

    print(f"{display_name(report.model)}: {report.reason}")
    for note in report.notes:
        print(f"  {note}")
    for c in report.checks:
        print(f"  [{c.verdict.upper():>4}] {c.name}: {c.summary}")


def _report_inputs(args: argparse.Namespace) -> list[Any]:
    """Every file ``aqi report`` reads: none of them may be an output."""
    return [args.store, args.baseline, args.ood_test, args.jailbreak, args.reward,
            *args.reward_shift, args.responses, args.baseline_responses, args.config]


def _check_out_paths(args: argparse.Namespace) -> None:
    """Refuse an output path that cannot be written before any work starts
    (:func:`aqi._outputs.check_output`: not an input, a regular file of aqi's or new, in a
    writable folder)."""
    from ._outputs import OutputError, check_output

    outs = [(f, v) for f, v in (("--out", args.out), ("--json-out", args.json_out)) if v]
    for flag, value in outs:
        check_output(value, flag=flag, inputs=_report_inputs(args), overwrite=args.overwrite,
                     create_folder=False)  # fmt: skip
    if len(outs) == 2 and os.path.abspath(outs[0][1]) == os.path.abspath(outs[1][1]):
        raise OutputError(f"--out and --json-out are both {args.out!r}; give two paths")
