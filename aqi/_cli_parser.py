"""The argument parser of the ``aqi`` command (kept apart from the commands themselves)."""

from __future__ import annotations

import argparse
from typing import NoReturn

from ._cli_types import (
    _layers_arg,
    _n_boot,
    _n_perm,
    _nproc,
    _open_unit,
    _positive_int,
    _seed,
    _spans_arg,
    _whole,
)
from ._stats import MAX_RESAMPLES, MIN_RESAMPLES, min_resamples

#: The command line's exit codes (the epilog below documents them).
EXIT_OK, EXIT_GATE_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader left

_EPILOG = """\
examples:
  aqi demo                                   # two fine-tunes audited against their base
  aqi capture --model ./my-model --prompts prompts.jsonl --out acts.h5 \\
      --layers all --pooling mean,last --span instruction,post_instruction
  aqi capture --model demo --out acts.h5     # the bundled model and prompt set
  aqi generate --model demo --out responses.jsonl   # greedy responses, refusal rates
  aqi info acts.h5 --json
  aqi score acts.h5                          # AQI per layer with CI and null
  aqi compare base.h5 finetuned.h5           # paired AQI difference per layer
  aqi probe ood acts.h5 traffic.h5           # OOD detector per layer, flagged rows
  aqi probe reward english.csv french.csv    # reward-model calibration under shift
  aqi report finetuned.h5 --baseline base.h5 --out audit.html --json-out audit.json
  aqi gate finetuned.h5 --baseline base.h5   # exit 1 when a check fails
  aqi track out/checkpoint-* --baseline-model BASE   # alignment vs step, JSONL + PNG
  aqi audit --model ./finetuned --baseline-model ./base   # all of it in one command

exit codes: 0 success / gate passed, 1 gate failed, 2 usage or input error,
  130 interrupted (Ctrl-C; re-run the same capture to resume), 141 stdout closed by its
  reader (aqi ... | head). --debug shows tracebacks.
"""


def _model_args(p: argparse.ArgumentParser) -> None:
    """The loading flags, the same on every command that loads a model (aqi.load_model)."""
    g = p.add_argument_group("model loading (aqi.load_model)")
    g.add_argument("--model", required=True,
                   help="local folder, hub id (from the local cache), or 'demo' (SmolLM2-135M)")
    g.add_argument("--revision", default=None, help="branch, tag or commit of a hub id")
    g.add_argument("--gguf-file", default=None, help="GGUF file inside --model (dequantised once)")
    g.add_argument("--dtype", default="auto",
                   help="auto (checkpoint's on GPU, float32 on CPU), float32, bfloat16, float16")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: cuda if any)")
    g.add_argument("--device-map", default=None, help="'auto': spread layers over devices")
    g.add_argument("--load-in-8bit", action="store_true", help="bitsandbytes 8-bit (aqi[quant])")
    g.add_argument("--load-in-4bit", action="store_true", help="bitsandbytes 4-bit (aqi[quant])")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="run model code shipped with the checkpoint")
    g.add_argument("--attn-implementation", default=None, help="eager, sdpa, flash_attention_2")


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's error shape: one line on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


_MAX_PROMPT_TOKENS_HELP = ("per-prompt token limit (the user's text): a longer prompt is refused "
                           "before any forward pass, naming it (default 4096; 0: no limit)")



def _span_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--span", default=None,
        help="which span of the store to read: instruction, post_instruction, "
             "response_onset, response, all (default: the store's first)",
    )  # fmt: skip


def _prompt_args(p: argparse.ArgumentParser) -> None:
    """The prompt-file flags, the same on every command that reads prompts."""
    p.add_argument("--prompts", default=None,
                   help="JSONL/CSV/JSON prompt file, or public prompt set names joined by "
                        "',' or '+' (e.g. harmbench,xstest-safe; see docs/prompt_sets.md); "
                        "default: the bundled prompt set")
    p.add_argument("--prompts-dir", default=None,
                   help="with set names in --prompts: read them from this folder "
                        "(DIR/<dataset id>/…, as `hf download` writes) instead of the hub")
    p.add_argument("--format", default=None, choices=["jsonl", "csv", "litmus"])
    for col in ("text", "label", "id", "category"):
        p.add_argument(f"--{col}-col", default=None,
                       help=f"{col} column of --prompts (default {col!r})")


_JUDGE_HELP = ("refusal judge: default = rules (the phrase rules), encoder (meaning + rules, "
               "three outcomes; opt-in: docs/judge.md), hf:<hub id or folder>[@label|"
               "@wildguard|@llamaguard3|@harmbench], or module:function (default: [tool.aqi] "
               "judge, else the rules)")


def _judge_arg(p: argparse.ArgumentParser, labels: bool = False) -> None:
    p.add_argument("--judge", default=None, help=_JUDGE_HELP)
    if labels:
        p.add_argument("--labels", default=None,
                       help="a person's labels of a sample of both models' responses (aqi "
                            "label): refusal_change then decides on the prediction-powered "
                            "interval that carries the judge's error")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aqi",
        description="Audit the alignment of language models from the inside.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--quiet", action="store_true", help=_QUIET)
    sub = parser.add_subparsers(dest="command", required=True)

    cap = sub.add_parser(
        "capture",
        help="capture pooled activations into an HDF5 store",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _model_args(cap)
    _prompt_args(cap)
    cap.add_argument(
        "--include-response", action="store_true",
        help="append each prompt's response (a 'response' column) as the assistant turn",
    )  # fmt: skip
    cap.add_argument(
        "--responses", default=None,
        help="the model's own responses (aqi generate JSONL) appended as the assistant turn; "
             "with --span response the audit reads them (the validated setting)",
    )  # fmt: skip
    cap.add_argument("--drop-empty", action="store_true",
                     help="with --responses: leave out prompts whose response is empty")
    cap.add_argument("--allow-other-model", action="store_true", help=_OTHER_MODEL_HELP)
    cap.add_argument("--out", required=True, help="store path (.h5)")
    cap.add_argument(
        "--layers",
        default="blocks",
        type=_layers_arg,
        help="'blocks', 'all', or comma-separated indices / names / globs",
    )
    cap.add_argument(
        "--pooling", default="mean,last", help="comma-separated: mean, last, first, max"
    )
    cap.add_argument(
        "--span", default="instruction,post_instruction", type=_spans_arg,
        help="comma-separated, all pooled from one forward pass: instruction (the user's "
             "text; 'user' is the older name), post_instruction (the chat template's tokens "
             "after it: the decision point), response_onset, response (both need "
             "--responses), all (default: instruction,post_instruction)",
    )  # fmt: skip
    cap.add_argument("--onset-tokens", type=_positive_int, default=5,
                     help="tokens of the response_onset span (default 5)")  # fmt: skip
    cap.add_argument("--batch-size", type=_positive_int, default=16)
    cap.add_argument(
        "--max-length", type=_positive_int, default=None,
        help="truncate longer inputs to this many tokens (default: the model's context)",
    )  # fmt: skip
    cap.add_argument(
        "--max-tokens-per-batch", type=_positive_int, default=None,
        help="padded tokens per forward pass (default 8192; a longer input runs alone)",
    )  # fmt: skip
    cap.add_argument("--max-prompt-tokens", type=_whole(0), default=None,
                     help=_MAX_PROMPT_TOKENS_HELP)  # fmt: skip
    cap.add_argument("--no-chat", action="store_true", help="do not use the chat template")
    cap.add_argument(
        "--nproc", type=_nproc, default=1,
        help="processes on this machine (torchrun): each captures a shard, rank 0 merges",
    )  # fmt: skip
    cap.add_argument("--overwrite", action="store_true")
    cap.add_argument("--json", action="store_true", help="print the summary as JSON")

    gen = sub.add_parser("generate", help="generate responses (resumable JSONL, docs/format.md)")
    _model_args(gen)
    _prompt_args(gen)
    gen.add_argument("--out", required=True, help="responses file (.jsonl)")
    gen.add_argument("--max-new-tokens", type=_positive_int, default=64)
    gen.add_argument("--batch-size", type=_positive_int, default=16)
    gen.add_argument("--max-prompt-tokens", type=_whole(0), default=None,
                     help=_MAX_PROMPT_TOKENS_HELP)  # fmt: skip
    gen.add_argument("--sample", action="store_true", help="sample (default: greedy)")
    gen.add_argument("--temperature", type=float, default=1.0, help="with --sample")
    gen.add_argument("--n", type=_positive_int, default=1,
                     help="samples per prompt (with --sample)")
    gen.add_argument("--seed", type=_seed, default=0)
    gen.add_argument("--overwrite", action="store_true")
    gen.add_argument("--json", action="store_true",
                     help="print the file's summary and refusal rates as JSON")
    _judge_arg(gen)

    info = sub.add_parser("info", help="describe a store (finished or in progress)")
    info.add_argument("store")
    info.add_argument("--json", action="store_true")

    sc = sub.add_parser("score", help="AQI per layer (CI, permutation null, lexical control)")
    sc.add_argument("store")
    _scoring_args(sc)
    sc.add_argument("--json", action="store_true")

    cmp = sub.add_parser("compare", help="AQI of a baseline minus an audited model, per layer")
    cmp.add_argument("baseline")
    cmp.add_argument("audited")
    cmp.add_argument("--pooling", default=None)
    _span_choice(cmp)
    cmp.add_argument("--n-boot", type=_n_boot, default=1000, help=_N_BOOT_HELP)
    cmp.add_argument("--seed", type=_seed, default=0)
    cmp.add_argument("--partial", action="store_true", help=_PARTIAL_HELP)
    cmp.add_argument("--allow-text-mismatch", action="store_true",
                     help="compare even if a prompt id has different texts (warns with a count)")
    cmp.add_argument("--json", action="store_true")

    pr = sub.add_parser("probe", help="OOD or reward-model probes")
    psub = pr.add_subparsers(dest="probe", required=True)
    ood = psub.add_parser("ood", help="fit a detector on a reference store, flag test rows")
    ood.add_argument("reference")
    ood.add_argument("test")
    ood.add_argument("--layers", type=_layers_arg, default=None)
    ood.add_argument("--pooling", default=None)
    _span_choice(ood)
    ood.add_argument(
        "--detector",
        default="mahalanobis",
        choices=["mahalanobis", "class-mahalanobis", "relative-mahalanobis", "knn"],
    )
    ood.add_argument("--false-alarm-rate", type=_open_unit, default=0.05)
    ood.add_argument("--n-boot", type=_n_boot, default=200, help=_N_BOOT_HELP)
    ood.add_argument("--json", action="store_true")
    rw = psub.add_parser("reward", help="calibration of reward scores, in distribution and shifted")
    rw.add_argument("reference", help="scores CSV/JSON(L) with chosen/rejected rewards")
    rw.add_argument("shifted", nargs="*", help="score files of shifted conditions")
    rw.add_argument("--calibrator", choices=["temperature", "platt", "none"], default=None,
                    help="fitted on half the reference pairs, applied to the held-out half and "
                         "the shifted files (default with shifted files: temperature)")
    rw.add_argument("--n-boot", type=_n_boot, default=200, help=_N_BOOT_HELP)
    rw.add_argument("--json", action="store_true")

    for name, helptext in (
        ("report", "run the audit and write the HTML (and JSON) report"),
        ("gate", "run the audit; exit 1 when a check fails"),
    ):
        g = sub.add_parser(name, help=helptext, epilog=_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
        g.add_argument("store", help="the audited model's store")
        g.add_argument("--baseline", help="store of a reference model on the same prompts")
        g.add_argument("--ood-test", help="store of the audited model on new inputs")
        g.add_argument("--jailbreak", help="store of the audited model on wrapped unsafe prompts")
        g.add_argument("--reward", help="reward scores (chosen/rejected) in distribution")
        g.add_argument("--reward-shift", nargs="*", default=[], help="shifted reward scores")
        g.add_argument(
            "--reward-n-boot", type=_n_boot, default=200,
            help="bootstrap resamples for the reward-model CIs (default 200: they cover "
            "every pair, often tens of thousands)",
        )  # fmt: skip
        g.add_argument("--responses", help="the audited model's responses (aqi generate)")
        g.add_argument("--baseline-responses", help="the baseline model's responses")
        g.add_argument("--allow-other-model", action="store_true", help=_OTHER_MODEL_HELP)
        g.add_argument("--config", help="pyproject.toml with [tool.aqi] thresholds")
        _judge_arg(g, labels=True)
        _scoring_args(g)
        g.add_argument("--json", action="store_true", help="print the JSON document")
        if name == "report":
            g.add_argument("--out", default="aqi-report.html", help="HTML report path")
            g.add_argument("--json-out", default=None, help="also write the JSON document")
            g.add_argument("--overwrite", action="store_true", help=_OVERWRITE_HELP)
        else:
            g.add_argument("--strict", action="store_true", help="also fail on 'warn'")

    _audit_parser(sub)
    lab = sub.add_parser("label", help="a blind sample of two models' responses for a person to "
                         "label (HTML sheet or terminal); the labels carry the judge's error "
                         "into refusal_change (--labels)")
    lab.add_argument("--responses", required=True, help="the audited model's responses")
    lab.add_argument("--baseline-responses", required=True, help="the baseline's responses")
    lab.add_argument("--n", type=_positive_int, default=40, help="prompts to label (both "
                     "models' responses to each; default 40)")
    lab.add_argument("--seed", type=_seed, default=0)
    lab.add_argument("--sheet", default=None, help="write a self-contained HTML sheet here")
    lab.add_argument("--terminal", default=None, metavar="LABELS.json",
                     help="label in this terminal, saving (and resuming) this labels file")
    lab.add_argument("--json", action="store_true", help="print what was written as JSON")
    _judge_arg(lab)
    demo = sub.add_parser(
        "demo", help="audit an eroded and a benign fine-tune of a safety-tuned SmolLM2-135M "
        "against it (two aqi audit runs, one table); --profile: the single-model AQI profile"
    )
    demo.add_argument("--out-dir", default="aqi-demo",
                      help="folder for the work and the reports (a second run reuses the work)")
    demo.add_argument("--overwrite", action="store_true", help="redo the work in --out-dir")
    demo.add_argument("--profile", action="store_true",
                      help="the single-model AQI profile of SmolLM2-135M-Instruct instead")
    demo.add_argument("--json", action="store_true",
                      help="print the audits' JSON documents instead of the table")
    from .integrations.track import add_parser as _add_track  # light: no torch at import

    _add_track(sub, _positive_int)
    for p in [*sub.choices.values(), *psub.choices.values()]:  # also after the subcommand
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks of errors")  # fmt: skip
        p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help=_QUIET)
    return parser


_OVERWRITE_HELP = ("replace an existing output file that aqi did not write (one aqi wrote is "
                   "replaced anyway; docs/errors.md, Outputs)")
_QUIET = "no progress bars or status lines on stderr (warnings and errors still show)"
_OTHER_MODEL_HELP = ("accept --responses written by another model than the store's / --model's "
                     "(weights fingerprint); the output says so")
_PARTIAL_HELP = "accept unfinished captures (their rows so far); outputs say 'partial'"
_N_BOOT_HELP = (f"bootstrap resamples: 0 (no intervals: checks that need one warn 'not "
                f"computed') or {min_resamples(0.95)}..{MAX_RESAMPLES}")


def _scoring_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pooling", default=None, help="which pooling to score (default: mean)")
    _span_choice(p)
    p.add_argument("--layers", type=_layers_arg, default=None, help="layers to score")
    p.add_argument("--n-boot", type=_n_boot, default=1000, help=_N_BOOT_HELP)
    p.add_argument("--n-perm", type=_n_perm, default=200,
                   help=f"label permutations: 0 (no null) or {MIN_RESAMPLES}..{MAX_RESAMPLES}")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--partial", action="store_true", help=_PARTIAL_HELP)


_AUDIT_EPILOG = """\
examples:
  aqi audit --model ./finetuned --baseline-model ./base
  aqi audit --model ./ft --baseline-model meta-llama/Llama-3.1-8B-Instruct \\
      --dtype bfloat16 --baseline-model-arg revision=main --prompts harmbench+xstest-safe
  aqi audit --model ./ft-q4 --gguf-file ft.Q4_K_M.gguf --baseline-model ./base --json

Loading flags (--dtype, --device, --load-in-4bit, ...) apply to both models, except
--revision and --gguf-file, which name the audited checkpoint only; --baseline-model-arg
KEY=VALUE (or KEY for a switch, e.g. load-in-4bit) sets one for the baseline. Work is kept
in --workdir: re-running resumes, and another model against the same baseline reuses
the baseline's responses and store. Exit codes as aqi gate: 0 pass, 1 a check failed
(--strict: or warned), 2 usage or input error, 130 interrupted (re-run to resume).
"""


def _audit_parser(sub: argparse._SubParsersAction) -> None:
    """``aqi audit``: one command from two models to a report and an exit code."""
    a = sub.add_parser("audit", help="audit a model against its baseline in one command: "
                       "generate, capture, judge, audit, report (resumable)",
                       epilog=_AUDIT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _model_args(a)
    a.add_argument("--baseline-model", required=True,
                   help="the reference model (e.g. the base the audited model was tuned from)")
    a.add_argument("--baseline-model-arg", action="append", default=[], metavar="KEY[=VALUE]",
                   help="a loading flag for the baseline only, without its dashes "
                        "(dtype=float16, revision=v1, gguf-file=F.gguf, load-in-4bit); repeatable")
    _prompt_args(a)
    a.add_argument("--workdir", default="aqi-audit",
                   help="work folder (responses, stores, reports; default aqi-audit)")
    a.add_argument("--out", default=None,
                   help="HTML report path (default WORKDIR/reports/MODEL-vs-BASELINE/report.html; "
                        "the JSON beside it)")
    a.add_argument("--overwrite", action="store_true", help=_OVERWRITE_HELP)
    a.add_argument("--rebuild", action="store_true",
                   help="make again a reused response file or store of --workdir whose content "
                        "no longer matches the hash recorded when it was made (default: refuse)")
    a.add_argument("--layers", type=_layers_arg, default="blocks",
                   help="layers to capture: 'blocks', 'all', or indices / names")
    a.add_argument("--pooling", default="mean", help="pooling captured and scored (default mean)")
    a.add_argument("--max-new-tokens", type=_positive_int, default=None,
                   help="greedy tokens per response (default: the judge's, 64)")
    a.add_argument("--batch-size", type=_positive_int, default=16)
    a.add_argument("--max-prompt-tokens", type=_whole(0), default=None,
                   help=_MAX_PROMPT_TOKENS_HELP)  # fmt: skip
    a.add_argument("--no-chat", action="store_true", help="do not use the chat template")
    a.add_argument("--early-stop", action="store_true",
                   help="stop each response once the judge's verdict on it can no longer "
                        "change (phrase rules only): the same labels, fewer tokens, shorter "
                        "captured responses; no decoding time saved yet (docs/judge.md)")
    a.add_argument("--n-boot", type=_n_boot, default=1000, help=_N_BOOT_HELP)
    a.add_argument("--n-perm", type=_n_perm, default=200,
                   help=f"label permutations: 0 (no null) or {MIN_RESAMPLES}..{MAX_RESAMPLES}")
    a.add_argument("--seed", type=_seed, default=0)
    a.add_argument("--config", help="pyproject.toml with [tool.aqi] thresholds")
    _judge_arg(a, labels=True)
    a.add_argument("--no-response-text", action="store_true",
                   help="leave the responses' text out of the report's 'what changed' section")
    a.add_argument("--strict", action="store_true", help="also fail on 'warn'")
    a.add_argument("--json", action="store_true", help="print the JSON document")
    a.add_argument("--latent-only", action="store_true",
                   help="generate nothing for --model: predict its refusal from one forward "
                        "pass per prompt (the baseline is generated and judged once, or "
                        "reused); the verdict is marked latent (docs/audit.md)")
    a.add_argument("--verify", type=_whole(1), default=0, metavar="K",
                   help="with --latent-only: generate and judge about K unsafe prompts where "
                        "the prediction is least certain, and decide on an interval that "
                        "stays valid if the prediction is biased")


class _Raising(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def baseline_namespace(args: argparse.Namespace) -> argparse.Namespace:
    """The baseline's loading flags: the audited model's shared ones (not --revision or
    --gguf-file), then each ``--baseline-model-arg KEY[=VALUE]``, parsed by the same flags."""
    p = _Raising(prog="--baseline-model-arg", add_help=False)
    _model_args(p)
    known = {o.lstrip("-") for act in p._actions for o in act.option_strings} - {"model"}
    flags = ["--model", args.baseline_model]
    for item in args.baseline_model_arg:
        key, eq, value = item.partition("=")
        key = key.strip().replace("_", "-")
        if key not in known:
            raise ValueError(f"--baseline-model-arg {item!r}: {key!r} is not a loading flag; "
                             f"expected one of {', '.join(sorted(known))}")  # fmt: skip
        flags += [f"--{key}", value] if eq else [f"--{key}"]
    base = argparse.Namespace(**{k: v for k, v in vars(args).items()
                                 if k not in ("model", "revision", "gguf_file")})  # fmt: skip
    try:
        return p.parse_args(flags, namespace=base)
    except ValueError as e:
        raise ValueError(f"--baseline-model-arg: {e}") from None
