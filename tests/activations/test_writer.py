"""Writing stores safely: never destroy what is not ours, one writer per path."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest

import aqi
from aqi.activations import StoreWriter, check_not_input, merge_shards, store_from_arrays
from aqi.activations._format import LayerInfo
from aqi.activations._parts import partial_dir
from tests.conftest import write_jsonl

LABELS = ["safe", "unsafe"] * 3


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    return {"h.0": np.random.default_rng(seed).normal(size=(6, 3)).astype("f4")}


def _foreign_h5(path):
    with h5py.File(path, "w") as f:
        f["precious"] = np.arange(3)
    return path


@pytest.mark.parametrize("kind", ["jsonl", "foreign_h5"])
def test_overwrite_refuses_a_file_that_is_not_a_store(tmp_path, kind):
    p = tmp_path / "victim.h5"
    if kind == "jsonl":
        write_jsonl(p, [{"text": "keep me", "label": "safe"}])
    else:
        _foreign_h5(p)
    before = p.read_bytes()
    with pytest.raises(ValueError, match=rf"refusing to overwrite '{p}'.*not an aqi"):
        store_from_arrays(p, _arrays(), labels=LABELS, overwrite=True)
    assert p.read_bytes() == before


def test_overwrite_refuses_a_partial_folder_with_other_files(tmp_path):
    p = tmp_path / "s.h5"
    d = partial_dir(p)
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"s\.h5\.partial'.*did not write"):
        store_from_arrays(p, _arrays(), labels=LABELS, overwrite=True)
    assert (d / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_an_aqi_store_and_its_partial_folder(tmp_path):
    p = tmp_path / "s.h5"
    store_from_arrays(p, _arrays(), labels=LABELS).close()
    partial_dir(p).mkdir()
    (partial_dir(p) / "part-0000000000-0000000006.h5.tmp-1").write_bytes(b"torn")
    s = store_from_arrays(p, _arrays(seed=1), labels=LABELS, overwrite=True)
    np.testing.assert_array_equal(s.activations("h.0"), _arrays(seed=1)["h.0"])
    assert not partial_dir(p).exists()


def test_capture_refuses_to_write_over_its_prompt_file(tiny_factory, tmp_path):
    model, tok = tiny_factory("llama")
    p = write_jsonl(
        tmp_path / "p.jsonl",
        [{"text": f"prompt {i}", "label": ["safe", "unsafe"][i % 2]} for i in range(4)],
    )
    before = p.read_bytes()
    for out in (p, tmp_path / "." / "p.jsonl"):
        with pytest.raises(ValueError, match=r"is the input file .*p\.jsonl"):
            aqi.capture(model, tok, str(p), out,
                        writing=aqi.Writing(overwrite=True, progress=False))  # fmt: skip
    assert p.read_bytes() == before


def test_check_not_input_for_the_cli(tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text("")
    os.symlink(a, tmp_path / "link.jsonl")
    with pytest.raises(ValueError, match="is the input file"):
        check_not_input(tmp_path / "link.jsonl", [None, a])
    check_not_input(tmp_path / "out.h5", [a, None])  # distinct: fine


def test_merge_refuses_foreign_output_and_a_shard_as_output(tmp_path):
    shards = []
    for i in range(2):
        p = tmp_path / f"s{i}.h5"
        store_from_arrays(p, _arrays(), labels=LABELS, ids=[f"{i}-{k}" for k in range(6)]).close()
        shards.append(p)
    out = _foreign_h5(tmp_path / "out.h5")
    with pytest.raises(ValueError, match=r"refusing to overwrite .*out.h5"):
        merge_shards(shards, out)
    assert "precious" in h5py.File(out, "r")
    with pytest.raises(ValueError, match="is the input file"):
        merge_shards(shards, shards[0])
    assert not (tmp_path / "out.h5.lock").exists()


@pytest.mark.parametrize(
    ("other", "match"),
    [
        ({"h.1": np.zeros((6, 3), "f4")}, r"shard '.*s1.h5' has other layers, spans or "
                                          r"poolings than '.*s0.h5'"),
        ({"h.0": np.zeros((6, 5), "f4")}, r"layer h.0: shards disagree on the dimension \[3, 5\]"),
    ],
)  # fmt: skip
def test_merge_names_the_mismatched_shard(tmp_path, other, match):
    s0, s1 = tmp_path / "s0.h5", tmp_path / "s1.h5"
    store_from_arrays(s0, _arrays(), labels=LABELS, ids=[f"0-{k}" for k in range(6)]).close()
    store_from_arrays(s1, other, labels=LABELS, ids=[f"1-{k}" for k in range(6)]).close()
    with pytest.raises(ValueError, match=match):
        merge_shards([s0, s1], tmp_path / "merged.h5")
    assert not (tmp_path / "merged.h5").exists()  # nothing half-written is left behind


def test_merge_of_bring_your_own_shards_and_a_settings_mismatch(tmp_path):
    shards = []
    for i in range(2):  # each shard holds other rows and data: that is what shards are
        p = tmp_path / f"s{i}.h5"
        store_from_arrays(p, _arrays(i), labels=LABELS, ids=[f"{i}-{k}" for k in range(6)],
                          provenance={"note": str(i)}).close()  # fmt: skip
        shards.append(p)
    with merge_shards(shards, tmp_path / "merged.h5") as m:
        np.testing.assert_array_equal(m.activations("h.0"),
                                      np.concatenate([_arrays(0)["h.0"], _arrays(1)["h.0"]]))
    with h5py.File(shards[1], "r+") as f:  # as if captured with another max_length
        prov = json.loads(f.attrs["provenance"])
        prov["identity"]["max_length"] = 64
        f.attrs["provenance"] = json.dumps(prov)
    with pytest.raises(ValueError, match=r"other settings or another model than '.*s0.h5' "
                                         r"\(max_length: None vs 64\)"):  # fmt: skip
        merge_shards(shards, tmp_path / "merged2.h5")


def _writer(path, **kw):
    rows = aqi.PromptSet.from_records(
        [{"text": f"t{i}", "label": lab} for i, lab in enumerate(LABELS)]
    )
    layers = [LayerInfo("h.0", "block", 0, "residual (block output)")]
    return StoreWriter(path, rows, {"identity": {"x": 1}}, layers, ["mean"], **kw)


def test_second_writer_on_one_path_is_refused_naming_the_lock(tmp_path):
    p = tmp_path / "s.h5"
    first = _writer(p)
    lock = tmp_path / "s.h5.lock"
    with pytest.raises(RuntimeError, match=rf"another writer holds '{lock}' \(pid {os.getpid()}"):
        _writer(p)
    first.commit(0, {("h.0", "given", "mean"): np.ones((6, 2))})
    first.finalize().close()
    assert not lock.exists()
    with _writer(p) as again:  # lock released: a re-run returns the finished store
        assert again.finished


def test_lock_of_a_live_process_or_other_host_is_respected(tmp_path):
    p = tmp_path / "s.h5"
    lock = tmp_path / "s.h5.lock"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(json.dumps({"pid": child.pid, "host": socket.gethostname()}))
        with pytest.raises(RuntimeError, match=f"pid {child.pid} on host"):
            _writer(p)
    finally:
        child.kill()
        child.wait()
    lock.write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RuntimeError, match="pid 1 on host elsewhere"):
        _writer(p)
    assert not partial_dir(p).exists()  # refused before touching anything


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    p = tmp_path / "s.h5"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "s.h5.lock").write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname()})
    )
    with pytest.warns(UserWarning, match=rf"stale lock .*pid {dead.pid}"):
        w = _writer(p)
    w.close()
    assert not (tmp_path / "s.h5.lock").exists()


def test_failed_open_releases_the_lock(tmp_path):
    p = tmp_path / "s.h5"
    p.write_text("not a store")
    with pytest.raises(ValueError, match="not an HDF5 file"):
        _writer(p)
    assert not (tmp_path / "s.h5.lock").exists()
