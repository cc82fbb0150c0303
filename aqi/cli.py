"""Command-line interface: ``aqi audit | capture | generate | info | score | compare | probe |
report | gate | demo``.

Exit codes: 0 success (a gate passed); 1 a gate failed; 2 usage or input error
(bad arguments, missing files, incompatible stores), reported on one line of
stderr (``--debug`` adds the traceback); 130 interrupted (Ctrl-C). Progress goes to stderr,
results to stdout (JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._cli_parser import build_parser

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_GATE_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


#: What to lower when a command runs out of memory: batches for the model commands,
#: resamples (which the statistics hold ``n_boot × classes × dim`` of) for the others.
_OOM_HINT = {
    "capture": "lower --batch-size or --max-tokens-per-batch",
    "generate": "lower --batch-size",
    "score": "lower --n-boot or --n-perm",
    "report": "lower --n-boot, --n-perm or --reward-n-boot",
    "gate": "lower --n-boot, --n-perm or --reward-n-boot",
    "audit": "lower --batch-size, --n-boot or --n-perm",
    "compare": "lower --n-boot",
    "probe": "lower --n-boot",
}


def _load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.model == "demo":
        from .demo import load_demo_model

        return load_demo_model()
    from .loading import load_model

    device = args.device
    local = os.environ.get("LOCAL_RANK")
    if local is not None and device in (None, "cuda") and args.device_map is None:
        import torch

        if torch.cuda.is_available():  # one GPU per process under torchrun
            device = f"cuda:{local}"
    return load_model(
        args.model, revision=args.revision, gguf_file=args.gguf_file, dtype=args.dtype,
        device=device, device_map=args.device_map, load_in_8bit=args.load_in_8bit,
        load_in_4bit=args.load_in_4bit, trust_remote_code=args.trust_remote_code,
        attn_implementation=args.attn_implementation,
    )


def _summary(store: Any) -> dict[str, Any]:
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


def _print_summary(info: dict[str, Any], as_json: bool) -> None:
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
    from ._tables import _ci, profile_table

    print(profile_table(prof))
    b = prof.best()
    print(f"best layer: {b.layer}, AQI {b.value:.2f} {_ci(b.ci_low, b.ci_high)}")


def _dump(obj: Any) -> None:
    from .report import jsonable

    print(json.dumps(jsonable(obj), indent=2, allow_nan=False))


def _run_audit(args: argparse.Namespace) -> Any:
    import contextlib

    from .activations import open_store
    from .audit import audit
    from .checks import load_thresholds
    from .probes import load_reward_scores, preference_calibration, reward_shift

    thresholds = load_thresholds(args.config)
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
    responses = {k: load_responses(v) for k, v in (("responses", args.responses),
                 ("baseline_responses", args.baseline_responses)) if v}
    _note(args, "running the audit…")
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(open_store(args.store, span=args.span))
        paths = {"baseline": args.baseline, "ood_test": args.ood_test, "jailbreak": args.jailbreak}
        others = {
            k: stack.enter_context(open_store(v, span=args.span or store.span))
            for k, v in paths.items() if v
        }  # fmt: skip
        return audit(
            store, thresholds=thresholds, reward=reward, pooling=args.pooling,
            layers=args.layers, n_boot=args.n_boot, n_perm=args.n_perm, seed=args.seed,
            allow_partial=args.partial, **others, **responses,
        )  # fmt: skip


def _partial(stores: dict[str, Any], allow: bool) -> None:
    from .audit import check_partial

    for note in check_partial(stores, allow):
        print(f"aqi: {note}", file=sys.stderr)


def _print_checks(report: Any) -> None:
    from .viz._style import display_name

    print(f"{display_name(report.model)}: {report.reason}")
    for note in report.notes:
        print(f"  {note}")
    for c in report.checks:
        print(f"  [{c.verdict.upper():>4}] {c.name}: {c.summary}")


def _without_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _launch(argv: Sequence[str], nproc: int) -> int:
    """Run this capture as ``nproc`` processes under torchrun (no home-made launcher)."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "aqi", *_without_nproc(argv)]
    return subprocess.call(cmd)


def _start_process_group() -> bool:
    """Join torchrun's process group (gloo: capture only exchanges barriers)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    dist.init_process_group("gloo")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aqi`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    if args.command == "capture" and args.nproc > 1 and "RANK" not in os.environ:
        return _launch(sys.argv[1:] if argv is None else argv, args.nproc)
    started = args.command == "capture" and _start_process_group()
    try:
        from ._progress import progress_bars

        with progress_bars(False if args.quiet else None):
            return _run(args)
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()


def _prompts(args: argparse.Namespace) -> Any:
    """The prompts ``--prompts`` names: a file, public set names, or the bundled set."""
    from .activations import bundled_prompts, load_prompts
    from .activations.public_sets import (
        is_set_selection,
        load_prompt_set,
        require_both_classes,
        resolve_names,
    )

    columns = {f"{c}_col": getattr(args, f"{c}_col")
               for c in ("text", "label", "id", "category")
               if getattr(args, f"{c}_col") is not None}  # fmt: skip
    if not args.prompts:
        if columns:
            flags = ", ".join("--" + k.replace("_", "-") for k in columns)
            raise ValueError(f"{flags} name columns of --prompts, which was not given")
        if args.prompts_dir:
            raise ValueError("--prompts-dir reads the sets --prompts names, which was not given")
        return bundled_prompts()
    if Path(args.prompts).exists() or not is_set_selection(args.prompts):
        if args.prompts_dir:
            raise ValueError(f"--prompts-dir is for prompt set names; --prompts "
                             f"{args.prompts!r} is a file")  # fmt: skip
        return load_prompts(args.prompts, format=args.format, **columns)
    try:
        names = resolve_names(args.prompts, argument="--prompts")
    except ValueError as e:  # a bare word that is neither a set nor a file
        raise ValueError(f"{e}; nor is there a prompt file {args.prompts!r}") from None
    if columns or args.format:
        flags = ", ".join(["--" + k.replace("_", "-") for k in columns]
                          + (["--format"] if args.format else []))  # fmt: skip
        raise ValueError(f"{flags} describe a prompt file; the prompt sets {'+'.join(names)} "
                         "fix their own columns (docs/prompt_sets.md)")  # fmt: skip
    prompts = load_prompt_set(names, data_dir=args.prompts_dir)
    if args.command == "capture":  # a store to score needs both classes; generating does not
        require_both_classes(prompts, argument="--prompts")
    return prompts


def _audit_command(args: argparse.Namespace) -> int:
    """``aqi audit``: :func:`aqi.audit_models` over the flags, then the summary and exit code."""
    from ._cli_parser import baseline_namespace
    from .checks import gate_failed, load_thresholds
    from .report import to_json
    from .workflow import ModelSpec, audit_models, load_options

    def spec(ns: argparse.Namespace) -> ModelSpec:
        return ModelSpec(ns.model, {k: getattr(ns, k) for k in load_options() if hasattr(ns, k)})

    run = audit_models(
        spec(args), spec(baseline_namespace(args)), prompts=_prompts(args), workdir=args.workdir,
        out=args.out, layers=args.layers, pooling=args.pooling,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        chat=False if args.no_chat else None, thresholds=load_thresholds(args.config),
        n_boot=args.n_boot, n_perm=args.n_perm, seed=args.seed,
        response_text=not args.no_response_text,
    )  # fmt: skip
    print(to_json(run.report) if args.json else run.summary())
    return EXIT_GATE_FAILED if gate_failed(run.verdict, strict=args.strict) else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "audit":
            return _audit_command(args)
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.out_dir, overwrite=args.overwrite, quiet=args.quiet,
                            as_json=args.json)
        from .activations import capture, open_store

        if args.command == "info":
            with open_store(args.store) as store:
                _print_summary(_summary(store), args.json)
            return EXIT_OK
        if args.command == "score":
            from .indices import score

            with open_store(args.store, span=args.span) as store:
                _partial({"audited": store}, args.partial)
                prof = score(
                    store, pooling=args.pooling, layers=args.layers, n_boot=args.n_boot,
                    n_perm=args.n_perm, seed=args.seed,
                )  # fmt: skip
            _dump(prof.to_dict()) if args.json else _print_profile(prof)
            return EXIT_OK
        if args.command == "compare":
            from .indices import compare

            with (
                open_store(args.baseline, span=args.span) as a,
                open_store(args.audited, span=args.span) as b,
            ):
                _partial({"baseline": a, "audited": b}, args.partial)
                cmp = compare(a, b, pooling=args.pooling, n_boot=args.n_boot, seed=args.seed,
                              allow_text_mismatch=args.allow_text_mismatch)
            if args.json:
                _dump(cmp.to_dict())
            else:
                from ._tables import comparison_table

                print(comparison_table(cmp))
            return EXIT_OK
        if args.command == "probe" and args.probe == "ood":
            from .probes import ood_probe

            with (
                open_store(args.reference, span=args.span) as ref,
                open_store(args.test, span=args.span) as test,
            ):
                rep = ood_probe(
                    ref, test, layers=args.layers, pooling=args.pooling, detector=args.detector,
                    false_alarm_rate=args.false_alarm_rate, n_boot=args.n_boot,
                )  # fmt: skip
            if args.json:
                _dump(rep.to_dict())
            else:
                from ._tables import ood_table

                print(ood_table(rep))
            return EXIT_OK
        if args.command == "probe" and args.probe == "reward":
            from .probes import load_reward_scores, preference_calibration, reward_shift

            ref = load_reward_scores(args.reference)
            if args.shifted:
                shifted = {s.name: s for s in map(load_reward_scores, args.shifted)}
                cal = None if args.calibrator == "none" else args.calibrator
                res: Any = reward_shift(ref, shifted, calibrator=cal, n_boot=args.n_boot)
            else:
                res = preference_calibration(ref.chosen, ref.rejected, n_boot=args.n_boot,
                                             label=ref.name)  # fmt: skip
            if args.json:
                _dump(res.to_dict())
            else:
                from ._tables import reward_table

                print(reward_table(res))
            return EXIT_OK
        if args.command in ("report", "gate"):
            report = _run_audit(args)
            from .checks import gate_failed
            from .report import to_json, write_html, write_json

            if args.command == "report":
                write_html(report, args.out)
                _note(args, f"wrote {args.out}")
                if args.json_out:
                    write_json(report, args.json_out)
            if args.json:
                print(to_json(report))
            else:
                _print_checks(report)
            if args.command == "gate":
                failed = gate_failed(report.verdict, strict=args.strict)
                return EXIT_GATE_FAILED if failed else EXIT_OK
            return EXIT_OK
        prompts = _prompts(args)
        include_response = getattr(args, "include_response", False)
        if getattr(args, "responses", None) and args.command == "capture":
            from .behaviour import load_responses, with_responses

            prompts = with_responses(prompts, load_responses(args.responses),
                                     on_empty="drop" if args.drop_empty else "error")
            include_response = True
        if args.command == "capture":
            from .activations.spans import RESPONSE_SPANS, check_spans

            args.span = list(check_spans(args.span, name="--span"))
            reading = [s for s in args.span if s in RESPONSE_SPANS]
            if reading and not include_response:
                raise ValueError(f"--span {reading[0]} needs the model's responses: pass "
                                 "--responses r.jsonl (from aqi generate) or "
                                 "--include-response with a 'response' column in --prompts")
        model, tok = _load_model(args)
        if args.command == "generate":
            from .behaviour import generate_responses, refusal_rate

            rs = generate_responses(
                model, tok, prompts, args.out, max_new_tokens=args.max_new_tokens,
                batch_size=args.batch_size, do_sample=args.sample, temperature=args.temperature,
                n=args.n, seed=args.seed, overwrite=args.overwrite,
            )  # fmt: skip
            rates = refusal_rate(rs)
            if args.json:
                _dump({"path": args.out, "responses": len(rs), "prompts": len(rs.prompt_ids),
                       "samples_per_prompt": rs.n_samples, **rates.to_dict()})  # fmt: skip
            else:
                from ._tables import refusal_table

                print(f"{args.out}: {len(rs)} responses to {len(rs.prompt_ids)} prompts "
                      f"({rs.n_samples} per prompt)\n{refusal_table(rates)}")  # fmt: skip
            return EXIT_OK
        store = capture(
            model,
            tok,
            prompts,
            args.out,
            layers=args.layers,
            pooling=[p.strip() for p in args.pooling.split(",")],
            spans=args.span,
            onset_tokens=args.onset_tokens,
            batch_size=args.batch_size,
            max_length=args.max_length,
            max_tokens_per_batch=args.max_tokens_per_batch,
            include_response=include_response,
            chat=False if args.no_chat else None,
            overwrite=args.overwrite,
        )
        with store:
            _print_summary(_summary(store), args.json)
        return EXIT_OK
    except KeyboardInterrupt as e:
        if args.debug:
            traceback.print_exc()
        done, total = getattr(e, "rows_done", None), getattr(e, "rows_total", None)
        where = f" after {done} of {total} rows" if done is not None else ""
        resumable = args.command in ("capture", "generate", "audit")
        again = "; run the same command again to resume" if resumable else ""
        print(f"aqi {args.command}: interrupted{where}{again}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError, KeyError, FloatingPointError, MemoryError,
            RuntimeError) as e:  # fmt: skip
        oom = isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
        if isinstance(e, RuntimeError) and not oom and type(e).__name__ != "StoreLockedError":
            raise  # a bug, not an input error: keep the traceback
        if args.debug:
            traceback.print_exc()
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else " ".join(str(e).split())
        if oom:
            text = f"out of memory ({text}); {_OOM_HINT.get(args.command, _OOM_HINT['score'])}"
        print(f"aqi {args.command}: error: {text or type(e).__name__}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
