"""Command-line interface: ``aqi capture``, ``aqi info``, ``aqi demo``.

Exit codes: 0 success; 2 usage or input error (bad arguments, missing files,
incompatible store). Progress goes to stderr, results to stdout (JSON with
``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_GATE_FAILED, EXIT_USAGE = 0, 1, 2

_EPILOG = """\
examples:
  aqi demo                                   # SmolLM2-135M-Instruct on the bundled prompts
  aqi capture --model ./my-model --prompts prompts.jsonl --out acts.h5 \\
      --layers all --pooling mean,last --span user
  aqi capture --model demo --out acts.h5     # the bundled model and prompt set
  aqi info acts.h5 --json

exit codes: 0 success, 1 gate failed, 2 usage or input error
"""


def _load_model(name: str) -> tuple[Any, Any]:
    if name == "demo":
        from .demo import load_demo_model

        return load_demo_model()
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(name)
    causal = any(a.endswith("ForCausalLM") for a in (config.architectures or []))
    cls = AutoModelForCausalLM if causal else AutoModel
    model = cls.from_pretrained(name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(name)


def _layers_arg(value: str) -> list[str | int] | str:
    if value in ("blocks", "all", "embeddings", "final_norm"):
        return value
    out: list[str | int] = []
    for item in value.split(","):
        item = item.strip()
        out.append(int(item) if item.lstrip("-").isdigit() else item)
    return out


def _summary(store: Any) -> dict[str, Any]:
    return {
        "path": str(store.path),
        "complete": store.complete,
        "rows": store.n_rows,
        "rows_total": store.n_total,
        "unsafe": int(store.y.sum()),
        "layers": list(store.layers),
        "poolings": list(store.poolings),
        "span": store.span,
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
        f"{', '.join(info['poolings'])}, span {info['span'] or '-'}, "
        f"{info['truncated']} truncated"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aqi",
        description="Audit the alignment of language models from the inside.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    cap = sub.add_parser(
        "capture",
        help="capture pooled activations into an HDF5 store",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cap.add_argument(
        "--model", required=True, help="local model directory, or 'demo' for SmolLM2-135M-Instruct"
    )
    cap.add_argument(
        "--prompts", default=None, help="JSONL/CSV prompt file (default: the bundled prompt set)"
    )
    cap.add_argument("--format", default=None, choices=["jsonl", "csv", "litmus"])
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
    cap.add_argument("--span", default="user", choices=["user", "all", "response"])
    cap.add_argument("--batch-size", type=int, default=16)
    cap.add_argument("--max-length", type=int, default=None)
    cap.add_argument("--no-chat", action="store_true", help="do not use the chat template")
    cap.add_argument("--overwrite", action="store_true")
    cap.add_argument("--quiet", action="store_true", help="no progress bar")
    cap.add_argument("--json", action="store_true", help="print the summary as JSON")

    info = sub.add_parser("info", help="describe a store (finished or in progress)")
    info.add_argument("store")
    info.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="capture the bundled prompts with SmolLM2-135M-Instruct")
    demo.add_argument("--out", default="aqi-demo.h5")
    demo.add_argument("--overwrite", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aqi`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors, 0 on --help
        return int(e.code or 0)
    try:
        if args.command == "demo":
            from .demo import run_demo

            return run_demo(args.out, overwrite=args.overwrite)
        from .activations import bundled_prompts, capture, load_prompts, open_store

        if args.command == "info":
            with open_store(args.store) as store:
                _print_summary(_summary(store), args.json)
            return EXIT_OK
        prompts = (
            load_prompts(args.prompts, format=args.format) if args.prompts else bundled_prompts()
        )
        model, tok = _load_model(args.model)
        store = capture(
            model,
            tok,
            prompts,
            args.out,
            layers=args.layers,
            pooling=[p.strip() for p in args.pooling.split(",")],
            span=args.span,
            batch_size=args.batch_size,
            max_length=args.max_length,
            chat=False if args.no_chat else None,
            overwrite=args.overwrite,
            progress=False if args.quiet else None,
        )
        with store:
            _print_summary(_summary(store), args.json)
        return EXIT_OK
    except (ValueError, TypeError, FileNotFoundError, PermissionError, OSError, KeyError) as e:
        print(f"aqi {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
