"""Benchmark: OOD detectors and reward-model calibration against what users would write.

    python benchmarks/probes.py

1. Mahalanobis fit + score on 20,000 x 576 (target <= 2 s) vs scikit-learn
   ``EmpiricalCovariance`` / ``LedoitWolf`` fit + ``mahalanobis``.
2. Cosine KNN scoring 20,000 queries against 20,000 reference rows (target <= 10 s) vs
   scikit-learn ``NearestNeighbors(metric="cosine", algorithm="brute")``.
3. Pairwise calibration with 1,000-resample CIs on 83,802 pairs (target <= 2 s) vs a
   plain numpy ECE/accuracy/Brier/NLL in a Python bootstrap loop. Data: the paper's real
   reward scores (``../shared/data/reward_shift``, or ``AQI_REWARD_SHIFT_DIR``) when
   present, otherwise synthetic scores of the same size.
4. Detection metrics (AUROC, AUPR, FPR95) with 200-resample CIs on 83,802 vs 83,802
   scores vs scikit-learn's ``roc_auc_score`` + ``average_precision_score`` +
   ``roc_curve`` in a bootstrap loop.

Every ratio is baseline time / aqi time, measured in this process on the same data.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aqi.probes import CosineKNN, Mahalanobis, detection_metrics, preference_calibration
from aqi.probes.reward import load_reward_scores, reward_ood_scores

DATA = Path(
    os.environ.get(
        "AQI_REWARD_SHIFT_DIR", Path(__file__).resolve().parents[3] / "shared/data/reward_shift"
    )
)


def timed(f, *a, **k):
    t = time.perf_counter()
    out = f(*a, **k)
    return out, time.perf_counter() - t


def plain_calibration(c: np.ndarray, r: np.ndarray, n_boot: int, rng: np.random.Generator):
    def stats(d: np.ndarray) -> tuple[float, ...]:
        conf = 1 / (1 + np.exp(-np.abs(d)))
        correct = (d > 0).astype(float)
        idx = np.minimum((conf * 10).astype(int), 9)
        ece = 0.0
        for b in range(10):
            m = idx == b
            if m.any():
                ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
        p = 1 / (1 + np.exp(-d))
        return correct.mean(), ece, np.mean((1 - p) ** 2), np.mean(-np.log(p))

    d = c - r
    point = stats(d)
    boots = np.array([stats(d[rng.integers(0, len(d), len(d))]) for _ in range(n_boot)])
    return point, np.quantile(boots, [0.025, 0.975], axis=0)


def main() -> None:
    rng = np.random.default_rng(0)
    d = 576
    A = rng.normal(size=(d, d)) / np.sqrt(d)
    X = (rng.normal(size=(20_000, d)) @ A).astype(np.float32)
    T = (rng.normal(size=(20_000, d)) @ A * 1.2).astype(np.float32)
    print("1. Mahalanobis fit + score, 20,000 x 576 (target <= 2 s)")
    from sklearn.covariance import EmpiricalCovariance, LedoitWolf

    s_ours, t_ours = timed(lambda: Mahalanobis(0.0).fit(X).score(T))
    s_sk, t_sk = timed(lambda: EmpiricalCovariance().fit(X).mahalanobis(T))
    s_lw, t_lw_ours = timed(lambda: Mahalanobis().fit(X).score(T))
    s_lw_sk, t_lw_sk = timed(lambda: LedoitWolf().fit(X).mahalanobis(T))
    print(f"   aqi Mahalanobis(shrinkage=0)   {t_ours:6.2f} s | sklearn EmpiricalCovariance "
          f"{t_sk:6.2f} s | ratio {t_sk / t_ours:5.1f}x | max rel diff "
          f"{np.max(np.abs(s_ours - s_sk) / s_sk):.1e}")  # fmt: skip
    print(f"   aqi Mahalanobis(ledoit-wolf)   {t_lw_ours:6.2f} s | sklearn LedoitWolf          "
          f"{t_lw_sk:6.2f} s | ratio {t_lw_sk / t_lw_ours:5.1f}x | max rel diff "
          f"{np.max(np.abs(s_lw - s_lw_sk) / s_lw_sk):.1e}")  # fmt: skip

    print("2. cosine KNN (k=10), 20,000 queries x 20,000 reference (target <= 10 s)")
    from sklearn.neighbors import NearestNeighbors

    s_knn, t_knn = timed(lambda: CosineKNN(k=10).fit(X).score(T))

    def sk_knn() -> np.ndarray:
        nn = NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute", n_jobs=1)
        return nn.fit(X).kneighbors(T)[0][:, -1]

    s_sk_knn, t_sk_knn = timed(sk_knn)
    diff = np.max(np.abs(s_knn - s_sk_knn))
    print(f"   aqi CosineKNN {t_knn:6.2f} s | sklearn NearestNeighbors {t_sk_knn:6.2f} s | "
          f"ratio {t_sk_knn / t_knn:5.1f}x | max abs diff {diff:.1e}")  # fmt: skip

    print("3. calibration with 1,000-resample CIs on 83,802 pairs (target <= 2 s)")
    if (DATA / "english_original_scores.csv").is_file():
        ref = load_reward_scores(DATA / "english_original_scores.csv")
        shifted = load_reward_scores(DATA / "french_prompt_french_response.csv")
        src = "real scores (LeVine et al. 2023)"
    else:
        from aqi.probes import PairScores

        m = rng.normal(1, 2, 83_802)
        ref = PairScores(m, np.zeros_like(m))
        shifted = PairScores(m * 0.5 + rng.normal(size=m.size), np.zeros_like(m))
        src = "synthetic scores (real data not found)"
    res, t_cal = timed(preference_calibration, ref.chosen, ref.rejected, n_boot=1000)
    (pt, ci), t_plain = timed(plain_calibration, ref.chosen, ref.rejected, 1000, rng)
    print(f"   data: {src}")
    print(f"   aqi preference_calibration {t_cal:6.2f} s | plain numpy loop {t_plain:6.2f} s | "
          f"ratio {t_plain / t_cal:5.1f}x")  # fmt: skip
    print(f"   ECE {res.ece} (plain: {pt[1]:.4f} [{ci[0, 1]:.4f}, {ci[1, 1]:.4f}]); "
          f"accuracy {res.accuracy} (plain: {pt[0]:.4f})")  # fmt: skip

    print("4. detection metrics with 200-resample CIs, 83,802 vs 83,802 energy scores")
    e_in, e_out = reward_ood_scores(ref)["energy"], reward_ood_scores(shifted)["energy"]
    det, t_det = timed(detection_metrics, e_in, e_out, n_boot=200)
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    def sk_det() -> None:
        y = np.r_[np.zeros(len(e_in)), np.ones(len(e_out))]
        for _ in range(200):
            i = np.r_[rng.integers(0, len(e_in), len(e_in)),
                      len(e_in) + rng.integers(0, len(e_out), len(e_out))]  # fmt: skip
            s, yy = np.r_[e_in, e_out][i], y[i]
            roc_auc_score(yy, s)
            average_precision_score(yy, s)
            average_precision_score(1 - yy, -s)
            roc_curve(yy, s)

    _, t_sk_det = timed(sk_det)
    print(f"   aqi detection_metrics {t_det:6.2f} s | sklearn loop {t_sk_det:6.2f} s | "
          f"ratio {t_sk_det / t_det:5.1f}x | {det!r}")  # fmt: skip


if __name__ == "__main__":
    # no options: --help only says what it runs
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    main()
