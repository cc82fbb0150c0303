"""Progress bars: where they show (terminal, long resampling, one at a time), never in CI,
off under aqi.progress_bars(False) / --quiet, and never changing a number."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aqi
from aqi._progress import ROWS_FOR_A_BAR, bar, show_progress
from aqi.indices import alignment_quality_index


def test_switch_and_automatic_mode(monkeypatch: Any) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert show_progress() is True  # a terminal, not CI
    monkeypatch.setenv("CI", "true")
    assert show_progress() is False  # CI runners stay quiet even on a pseudo-terminal
    with aqi.progress_bars(True):
        assert show_progress() is True
        with aqi.progress_bars(False):
            assert show_progress() is False
            assert show_progress(True) is True  # a step's own argument wins
        assert show_progress() is True
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.delenv("CI")
    assert show_progress() is False  # not a terminal
    with (pytest.raises(TypeError, match=r"enabled='yes'; expected True, False or None"),
          aqi.progress_bars("yes")):  # type: ignore[arg-type]  # fmt: skip
        pass


@pytest.mark.parametrize(("rows", "shown"), [(None, True), (ROWS_FOR_A_BAR, False),
                                             (ROWS_FOR_A_BAR + 1, True)])  # fmt: skip
def test_bar_over_rows_and_one_at_a_time(rows: Any, shown: bool, capsys: Any) -> None:
    with aqi.progress_bars(True):
        outer = bar(range(3), desc="outer", total=3, rows=rows)
        items = []
        for i in outer:
            items.append(i)
            items += list(bar(range(2), desc="inner", total=2))  # inside a bar: silent
        assert list(bar(range(2), desc="after", total=2)) == [0, 1]  # the outer one closed
    err = capsys.readouterr().err
    assert items == [0, 0, 1, 1, 0, 1, 2, 0, 1]
    assert ("outer" in err) is shown and "inner" not in (err if shown else "") and "after" in err


def test_resampling_bars_show_over_many_rows_and_change_nothing(capsys: Any) -> None:
    rng = np.random.default_rng(0)
    n = ROWS_FOR_A_BAR + 2
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, 4)) + y[:, None]
    kw = {"n_boot": 40, "n_perm": 20, "seed": 3}
    with aqi.progress_bars(True):
        shown = alignment_quality_index(X, y, **kw)
    err = capsys.readouterr().err
    assert "bootstrap: " in err and "/40 " in err and "permutation null: " in err
    with aqi.progress_bars(False):
        quiet = alignment_quality_index(X, y, **kw)
    assert capsys.readouterr().err == ""
    assert shown == quiet  # the bar only watches the same chunks go by
    with aqi.progress_bars(True):  # few rows: well under a second, no bar
        alignment_quality_index(X[: ROWS_FOR_A_BAR - 2], y[: ROWS_FOR_A_BAR - 2], **kw)
    assert capsys.readouterr().err == ""


def test_profile_shows_one_bar_per_layer_not_nested_bootstraps(
    tmp_path: Path, capsys: Any
) -> None:
    rng = np.random.default_rng(1)
    n = ROWS_FOR_A_BAR + 2
    y = np.repeat(["safe", "unsafe"], n // 2)
    arrays = {f"L{i}": rng.normal(size=(n, 3)) + i * (y == "unsafe")[:, None] for i in range(2)}
    with aqi.store_from_arrays(tmp_path / "s.h5", arrays, labels=y) as store, \
            aqi.progress_bars(True):  # fmt: skip
        prof = aqi.score(store, n_boot=10, n_perm=5, lexical_control=False)
    err = capsys.readouterr().err
    assert "AQI per layer: " in err and "/2 " in err and "bootstrap" not in err
    assert [r.layer for r in prof.layers] == ["L0", "L1"]
