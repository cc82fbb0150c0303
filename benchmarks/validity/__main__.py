"""The validation bench's entry point: ``python -m benchmarks.validity COMMAND [ARGS]``.

    python -m benchmarks.validity v2 --original A --small   # bench v2: one part, resumable
    python -m benchmarks.validity v2 --summary --judge-labels tests/data/variant_sample_labels.json
    python -m benchmarks.validity v3 --original A           # bench v3: replay a part (latent)
    python -m benchmarks.validity v3 --summary              # the rule chosen on A, tables
    python -m benchmarks.validity v4 --original A --max-minutes 80  # bench v4: hidden organisms
    python -m benchmarks.validity chat-pilot                # original C's chat model, checked
    python -m benchmarks.validity voice --original A        # the refusal-voice organism
    python -m benchmarks.validity tables                    # docs/validation.md's tables
    python -m benchmarks.validity figure                    # docs/img/validity_v2.png
    python -m benchmarks.validity judge-sample draw RESPONSES_DIR --n 200
    python -m benchmarks.validity COMMAND --help            # a command's own options

Run it from the repository root. Each command is one module's ``main`` (the table below);
``--quick`` on ``v2`` and ``v3`` is the plumbing run on a tiny model.
"""

from __future__ import annotations

import importlib
import sys

#: command → (module, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "v2": ("v2", "bench v2: run a part (--original A|B), or --summary of the records"),
    "v3": ("v3", "bench v3: replay a part for the latent verdict, or --summary"),
    "v4": ("v4", "bench v4: hidden organisms of a part (--original A|C), or --summary"),
    "voice": ("voice", "the refusal-voice organism: reworded refusals, the audit's verdicts"),
    "chat-pilot": ("chat_pilot", "original C's chat SFT, checked by its pre-registered rule"),
    "coverage": ("coverage", "aqi/data/coverage.json from the benches' results (--check)"),
    "tables": ("tables", "the tables of docs/validation.md, from bench v2's results.json"),
    "figure": ("figure", "docs/img/validity_v2.png, from bench v2's records"),
    "judge-sample": ("judge_sample", "the judge's blind sample: draw, labels, score"),
    "v1-thresholds": ("v1_thresholds", "bench v1: the gate's thresholds from its stores"),
    "v1-report": ("v1_report", "bench v1: docs/validation.md's v1 table and figure"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {c:<{width}}  {what}" for c, (_, what) in COMMANDS.items())
    return f"{__doc__.strip()}\n\ncommands:\n{rows}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; expected one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"benchmarks.validity.{COMMANDS[command][0]}")
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
