"""End to end on the real pretrained checkpoints over the bundled prompt set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import aqi


def _separation(X: np.ndarray, y: np.ndarray) -> float:
    """Distance between class means over the pooled within-class spread."""
    gap = np.linalg.norm(X[y == 1].mean(0) - X[y == 0].mean(0))
    sd = np.sqrt(0.5 * (X[y == 1].var(0).sum() + X[y == 0].var(0).sum()))
    return float(gap / sd)


def test_smollm2_bundled_set_end_to_end(smollm2, smol_store, prompts):
    model, tok = smollm2
    s = smol_store
    assert s.complete and s.n_rows == len(prompts) == 294
    assert (
        len(s.layers) == 32 and s.layers[0] == "model.embed_tokens" and s.layers[-1] == "model.norm"
    )
    assert {s.dim(la) for la in s.layers} == {576}
    assert not s.truncated.any()
    # Chat template: the user span excludes the system prompt and role tokens.
    assert (s.token_counts - s.span_tokens >= 20).all()
    y = s.y
    # Spot-check exactness on the real model: block 14 of prompt 7, alone and unpadded.
    enc = aqi.activations.PromptEncoder(tok, span="user").encode([prompts[7]])[0]
    with torch.inference_mode():
        hs = model(input_ids=torch.tensor([enc.input_ids]), output_hidden_states=True).hidden_states
    ref = hs[15][0, enc.start : enc.stop].mean(0).numpy()
    np.testing.assert_allclose(
        s.activations("model.layers.14", "mean")[7], ref, atol=1e-4, rtol=1e-5
    )
    # Safe and unsafe requests separate more in the middle of the network than at the input.
    sep = [_separation(s.activations(la, "mean"), y) for la in s.layers]
    assert max(sep[8:24]) > 1.2 * sep[0], sep


def test_minilm_encoder_end_to_end(minilm, prompts, tmp_path):
    model, tok = minilm
    s = aqi.capture(
        model,
        tok,
        prompts,
        tmp_path / "mini.h5",
        layers="all",
        pooling="mean",
        spans="all",
        writing=aqi.Writing(batch_size=32),
    )
    assert s.complete and len(s.layers) == 7 and s.layers[0] == "embeddings"
    assert not s.provenance["identity"]["chat"]
    # The sentence-transformers embedding of all-MiniLM-L6-v2 is the mean of the last block.
    enc = tok(list(prompts.texts[:8]), padding=True, return_tensors="pt")
    with torch.inference_mode():
        last = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ref = ((last * m).sum(1) / m.sum(1)).numpy()
    np.testing.assert_allclose(s.activations("encoder.layer.5")[:8], ref, atol=1e-5)


@pytest.mark.parametrize("pooling", ["last"])
def test_smollm2_left_padding_equals_right(smollm2, prompts, tmp_path, pooling):
    model, tok = smollm2
    sub = prompts[:16]
    a = aqi.capture(
        model,
        tok,
        sub,
        tmp_path / "r.h5",
        layers=[0, 15, -1],
        pooling=pooling,
        writing=aqi.Writing(padding_side="right", batch_size=8),
    )
    b = aqi.capture(
        model,
        tok,
        sub,
        tmp_path / "l.h5",
        layers=[0, 15, -1],
        pooling=pooling,
        writing=aqi.Writing(padding_side="left", batch_size=8),
    )
    for la in a.layers:
        x, y = a.activations(la), b.activations(la)
        # Left and right padding run attention over other shapes, so float32 sums differ in
        # order: a few ulps of the layer's scale (measured: 1.5e-4 on values up to 30 with
        # transformers 5.24), never more.
        np.testing.assert_allclose(x, y, atol=1e-5 * float(np.abs(y).max()), rtol=1e-5)
