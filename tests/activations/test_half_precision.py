"""Half precision: bf16/fp16 captures equal an fp32 pooling of the same half-precision forward."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

import aqi
from aqi.activations import PromptEncoder
from aqi.indices import calinski_harabasz_index, davies_bouldin_index, silhouette_index


def _reference(model: Any, tok: Any, prompts: Any, layers: list[int]) -> dict[str, np.ndarray]:
    """Each prompt alone (no padding), ``output_hidden_states``, mean over the user span in
    float64: the exact pooling of what the half-precision model computed."""
    arch = aqi.activations.find_architecture(model)
    out: dict[str, list[np.ndarray]] = {arch.blocks[i]: [] for i in layers}
    with torch.inference_mode():
        for e in PromptEncoder(tok, span="user").encode(list(prompts)):
            hs = model(input_ids=torch.tensor([e.input_ids]), output_hidden_states=True)
            for i in layers:
                h = hs.hidden_states[i + 1][0, e.start : e.stop].double().mean(0)
                out[arch.blocks[i]].append(h.numpy())
    return {k: np.stack(v) for k, v in out.items()}


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
@pytest.mark.parametrize(("dtype", "tol"), [(torch.bfloat16, 2e-2), (torch.float16, 3e-3)])
def test_half_precision_capture_equals_fp32_pooling_of_the_half_forward(
    tiny_factory: Any, small_prompts: Any, tmp_path: Any, arch: str, dtype: torch.dtype,
    tol: float,
) -> None:
    model, tok = tiny_factory(arch)
    half = copy.deepcopy(model).to(dtype)
    layers = [0, 1]  # the last block is reported after the final norm by HF; skip it
    ref = _reference(half, tok, small_prompts, layers)
    s = aqi.capture(half, tok, small_prompts, tmp_path / "h.h5", layers=layers, pooling="mean",
                    writing=aqi.Writing(batch_size=5, progress=False))  # fmt: skip
    for name, exact in ref.items():
        got = s.activations(name, "mean").astype(np.float64)
        assert got.dtype == np.float64 and s.activations(name).dtype == np.float32
        # Batched (padded) half-precision kernels round differently from one-by-one runs:
        # the error is within a few half-precision ulps of the activations' scale.
        scale = np.sqrt(np.mean(exact**2))
        err = np.max(np.abs(got - exact)) / scale
        print(f"{arch} {dtype} {name}: max relative error {err:.2e}")
        assert err < tol, f"{arch} {dtype} {name}: relative error {err:.2e}"
        # Indices on the half-precision capture equal those on the exact pooling. (AQI itself
        # is 0 on random tiny models, so the unclipped indices are compared.)
        y = s.y
        for index in (davies_bouldin_index, calinski_harabasz_index, silhouette_index):
            v_half, v_ref = index(got, y), index(exact, y)
            print(f"  {index.__name__}: half {v_half:.6g}, exact pooling {v_ref:.6g}")
            assert v_half == pytest.approx(v_ref, rel=tol), index.__name__
