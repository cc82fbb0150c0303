"""Command-line interface: ``aqi audit | capture | generate | info | score | compare | probe |
report | gate | track | demo``.

Exit codes: 0 success (a gate passed); 1 a gate failed; 2 usage or input error
(bad arguments, missing files, incompatible stores), reported on one line of
stderr (``--debug`` adds the traceback); 130 interrupted (Ctrl-C); 141 stdout closed by its
reader (``aqi info s.h5 | head -1``, quietly). Progress goes to stderr, results to stdout
(JSON with ``--json``). Errors name the flags: a Python argument in a message (an
:class:`aqi._errors.ArgumentError`) is spelled by :func:`cli_spelling`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._cli_errors import _interrupted, _user_error, cli_spelling
from ._cli_parser import (
    EXIT_BROKEN_PIPE,
    EXIT_GATE_FAILED,
    EXIT_OK,
    build_parser,
)
from ._errors import NAME_ONLY, ArgumentError, NamedArguments

__all__ = ["build_parser", "main"]


#: The loading flags and their defaults (what ``--model demo`` refuses when changed).
_LOADING_DEFAULTS = {"revision": None, "gguf_file": None, "dtype": "auto", "device": None,
                     "device_map": None, "load_in_8bit": False, "load_in_4bit": False,
                     "trust_remote_code": False, "attn_implementation": None}


def _load_model(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.model == "demo":
        from .demo import load_demo_model

        changed = [k for k, v in _LOADING_DEFAULTS.items() if getattr(args, k) != v]
        if changed:
            raise ValueError(
                f"{cli_spelling(changed[0], NAME_ONLY)} does not apply to --model demo (the "
                "bundled SmolLM2-135M-Instruct, float32 on the CPU); pass a model folder or hub "
                "id to --model to use it"
            )

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


#: Spans that end before the assistant's turn: a response appended after it is never read.
_SPANS_BEFORE_RESPONSE = ("user", "instruction", "post_instruction")


def _check_capture_flags(args: argparse.Namespace) -> None:
    """Refuse capture flags that would do nothing with the others given."""
    if args.drop_empty and not args.responses:
        raise ValueError("--drop-empty leaves out empty responses of --responses, which was not "
                         "given")
    given = "--responses" if args.responses else "--include-response" if args.include_response \
        else None
    if given and all(s in _SPANS_BEFORE_RESPONSE for s in args.span):
        spans = ",".join(args.span)
        raise ValueError(
            f"{given} appends each response after the user's turn, but --span {spans} reads "
            "only tokens before it (a causal model's activations there do not see the response); "
            f"add response or response_onset to --span (or use all), or leave {given} out"
        )


def _check_at_the_door(args: argparse.Namespace) -> None:
    """Refuse what needs no model before one loads (issue 31): unknown poolings, an empty
    ``--prompts``, a model argument that cannot be a model, output paths aqi may not write."""
    from ._outputs import check_output
    from ._vocab import check_poolings

    if args.command in ("capture", "audit"):
        check_poolings(args.pooling)
    if args.prompts is not None and not args.prompts.strip():
        raise ArgumentError("{prompts} is empty; give a prompt file or prompt set names, or "
                            "leave --prompts out for the bundled set", prompts=repr(args.prompts))
    models = [("model", args.model, args.gguf_file, args.dtype)]
    if args.command == "audit":
        from ._cli_parser import baseline_namespace

        base = baseline_namespace(args)
        models.append(("baseline_model", base.model, base.gguf_file, base.dtype))
    for flag, source, gguf, dtype in models:
        if source != "demo":
            _check_model(flag, source, gguf, dtype)
    if args.command == "audit":
        if args.out is not None:
            for path in (Path(args.out), Path(args.out).with_suffix(".json")):
                check_output(path, flag="--out", inputs=[args.prompts, args.config],
                             overwrite=args.overwrite)  # fmt: skip
        return
    # capture / generate: the store's and the responses file's own checks decide what is
    # ours (they resume it); everything else about the path is checked here.
    inputs = [args.prompts, getattr(args, "responses", None)]
    check_output(args.out, flag="--out", inputs=inputs, ours=lambda p: True)
    if args.command == "capture":
        from .activations import check_store_target

        check_store_target(args.out)
    else:
        from .behaviour.response_writer import check_responses_target

        check_responses_target(args.out)


def _check_model(flag: str, source: str, gguf: str | None, dtype: str) -> None:
    """:func:`aqi.loading.check_model_source` and the dtype's name, the message naming the
    flag."""
    from .loading import DTYPES, check_model_source, dtype_name

    if dtype_name(dtype) not in DTYPES:
        which = "--dtype " if flag == "model" else "--baseline-model-arg dtype="
        raise ValueError(f"{which}{dtype} is not supported; expected one of "
                         f"{', '.join(DTYPES)}")  # fmt: skip
    try:
        check_model_source(source, gguf_file=gguf, argument=flag)
    except NamedArguments:
        raise
    except (OSError, ValueError) as e:
        raise type(e)(f"{cli_spelling(flag, NAME_ONLY)}: {e}") from None


def _prompt_limit(args: argparse.Namespace) -> int | None:
    """``--max-prompt-tokens``: the library's default when not given, ``None`` for 0."""
    from .prompts.encoding import MAX_PROMPT_TOKENS

    n = args.max_prompt_tokens
    return MAX_PROMPT_TOKENS if n is None else (n or None)


def _check_own_responses(args: argparse.Namespace, own: Any, model: Any) -> None:
    """``aqi capture --responses``: refuse another model's responses unless allowed."""
    from .behaviour.evidence import check_written_by
    from .jobs.provenance import weights_fingerprint

    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    note = check_written_by(
        own, {"weights_fingerprint": weights_fingerprint(model), "dtype": dtype},
        against=f"--model {args.model}", allow_other_model=args.allow_other_model,
    )  # fmt: skip
    if note:
        print(f"aqi capture: warning: {note}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aqi`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    if args.command == "capture" and args.nproc > 1 and "RANK" not in os.environ:
        from ._cli_launch import launch

        try:  # before the ranks start: what needs no model is refused once, here
            _check_at_the_door(args)
        except (ValueError, TypeError, OSError) as e:
            return _user_error(args, e)

        return launch(args, sys.argv[1:] if argv is None else argv,
                      count=lambda: len(_capture_prompts(args)[0]), user_error=_user_error)
    from ._cli_launch import start_process_group

    started = args.command == "capture" and start_process_group()
    try:
        from ._progress import progress_bars

        with progress_bars(False if args.quiet else None), _one_line_warnings(args.command):
            code = _run(args)
        sys.stdout.flush()  # a reader that left shows here, not in Python's exit flush
        return code
    except BrokenPipeError:
        # The reader of stdout closed it (``aqi info s.h5 | head -1``): end quietly, and keep
        # Python's final flush from printing a second error.
        import contextlib

        with contextlib.suppress(OSError, ValueError):  # stdout may not be a file descriptor
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    finally:
        if started:
            import torch.distributed as dist

            dist.destroy_process_group()


@contextlib.contextmanager
def _one_line_warnings(command: str) -> Iterator[None]:
    """Python warnings as ``aqi COMMAND: warning: …``, one line each (no source line), and
    each text once per run however many times and places it is raised."""
    seen: set[str] = set()

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:  # fmt: skip
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            print(f"aqi {command}: warning: {text}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _prompts(args: argparse.Namespace) -> Any:
    """The prompts ``--prompts`` names (a file, public set names, or the bundled set),
    resolved once here, at the door (:func:`aqi.prompts.resolve_prompts`)."""
    from .prompts.resolve import resolve_prompts

    columns = {f"{c}_col": getattr(args, f"{c}_col")
               for c in ("text", "label", "id", "category")
               if getattr(args, f"{c}_col") is not None}  # fmt: skip
    flags = {"data_dir": "--prompts-dir"}
    prompts = resolve_prompts(
        args.prompts, data_dir=args.prompts_dir, format=args.format, columns=columns,
        argument="--prompts", spell=lambda n: flags.get(n, "--" + n.replace("_", "-")),
    )  # fmt: skip
    if args.command == "capture" and (prompts.source or {}).get("registry") == "aqi":
        # public sets captured into a store to score need both classes (a file may hold one
        # class on purpose: wrapped prompts for jailbreak drift); generating needs neither
        from .prompts.public_sets import require_both_classes

        require_both_classes(prompts, argument="--prompts")
    return prompts


def _capture_prompts(args: argparse.Namespace) -> tuple[Any, bool, Any]:
    """The prompts of ``capture`` / ``generate`` (``--responses`` attached), whether the
    responses are part of the input, and those responses (``None`` without); refuses
    flags that cannot act and spans that cannot be read."""
    prompts = _prompts(args)
    include_response = getattr(args, "include_response", False)
    if args.command != "capture":
        return prompts, include_response, None
    from .prompts.spans import RESPONSE_SPANS, check_spans

    args.span = list(check_spans(args.span, name="--span"))
    _check_capture_flags(args)
    own = None  # the responses captured as the model's own
    if args.responses:
        from .behaviour import load_responses, with_responses

        own = load_responses(args.responses)
        prompts = with_responses(prompts, own, on_empty="drop" if args.drop_empty else "error")
        include_response = True
    reading = [s for s in args.span if s in RESPONSE_SPANS]
    if reading and not include_response:
        raise ValueError(f"--span {reading[0]} needs the model's responses: pass --responses "
                         "r.jsonl (from aqi generate) or --include-response with a "
                         "'response' column in --prompts")  # fmt: skip
    return prompts, include_response, own


def _audit_command(args: argparse.Namespace) -> int:
    """``aqi audit``: :func:`aqi.audit_models` over the flags, then the summary and exit code."""
    from ._cli_parser import baseline_namespace
    from ._cli_stores import cli_judge
    from .checks import gate_failed, load_thresholds
    from .report import to_json
    from .workflow import ModelSpec, audit_models, load_options

    judge = cli_judge(args)  # a bad --judge is refused before any model loads

    def spec(ns: argparse.Namespace) -> ModelSpec:
        return ModelSpec(ns.model, {k: getattr(ns, k) for k in load_options() if hasattr(ns, k)})

    from .audit_values import Judging, Scoring
    from .workflow import Running

    run = audit_models(
        spec(args), spec(baseline_namespace(args)), prompts=_prompts(args), workdir=args.workdir,
        out=args.out,
        scoring=Scoring(layers=args.layers, pooling=args.pooling, n_boot=args.n_boot,
                        n_perm=args.n_perm, seed=args.seed,
                        thresholds=load_thresholds(args.config)),
        judging=Judging(judge=judge, labels=args.labels, generate=not args.latent_only,
                        verify=args.verify, early_stop=args.early_stop),
        running=Running(batch_size=args.batch_size, chat=False if args.no_chat else None,
                        max_new_tokens=args.max_new_tokens,
                        max_prompt_tokens=_prompt_limit(args),
                        response_text=not args.no_response_text, overwrite=args.overwrite,
                        rebuild=args.rebuild),
    )  # fmt: skip
    print(to_json(run.report) if args.json else run.summary())
    return EXIT_GATE_FAILED if gate_failed(run.verdict, strict=args.strict) else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    """Run one parsed command; an interruption or a user's error becomes a message and an
    exit code."""
    try:
        return _dispatch(args)
    except KeyboardInterrupt as e:
        return _interrupted(args, e)
    except BrokenPipeError:
        raise  # the reader went away (``aqi … | head``): main ends quietly
    except (ValueError, TypeError, OSError, KeyError, FloatingPointError, MemoryError,
            RuntimeError, ImportError) as e:  # fmt: skip
        oom = isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
        if isinstance(e, RuntimeError) and not oom and type(e).__name__ != "StoreLockedError":
            raise  # a bug, not an input error: keep the traceback
        return _user_error(args, e)


def _dispatch(args: argparse.Namespace) -> int:
    """The command's own function: audit, demo, track, a store command, generate or capture."""
    if args.command in ("capture", "generate", "audit"):
        _check_at_the_door(args)
    if args.command == "audit":
        return _audit_command(args)
    if args.command == "demo":
        from .demo import run_demo, run_profile

        return (run_profile if args.profile else run_demo)(
            args.out_dir, overwrite=args.overwrite, quiet=args.quiet, as_json=args.json)
    if args.command == "track":
        from .integrations.track import run as run_track

        return run_track(args)
    from ._cli_stores import run_store_command

    code = run_store_command(args)
    if code is not None:
        return code
    prompts, include_response, own = _capture_prompts(args)
    if args.command == "generate":
        from ._cli_stores import cli_judge

        judge = cli_judge(args)  # a bad --judge is refused before the model loads
    model, tok = _load_model(args)
    if own is not None:
        _check_own_responses(args, own, model)
    if args.command == "generate":
        return _generate_command(args, model, tok, prompts, judge)
    return _capture_command(args, model, tok, prompts, include_response)


def _generate_command(args: argparse.Namespace, model: Any, tok: Any, prompts: Any,
                      judge: Any) -> int:
    """``aqi generate``: the responses, their refusal rates printed (or as JSON)."""
    from .behaviour import Decoding, generate_responses, refusal_rate
    from .jobs import Writing
    from .prompts import Rendering

    rs = generate_responses(
        model, tok, prompts, args.out,
        decoding=Decoding(max_new_tokens=args.max_new_tokens, do_sample=args.sample,
                          temperature=args.temperature, n=args.n, seed=args.seed),
        rendering=Rendering(max_prompt_tokens=_prompt_limit(args)),
        writing=Writing(batch_size=args.batch_size, overwrite=args.overwrite),
    )  # fmt: skip
    rates = refusal_rate(rs, judge)
    if args.json:
        from ._cli_stores import dump_json

        dump_json({"path": args.out, "responses": len(rs), "prompts": len(rs.prompt_ids),
                   "samples_per_prompt": rs.n_samples, **rates.to_dict()})  # fmt: skip
    else:
        from .tables import refusal_table

        print(f"{args.out}: {len(rs)} responses to {len(rs.prompt_ids)} prompts "
              f"({rs.n_samples} per prompt)\n{refusal_table(rates)}")  # fmt: skip
    return EXIT_OK


def _capture_command(args: argparse.Namespace, model: Any, tok: Any, prompts: Any,
                     include_response: bool) -> int:
    """``aqi capture``: the store, and its summary printed by rank 0."""
    from ._cli_stores import print_summary, store_summary
    from .activations import capture
    from .jobs import Writing
    from .prompts import Rendering

    rendering = Rendering(chat=False if args.no_chat else None, max_length=args.max_length,
                          max_prompt_tokens=_prompt_limit(args),
                          include_response=include_response,
                          onset_tokens=args.onset_tokens)  # fmt: skip
    # no --max-tokens-per-batch: Writing's default (8192), as the help says (it was None,
    # unbounded batches, before 0.3)
    bound = {} if args.max_tokens_per_batch is None else {
        "max_tokens_per_batch": args.max_tokens_per_batch}
    writing = Writing(batch_size=args.batch_size, overwrite=args.overwrite, **bound)
    store = capture(model, tok, prompts, args.out, layers=args.layers,
                    pooling=[p.strip() for p in args.pooling.split(",")], spans=args.span,
                    rendering=rendering, writing=writing)  # fmt: skip
    with store:
        if int(os.environ.get("RANK", "0")) == 0:  # under --nproc: one summary, rank 0's
            print_summary(store_summary(store), args.json)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
