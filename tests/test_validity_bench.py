"""The validation bench's plumbing and statistics on a tiny model (the science runs in
benchmarks/validity.py on SmolLM2; see docs/validation.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> object:
    sys.path.insert(0, str(BENCH))
    import validity

    return validity


@pytest.mark.slow
def test_quick_bench_runs_every_variant_and_reports(bench: object, tmp_path: Path,
                                                    smollm2: object) -> None:
    out = tmp_path / "validity.json"
    assert bench.main(["--quick", "--out", str(out), "--workdir", str(tmp_path / "w")]) == 0
    res = json.loads(out.read_text())
    names = [r["variant"] for r in res["rows"]]
    assert names[0] == "original" and len(names) >= 11
    assert {"dpo-1", "dpo-2", "sft-harm-2", "sft-benign-4", "ablate-1.0", "ablate-0.5",
            "ablate-random", "int8", "int4-g32"} <= set(names)
    for r in res["rows"]:
        assert 0 <= r["refusal"] <= 1 and r["gate"] in ("pass", "warn", "fail")
        assert np.isfinite(r["aqi_fixed"]) and np.isfinite(r["control_random_d"])
    base = res["rows"][0]
    assert base["refusal_delta"] == 0 and base["compare_delta"] == pytest.approx(0, abs=1e-9)
    assert sum(res["gate_confusion"].values()) == len(names) - 1
    assert set(res["spearman"]) >= {"aqi_best", "aqi_fixed", "direction_d", "control_random_d"}
    for v in res["spearman"].values():
        lo, hi = v["ci"]
        assert np.isnan(lo) or lo <= hi


def test_cohens_d_and_quantiser(bench: object) -> None:
    import organisms as org
    import torch

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = np.repeat([0, 1], 200)
    X[y == 1, 0] += 1.0
    d = bench.cohens_d(X, y, np.array([1.0, 0, 0]))
    assert d == pytest.approx(1.0, abs=0.2)
    assert bench.cohens_d(X, y, np.array([0, 1.0, 0])) == pytest.approx(0, abs=0.25)
    lin = torch.nn.Sequential(torch.nn.Linear(64, 8))
    q = org.quantise_weights(lin, 4, group=32)
    w, wq = lin[0].weight, q[0].weight
    levels = (wq.reshape(8, 2, 32) / (w.reshape(8, 2, 32).abs().amax(-1, keepdim=True) / 7))
    assert torch.allclose(levels, levels.round(), atol=1e-4)  # on the 4-bit grid
    assert 0 < org.weight_change(lin, q) < 0.2
    with pytest.raises(ValueError, match="bits must be 4 or 8"):
        org.quantise_weights(lin, 3)
    with pytest.raises(ValueError, match="training budget of 0"):
        org.train_sft(lin, None, [object()], epochs=0)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one preference pair"):
        org.train_dpo(lin, None, [], steps=1)
