"""Models dispatched by accelerate (``device_map``): layers offloaded or spread over devices.

On the CPU, a ``device_map`` that offloads blocks to disk puts accelerate's own hooks on
them (weights are moved in for each forward): capture must give the plain model's rows.
With two or more GPUs, blocks split across devices are pooled where they run and give
the single-device rows; that case is skipped where fewer than two GPUs are visible.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import aqi

pytest.importorskip("accelerate")

N_LAYERS = 3  # the tiny Llama of tests/conftest.py


@pytest.fixture(scope="module")
def tiny_dir(tiny_factory: Any, tmp_path_factory: Any) -> Path:
    model, tok = tiny_factory("llama")
    d = tmp_path_factory.mktemp("tiny-llama-dm")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _capture(model: Any, tok: Any, prompts: Any, path: Path) -> dict[str, np.ndarray]:
    with aqi.capture(model, tok, prompts, path, layers="all", pooling=("mean", "last"),
                     writing=aqi.Writing(batch_size=4, progress=False)) as s:  # fmt: skip
        return {f"{la}/{p}": s.activations(la, p) for la in s.layers for p in s.poolings}


def _compare(got: dict[str, np.ndarray], ref: dict[str, np.ndarray], atol: float) -> None:
    assert got.keys() == ref.keys()
    for k, v in ref.items():
        np.testing.assert_allclose(got[k], v, atol=atol, rtol=0, err_msg=k)


def test_blocks_offloaded_to_disk_by_accelerate(
    tiny_dir: Path, small_prompts: Any, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    plain, tok = aqi.load_model(tiny_dir, device="cpu")
    ref = _capture(plain, tok, small_prompts, tmp_path / "plain.h5")
    device_map = {"model.embed_tokens": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu",
                  "lm_head": "cpu", "model.layers.0": "cpu"}  # fmt: skip
    device_map.update({f"model.layers.{i}": "disk" for i in range(1, N_LAYERS)})
    model = AutoModelForCausalLM.from_pretrained(
        tiny_dir, device_map=device_map, offload_folder=str(tmp_path / "offload"),
        dtype=torch.float32,
    ).eval()  # fmt: skip
    assert hasattr(model.model.layers[1], "_hf_hook")  # accelerate moves its weights in
    got = _capture(model, tok, small_prompts, tmp_path / "offloaded.h5")
    _compare(got, ref, atol=1e-5)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two or more CUDA devices")
def test_blocks_split_over_two_gpus_pool_on_their_device(
    tiny_dir: Path, small_prompts: Any, tmp_path: Path
) -> None:
    single, tok = aqi.load_model(tiny_dir, device="cuda:0", dtype="float32")
    ref = _capture(single, tok, small_prompts, tmp_path / "one.h5")
    half = (N_LAYERS + 1) // 2
    device_map = {"model.embed_tokens": 0, "model.rotary_emb": 0, "model.norm": 1, "lm_head": 1}
    device_map.update({f"model.layers.{i}": 0 if i < half else 1 for i in range(N_LAYERS)})
    split, _ = aqi.load_model(tiny_dir, device_map=device_map, dtype="float32")
    hooks = aqi.ActivationHooks(split, "blocks", "mean")
    ids = tok("hello there", return_tensors="pt").input_ids.to("cuda:0")
    with hooks:
        pooled = hooks.run(ids)
    devices = [pooled[la]["mean"].device.index for la in hooks.layer_names]
    assert devices == [0 if i < half else 1 for i in range(N_LAYERS)]  # pooled where it ran
    _compare(_capture(split, tok, small_prompts, tmp_path / "split.h5"), ref, atol=1e-4)
