"""Responses judged per second: the encoder judge against the phrase rules, same process.

Target (issue 26): >= 500 responses/s for the encoder judge on two CPU cores, so that
judging never dominates an audit. The encoder judge is timed at its default precision
(``auto``: bfloat16 where the CPU has it natively) and in float32, same process. The
texts are the fitting corpus's written and packaged ones (mixed lengths, 10 languages),
repeated to 2,048; the encoder is loaded before timing (once per process in real use).
Best of three runs; run it alone on a quiet machine.

    python benchmarks/judge/speed.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from aqi.behaviour import EncoderJudge, RefusalJudge
from benchmarks.judge.corpus import WRITTEN_FIT, packaged, written

N, REPEATS, TARGET = 2048, 3, 500.0


def rate(fn: object, texts: list[str]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        fn(texts)  # type: ignore[operator]
        best = min(best, time.perf_counter() - t)
    return len(texts) / best


def main() -> None:
    # the team-written and packaged fitting texts (no model or generated cache needed)
    base = [t.text for p in WRITTEN_FIT for t in written(p)] + [t.text for t in packaged()]
    texts = (base * (N // len(base) + 1))[:N]
    judge, f32, rules = EncoderJudge(), EncoderJudge(precision="float32"), RefusalJudge()
    judge.batch(texts[:64])  # load the encoder
    f32.batch(texts[:64])
    r_default = rate(judge.batch, texts)
    r_f32 = rate(f32.batch, texts)
    r_rules = rate(lambda ts: [rules(t) for t in ts], texts)
    print(f"{torch.get_num_threads()} torch threads, {N} responses, best of {REPEATS}")
    print(f"encoder judge ({judge.precision}, default): {r_default:8.0f} responses/s "
          f"({'meets' if r_default >= TARGET else 'misses'} the >= {TARGET:.0f}/s target)")
    print(f"encoder judge (float32)          : {r_f32:8.0f} responses/s")
    print(f"phrase rules                     : {r_rules:8.0f} responses/s")
    print(f"ratio default / float32: {r_default / r_f32:.3f}; "
          f"default / rules: {r_default / r_rules:.3f}")


if __name__ == "__main__":
    main()
