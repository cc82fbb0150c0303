"""Benchmark: exact Dunn, AQI with bootstrap CI, and the paper authors' pipeline — one run.

    python benchmarks/speed/indices.py

1. Exact Dunn at n = 20,000, d = 576, two clusters: time / one ``X @ X.T`` on the same
   data (target <= 2.0), speed-up over a full-matrix implementation (scipy ``cdist``, as
   validclust does; target >= 5x), peak extra memory (target <= 300 MB).
2. AQI with a 1,000-resample bootstrap CI on 20,000 x 576 (target <= 2 s).
3. The paper's pipeline (StandardScaler, 3-D t-SNE, indices, min-max within the run) on
   2,800 x 576 against the default AQI on the same data: time ratio, and both pipelines'
   values for two t-SNE seeds. Data: SmolLM2-135M-Instruct activations (layer 20, mean
   pooling) of the real prompt set, resampled to 2,800 rows.
4. The per-layer AQI profile of SmolLM2-135M-Instruct on the bundled matched pairs, written
   as a figure to ``benchmarks/out/aqi_profile_smollm2.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aqi
from aqi.indices import alignment_quality_index, dunn_index, paper_pipeline, score
from aqi.indices.cluster import calinski_harabasz_index, xie_beni_index
from aqi.indices.formulations import project_3d

OUT = Path(__file__).resolve().parents[1] / "out"


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 2 ms."""

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = rss_mb()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mb())

    @property
    def extra(self) -> float:
        return self.peak - self.base


def timed(f, *a, repeat: int = 1, **k):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f(*a, **k)
        best = min(best, time.perf_counter() - t0)
    return best, out


def dunn_full_matrix(X: np.ndarray, y: np.ndarray) -> float:
    """What validclust and most tutorials do: the whole n x n matrix from scipy."""
    D = cdist(X, X)
    same = y[:, None] == y[None, :]
    return float(D[~same].min() / D[same].max())


def part1(n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (np.arange(n) >= n // 2).astype(int)
    X[y == 1, 0] += 3.0
    t_mm, _ = timed(lambda: X @ X.T, repeat=2)
    dunn_index(X[::10], y[::10])  # warm-up
    with PeakRSS() as mem:
        t_dunn, res = timed(dunn_index, X, y)
    print(f"1. exact Dunn, n={n:,}, d={d} (float32 data): {t_dunn:.2f} s, value {res.value:.6f}")
    print(
        f"   one X @ X.T (numpy, float32):           {t_mm:.2f} s  -> ratio {t_dunn / t_mm:.2f} "
        "(target <= 2.0)"
    )
    print(f"   peak extra memory during Dunn:           {mem.extra:.0f} MB (target <= 300 MB)")
    with PeakRSS() as mem_full:
        t_full, ref = timed(dunn_full_matrix, X.astype(np.float64), y)
    print(
        f"   full-matrix Dunn (scipy cdist):          {t_full:.2f} s, value {ref:.6f}, "
        f"peak extra {mem_full.extra:.0f} MB -> speed-up {t_full / t_dunn:.1f}x (target >= 5x)"
    )
    print(f"   |ours - full| / full = {abs(res.value - ref) / ref:.1e}")


def part2(n: int, d: int) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (np.arange(n) >= n // 2).astype(int)
    X[y == 1, :4] += 0.3
    alignment_quality_index(X[::40], y[::40], n_boot=100, n_perm=0)  # warm-up
    t, r = timed(alignment_quality_index, X, y, n_boot=1000, n_perm=0)
    print(f"2. AQI + 1,000-resample bootstrap CI, {n:,} x {d}: {t:.2f} s (target <= 2 s): {r!r}")
    t_p, _ = timed(alignment_quality_index, X, y, n_boot=1000, n_perm=200)
    print(f"   with a 200-permutation null as well: {t_p:.2f} s")


def smollm2_real_store(tmp: Path):
    from aqi.demo import load_demo_model
    from benchmarks.real_prompts import real_prompts

    model, tok = load_demo_model()
    return aqi.capture(
        model, tok, real_prompts(), tmp / "real.h5", layers="all", pooling="mean",
        writing=aqi.Writing(progress=False),
    ), (model, tok)  # fmt: skip


def part3(store) -> None:
    X = store.activations("model.layers.20")
    y = store.y
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.choice(np.flatnonzero(y == j), 1400, replace=True) for j in (0, 1)])
    X, y = X[rows] + rng.normal(0, 1e-3, (len(rows), X.shape[1])), y[rows]
    print(
        f"3. paper pipeline vs default AQI, {X.shape[0]:,} x {X.shape[1]} (SmolLM2 layer 20, "
        "real prompts resampled):"
    )
    t_ours, ours = timed(alignment_quality_index, X, y, n_boot=1000, n_perm=200)
    proj_times, raw = [], {}
    for seed in (0, 1):
        t0 = time.perf_counter()
        P = project_3d(X, "tsne", seed)
        xb, ch = xie_beni_index(P, y), calinski_harabasz_index(P, y)
        proj_times.append(time.perf_counter() - t0)
        raw[seed] = (xb, ch)
        print(
            f"   t-SNE seed {seed}: XB {xb:.4f}, CH {ch:.1f} on the 3-D projection "
            f"({proj_times[-1]:.1f} s)"
        )
    print(
        f"   time: paper pipeline {np.mean(proj_times):.1f} s per run vs default AQI with CI and "
        f"null {t_ours:.2f} s -> ratio {np.mean(proj_times) / t_ours:.0f}x"
    )
    # The paper's AQI is min-max rescaled within a run: run it over 3 layers, two seeds.
    layers = [store.activations(f"model.layers.{i}")[rows] for i in (5, 12, 20)]
    for seed in (0, 1):
        v = paper_pipeline(layers, y, projection="tsne", seed=seed)
        print(
            f"   paper AQI (layers 5/12/20, min-max within run), seed {seed}: "
            + ", ".join(f"{x:.3f}" for x in v)
        )
    ours_l = [alignment_quality_index(L, y, n_boot=200, n_perm=0) for L in layers]
    print(
        "   default AQI (layers 5/12/20, no projection, seed-free): "
        + ", ".join(f"{r.value:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in ours_l)
    )
    print(f"   default AQI of layer 20: {ours!r}")


def part4(model_tok) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, tok = model_tok
    with tempfile.TemporaryDirectory() as d:
        s = aqi.capture(
            model,
            tok,
            aqi.bundled_prompts(),
            Path(d) / "b.h5",
            layers="all",
            pooling="mean",
            writing=aqi.Writing(progress=False),
        )
        prof = score(s, n_boot=1000, n_perm=200)
    x = np.arange(len(prof.layers))
    lo = [r.ci_low for r in prof.layers]
    hi = [r.ci_high for r in prof.layers]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.fill_between(x, lo, hi, color="#0072B2", alpha=0.25, label="95% bootstrap CI")
    ax.plot(x, prof.values, color="#0072B2", marker="o", ms=3, label="AQI (aqi-v1)")
    ax.fill_between(
        x,
        0,
        [r.null_high for r in prof.layers],
        color="#999999",
        alpha=0.3,
        label="permutation null (95th pct)",
    )
    if "bag_of_words" in prof.lexical:
        ax.axhline(
            prof.lexical["bag_of_words"].value,
            color="#D55E00",
            ls="--",
            label="bag-of-words control",
        )
    ax.set_xticks(
        x[::3], [n.replace("model.", "") for n in prof.names][::3], rotation=30, fontsize=7
    )
    ax.set_ylabel("AQI")
    ax.set_title("SmolLM2-135M-Instruct, bundled matched pairs (n=294), mean pooling, user span")
    ax.legend(fontsize=7)
    fig.tight_layout()
    OUT.mkdir(exist_ok=True)
    fig.savefig(OUT / "aqi_profile_smollm2.png", dpi=120)
    best = prof.best()
    print(f"4. SmolLM2 profile: best {best!r}")
    print(
        f"   embeddings {prof.lexical['embeddings'].value:.2f}, bag of words "
        f"{prof.lexical['bag_of_words'].value:.2f}; figure: {OUT / 'aqi_profile_smollm2.png'}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--d", type=int, default=576)
    ap.add_argument("--skip-model", action="store_true")
    args = ap.parse_args()
    part1(args.n, args.d)
    part2(args.n, args.d)
    if not args.skip_model:
        with tempfile.TemporaryDirectory() as d:
            store, model_tok = smollm2_real_store(Path(d))
            part3(store)
            store.close()
        part4(model_tok)


if __name__ == "__main__":
    main()
