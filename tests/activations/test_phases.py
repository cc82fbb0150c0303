"""The capture's phase timer (the speed benchmark's ``--phases``): exclusive times, off by
default, and a timed capture writes what an untimed one does."""

from __future__ import annotations

import numpy as np
import pytest

import aqi
from aqi.activations._phases import OFF, PHASES, PhaseTimer, current_timer, timing_phases

QUIET = aqi.Writing(batch_size=4, progress=False)


def test_nested_phases_are_exclusive_and_sync_runs_at_every_boundary() -> None:
    calls: list[str] = []
    timer = PhaseTimer(sync=lambda: calls.append("sync"))
    with timer.phase("forward"):
        with timer.phase("pooling"):
            pass
        with timer.phase("pooling"):
            pass
    assert calls == ["sync"] * 6  # enter and exit of each of the three phases
    assert set(timer.seconds) == set(PHASES)
    assert timer.seconds["forward"] >= 0 and timer.seconds["pooling"] >= 0
    assert all(s == 0.0 for k, s in timer.seconds.items() if k not in ("forward", "pooling"))


def test_an_unknown_phase_is_refused_naming_the_phases() -> None:
    with pytest.raises(ValueError, match=r"phase 'forwrd'; expected one of setup, tokenise"):
        PhaseTimer().phase("forwrd")


def test_off_unless_inside_timing_phases() -> None:
    assert current_timer() is OFF
    assert OFF.phase("forward") is OFF.phase("pooling")  # one shared do-nothing context
    with timing_phases() as timer:
        assert current_timer() is timer
    assert current_timer() is OFF
    assert all(s == 0.0 for s in OFF.seconds.values())


def test_a_timed_capture_fills_the_phases_and_writes_the_same_store(
    tiny_factory, small_prompts, tmp_path
) -> None:
    model, tok = tiny_factory("llama")
    rows = small_prompts[:8]
    plain = aqi.capture(model, tok, rows, tmp_path / "plain.h5", layers=[0, -1],
                        pooling=("mean", "last"), writing=QUIET)  # fmt: skip
    with timing_phases() as timer:
        timed = aqi.capture(model, tok, rows, tmp_path / "timed.h5", layers=[0, -1],
                            pooling=("mean", "last"), writing=QUIET)  # fmt: skip
    with plain, timed:
        for layer in plain.layers:
            for span in plain.spans:
                for p in plain.poolings:
                    np.testing.assert_array_equal(plain.activations(layer, p, span=span),
                                                  timed.activations(layer, p, span=span))
    for phase in ("setup", "tokenise", "batching", "forward", "pooling", "device copy",
                  "hdf5 write", "commit", "consolidation"):  # fmt: skip
        assert timer.seconds[phase] > 0, phase
    assert all(s == 0.0 for s in OFF.seconds.values())
