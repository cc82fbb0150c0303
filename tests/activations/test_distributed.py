"""Multi-process capture under torchrun (two gloo processes on CPU), merged by virtual datasets."""

from __future__ import annotations

import socket

import h5py
import numpy as np

import aqi
from aqi.activations import merge_shards, shard_path

from .test_resume import _arrays, run_child


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks_equals_single_process(decoder_tokenizer_dir, tmp_path):
    out = tmp_path / "dist.h5"
    torchrun = (
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
    )
    run_child(decoder_tokenizer_dir, out, launcher=torchrun)
    single = tmp_path / "single.h5"
    run_child(decoder_tokenizer_dir, single)

    shards = [shard_path(out, r, 2) for r in range(2)]
    assert all(p.is_file() for p in shards)
    with aqi.open_store(shards[0]) as s0, aqi.open_store(shards[1]) as s1:
        assert (s0.n_rows, s1.n_rows) == (60, 60)
    merged, ref = aqi.open_store(out), aqi.open_store(single)
    with h5py.File(out) as f:
        assert f["activations/model.layers.0/instruction/mean"].is_virtual
    assert merged.ids.tolist() == ref.ids.tolist()
    np.testing.assert_array_equal(merged.token_counts, ref.token_counts)
    for k, v in _arrays(ref).items():
        np.testing.assert_allclose(_arrays(merged)[k], v, atol=1e-6, rtol=0, err_msg=str(k))

    # The documented merge also writes a self-contained copy.
    copy = merge_shards(shards, tmp_path / "copy.h5", copy=True)
    with h5py.File(tmp_path / "copy.h5") as f:
        assert not f["activations/model.layers.0/instruction/mean"].is_virtual
    np.testing.assert_array_equal(copy.activations(2, "last"), merged.activations(2, "last"))
