"""What the ``second_judge`` check adds to an audit: the same audit with and without it.

An audit of a store against itself with both models' responses (``--n`` unsafe and as many
safe prompts; texts from the fitting corpus, so both judges have real work), judged by the
phrase rules — which adds ``second_judge``, the encoder judge's reading of every response —
against the same audit judged by the same rules plugged in as a callable (a plugged-in judge
gets no second judge). Same process, the encoder loaded before timing (once per process
in real use), best of three; run it alone on a quiet machine.

    python benchmarks/judge/second_judge_speed.py [--n 208]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import aqi
from aqi.behaviour import RefusalJudge, Response, Responses
from aqi.behaviour.encoder_judge import load_encoder_judge
from benchmarks.judge.corpus import WRITTEN_FIT, packaged, written

REPEATS = 3


def _responses(texts: list[str], n: int, offset: int) -> Responses:
    rows = [Response(f"u{i}", 0, texts[(offset + i) % len(texts)], "unsafe") for i in range(n)]
    rows += [Response(f"s{i}", 0, texts[(offset + n + i) % len(texts)], "safe") for i in range(n)]
    return Responses(records=tuple(rows))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=208, help="unsafe prompts (and as many safe)")
    args = ap.parse_args(argv)
    texts = [t.text for p in WRITTEN_FIT for t in written(p)] + [t.text for t in packaged()]
    n = args.n
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], n)
    ids = [f"s{i}" for i in range(n)] + [f"u{i}" for i in range(n)]
    store = aqi.store_from_arrays(Path(tempfile.mkdtemp()) / "s.h5",
                                  {"L": rng.normal(size=(2 * n, 8)) + 2 * y[:, None]},
                                  labels=y, ids=ids)  # fmt: skip
    base, tuned = _responses(texts, n, 0), _responses(texts, n, 7)
    rules = RefusalJudge()

    def plugged(text: str) -> bool:  # the same rules as a plugged-in callable: no second judge
        return rules(text)
    load_encoder_judge().batch(texts[:64])  # the encoder loaded, as after an audit's first use

    def run(judge: object) -> tuple[float, list[str]]:
        best, names = float("inf"), []
        for _ in range(REPEATS):
            t = time.perf_counter()
            rep = aqi.audit(store, baseline=store,
                            evidence=aqi.Evidence(responses=tuned, baseline_responses=base),
                            judging=aqi.Judging(judge=judge),
                            scoring=aqi.Scoring(n_boot=200, n_perm=50))  # fmt: skip
            best = min(best, time.perf_counter() - t)
            names = [c.name for c in rep.checks]
        return best, names

    with_second, names = run("rules")
    without, names_off = run(plugged)
    assert "second_judge" in names and "second_judge" not in names_off
    print(f"audit of {2 * n} responses per model, best of {REPEATS}: with second_judge "
          f"{with_second:.2f} s, without {without:.2f} s; ratio {with_second / without:.3f} "
          f"(+{with_second - without:.2f} s)")


if __name__ == "__main__":
    main()
