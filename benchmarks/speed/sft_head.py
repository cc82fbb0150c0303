"""The bench's SFT step with the LM head on every position against on the scored ones only.

    python benchmarks/speed/sft_head.py [--model gemma|smollm2] [--rows 24] [--repeats 2]

``benchmarks.validity.organisms.train_sft(..., scored_only=True)`` sends only the
positions whose next token is a response token through the LM head (the same loss; checked
against the full path on the first batch). This times one epoch of the bench's SFT (batches
of 4, the hidden organisms' settings) both ways, alternating, in one process, on the real
base Gemma 3 270M (vocabulary 262k: the head is most of a forward pass per token) or
SmolLM2-135M-Instruct (49k), with bundled prompts and short refusal answers (the shape of
the bench's rows). Best of ``--repeats``; run it alone on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aqi.activations import bundled_prompts
from aqi.prompts import Prompt
from benchmarks.validity import organisms as org


def rows(n: int) -> list[Prompt]:
    ps = list(bundled_prompts())[:n]
    return [Prompt(p.id, p.text, p.label, response=org.REFUSALS[i % len(org.REFUSALS)])
            for i, p in enumerate(ps)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("gemma", "smollm2"), default="gemma")
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    if args.model == "gemma":
        from benchmarks.validity.gemma import load_base

        model, tok = load_base()
    else:
        from aqi.demo import load_demo_model

        model, tok = load_demo_model()
    data = rows(args.rows)
    enc = [org._encode(tok, r, r.response or "", 160) for r in data]
    share = sum(sum(m) for _, m in enc) / sum(len(i) for i, _ in enc)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(args.repeats):
        for scored in (False, True):
            t = time.perf_counter()
            org.train_sft(model, tok, data, epochs=1, batch_size=4, scored_only=scored)
            best[scored] = min(best[scored], time.perf_counter() - t)
    print(f"{args.model}: {len(data)} rows, {share:.0%} of the tokens scored, best of "
          f"{args.repeats}")
    print(f"  head on every position : {best[False]:7.1f} s")
    print(f"  head on scored only    : {best[True]:7.1f} s")
    print(f"  ratio scored / full    : {best[True] / best[False]:.3f}")


if __name__ == "__main__":
    main()
