"""Crash safety: kill -9 part-way, read while writing, resume, compare row for row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import aqi
from aqi.activations._parts import list_parts, partial_dir

from ..conftest import interrupted_capture

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).parent / "scripts" / "capture_child.py"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_child(*args: object, launcher: tuple[str, ...] = ()) -> None:
    """Run the capture script in a fresh process (optionally under a launcher); fail loudly."""
    cmd = [sys.executable, *launcher, str(CHILD), *map(str, args)]
    done = subprocess.run(cmd, env=_env(), cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]


def _arrays(store: aqi.ActivationStore) -> dict[tuple[str, str], np.ndarray]:
    return {(la, p): store.activations(la, p) for la in store.layers for p in store.poolings}


def test_kill9_then_resume_equals_uninterrupted_run(decoder_tokenizer_dir, tmp_path):
    crashed = tmp_path / "crashed.h5"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(decoder_tokenizer_dir), str(crashed), "0.05"],
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    parts_dir = partial_dir(crashed)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if parts_dir.is_dir() and len(list_parts(parts_dir)) >= 3:
            break
        time.sleep(0.01)
    assert child.poll() is None, child.stderr.read().decode()[-2000:]

    # Readable while being written: committed rows only, metadata aligned.
    live = aqi.open_store(crashed)
    assert not live.complete and 0 < live.n_rows < live.n_total == 120
    live_ids = live.ids.tolist()
    live_mean = live.activations(0, "mean")
    assert live_mean.shape == (live.n_rows, 32) and len(live_ids) == live.n_rows
    live.close()

    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not crashed.exists()
    lock = crashed.with_name(crashed.name + ".lock")
    assert lock.exists()  # left by the dead writer: the resume below takes it over
    n_parts = len(list_parts(parts_dir))
    assert 3 <= n_parts < 15  # 120 rows / 8 per commit = 15: it really died part-way

    # Resume in a fresh process, as a user would after a crash.
    run_child(decoder_tokenizer_dir, crashed)
    clean = tmp_path / "clean.h5"
    run_child(decoder_tokenizer_dir, clean)

    a, b = aqi.open_store(crashed), aqi.open_store(clean)
    assert a.complete and a.n_rows == b.n_rows == 120
    assert a.ids.tolist() == b.ids.tolist() == list(aqi.bundled_prompts()[:120].ids)
    assert len(set(a.ids.tolist())) == 120  # no duplicated row
    np.testing.assert_array_equal(a.token_counts, b.token_counts)
    for k, v in _arrays(b).items():
        np.testing.assert_allclose(_arrays(a)[k], v, atol=1e-6, rtol=0, err_msg=str(k))
    # the rows seen while it was being written are the final rows
    pos = a.positions(live_ids)
    np.testing.assert_allclose(a.activations(0, "mean")[pos], live_mean, atol=1e-6)
    assert not parts_dir.exists() and not lock.exists()


def test_half_written_part_is_ignored_and_redone(tiny_factory, small_prompts, tmp_path):
    model, tok = tiny_factory("llama")
    p = tmp_path / "a.h5"
    ref = aqi.capture(model, tok, small_prompts, tmp_path / "ref.h5",
                      writing=aqi.Writing(commit_rows=6))  # fmt: skip
    # Interrupt a capture after two committed windows, then add a torn temporary file.
    # 2 windows of 6 rows in batches of 3, then Ctrl-C
    interrupted_capture(model, tok, small_prompts, p, stop_after=4,
                        writing=aqi.Writing(commit_rows=6, batch_size=3))  # fmt: skip
    d = partial_dir(p)
    assert [(a, b) for a, b, _ in list_parts(d)] == [(0, 6), (6, 12)]
    (d / "part-0000000012-0000000018.h5.tmp-999").write_bytes(b"torn")
    live = aqi.open_store(p)
    assert live.n_rows == 12 and not live.complete
    ids = live.ids.tolist()
    done = aqi.capture(model, tok, small_prompts, p,
                       writing=aqi.Writing(commit_rows=6, batch_size=3))  # fmt: skip
    assert done.complete and not d.exists()
    # A reader opened mid-capture still reads its rows after the parts were consolidated.
    np.testing.assert_array_equal(live.activations(0, "mean"), done.activations(0, "mean")[:12])
    assert live.ids.tolist() == ids
    live.refresh()
    assert live.complete and live.n_rows == len(small_prompts)
    live.close()
    with pytest.raises(ValueError, match="is closed"):
        live.activations(0, "mean")
    for la in ref.layers:
        np.testing.assert_allclose(
            done.activations(la, "mean"), ref.activations(la, "mean"), atol=1e-6
        )


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_part_is_named_set_aside_and_recaptured(
    tiny_factory, small_prompts, tmp_path, damage
):
    model, tok = tiny_factory("llama")
    p = tmp_path / "a.h5"
    ref = aqi.capture(model, tok, small_prompts, tmp_path / "ref.h5",
                      writing=aqi.Writing(commit_rows=6))  # fmt: skip
    # 2 windows of 6 rows in batches of 3, then Ctrl-C
    interrupted_capture(model, tok, small_prompts, p, stop_after=4,
                        writing=aqi.Writing(commit_rows=6, batch_size=3))  # fmt: skip
    assert not p.with_name("a.h5.lock").exists()  # the interrupted writer let go of its lock
    d = partial_dir(p)
    bad = d / "part-0000000006-0000000012.h5"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\0" * len(data))
    with pytest.raises(ValueError, match=rf"part file '{bad}' .*cannot be read.*re-run"):
        aqi.open_store(p).activations(0, "mean")  # a reader names the part, no raw OSError
    with pytest.warns(UserWarning, match=rf"part file '{bad}' is damaged.*captured again"):
        done = aqi.capture(model, tok, small_prompts, p,
                           writing=aqi.Writing(commit_rows=6, batch_size=3))  # fmt: skip
    assert done.complete and not d.exists()
    assert (tmp_path / "a.h5.part-0000000006-0000000012.h5.damaged").is_file()  # kept
    for la in ref.layers:
        np.testing.assert_allclose(
            done.activations(la, "mean"), ref.activations(la, "mean"), atol=1e-6
        )
