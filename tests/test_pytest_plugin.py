"""The pytest plugin, exercised in isolated pytest runs (pytester)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import aqi

pytest_plugins = ["pytester"]


@pytest.fixture
def stores(tmp_path: Path) -> dict[str, str]:
    rng = np.random.default_rng(0)
    n = 200
    y = np.repeat(["safe", "unsafe"], n // 2)
    sep = rng.normal(size=(n, 6))
    sep[y == "unsafe", 0] += 3.0
    erased = sep.copy()
    erased[:, 0] = rng.normal(size=n)
    out = {}
    for name, X in (("good", sep), ("erased", erased), ("random", rng.normal(size=(n, 6)))):
        p = tmp_path / f"{name}.h5"
        aqi.store_from_arrays(p, {"L": X}, labels=y).close()
        out[name] = str(p)
    return out


def test_gates_pass_and_fail_with_evidence(pytester: pytest.Pytester, stores: dict) -> None:
    pytester.makepyprojecttoml("[tool.aqi]\naqi_floor = 20.0\n")
    pytester.makepyfile(
        f"""
        import aqi

        GOOD, ERASED, RANDOM = {stores["good"]!r}, {stores["erased"]!r}, {stores["random"]!r}

        def test_floor_passes(aqi_gate):
            aqi_gate.aqi_at_least(aqi.open_store(GOOD))

        def test_floor_fails(aqi_gate):
            aqi_gate.aqi_at_least(aqi.open_store(RANDOM))

        def test_drop_fails(aqi_gate):
            aqi_gate.no_aqi_drop(aqi.open_store(ERASED), aqi.open_store(GOOD))

        def test_no_drop_against_itself(aqi_gate):
            aqi_gate.no_aqi_drop(aqi.open_store(GOOD), aqi.open_store(GOOD))

        def test_threshold_from_pyproject(aqi_thresholds):
            assert aqi_thresholds.aqi_floor == 20.0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*aqi: release-gate thresholds from [[]tool.aqi[]]*",
            "*GateFailure: aqi gate failed: AQI at L is below the floor*",
            "*floor*20*",
            "*GateFailure: aqi gate failed: AQI dropped against the baseline*",
        ]
    )


def test_ood_and_reward_gates(pytester: pytest.Pytester, stores: dict) -> None:
    pytester.makepyfile(
        f"""
        import numpy as np
        import aqi

        def test_ood_is_coverage_not_a_failure(aqi_gate):
            s = aqi.open_store({stores["good"]!r})
            shifted = aqi.open_store({stores["random"]!r})
            check = aqi_gate.ood_coverage(s, shifted)
            assert check.verdict in ("pass", "warn")

        def test_ood_strict_fails_on_warn(aqi_gate, tmp_path):
            s = aqi.open_store({stores["good"]!r})
            shifted = aqi.store_from_arrays(tmp_path / "far.h5", {{"L": s.activations("L") + 8}},
                                            prompts=s.prompts())
            aqi_gate.ood_coverage(s, shifted, strict=True)  # shifted: a warning, strict stops

        def test_reward_miscalibrated(aqi_gate):
            rng = np.random.default_rng(0)
            m = np.abs(rng.normal(3, 1, 3000))
            won = rng.random(3000) < 0.6
            aqi_gate.reward_ece_below((np.where(won, m, 0), np.where(won, 0, m)), ceiling=0.05)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*reward model miscalibrated*", "*ECE*", "*ceiling*0.05*"])
    result.stdout.fnmatch_lines(["*aqi gate failed: inputs outside what the audit measured*"])


def test_default_false_fail_rate_at_the_floor() -> None:
    """Documented: at a true AQI equal to the floor, aqi_at_least fails ~2.5% of runs."""
    from aqi.pytest_plugin import AQIGate, GateFailure

    rng = np.random.default_rng(5)

    def draw(n: int) -> np.ndarray:
        X = rng.normal(size=(n, 4))
        X[n // 2 :, 0] += 1.2
        return X

    y = np.repeat([0, 1], 200)
    big = draw(400_000)
    floor = aqi.alignment_quality_index(big, np.repeat([0, 1], 200_000), n_boot=0, n_perm=0).value
    gate = AQIGate(aqi.AuditThresholds(aqi_floor=floor), n_boot=300)
    fails = 0
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for i in range(40):
            s = aqi.store_from_arrays(Path(d) / f"{i}.h5", {"L": draw(400)}, labels=y)
            try:
                gate.aqi_at_least(s)
            except GateFailure:
                fails += 1
            s.close()
    assert fails <= 4  # expected ~1 of 40 (2.5%); 4 or more has probability < 2%
