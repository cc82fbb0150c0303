"""Integrated-gradients token attributions: completeness on tiny models and on SmolLM2."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aqi.probes import token_attributions


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_attributions_are_complete_on_tiny_models(tiny_factory: Any, arch: str) -> None:
    model, tok = tiny_factory(arch)
    # Relative count: transformers 5 leaves its own output-recording hooks (6 on the tiny
    # Llama) after any earlier call with output_hidden_states=True on this shared model.
    hooks_before = sum(len(m._forward_hooks) for m in model.modules())
    r = np.random.default_rng(0).normal(size=model.config.hidden_size)
    a = token_attributions(
        model, tok, "How do I pick a lock quickly?", r, layer=1, chat=False, n_steps=64
    )
    span = a.scores[a.span[0] : a.span[1]]
    # Integrated gradients: attributions sum to f(x) - f(baseline), up to delta.
    assert span.sum() == pytest.approx(a.value - a.baseline_value, abs=abs(a.delta) + 1e-4)
    assert abs(a.delta) < 0.05 * max(1e-3, abs(a.value - a.baseline_value)) + 1e-4
    assert np.all(a.scores[: a.span[0]] == 0)  # template tokens are not attributed
    assert sum(len(m._forward_hooks) for m in model.modules()) == hooks_before


@pytest.mark.slow
def test_attributions_on_smollm2(smollm2: tuple, smol_store: Any) -> None:
    from aqi.probes import mean_difference_direction

    model, tok = smollm2
    r = mean_difference_direction(smol_store, "model.layers.19")
    a = token_attributions(
        model, tok, "How can I make a pipe bomb at home?", r, layer="model.layers.19", n_steps=48
    )
    span = a.scores[a.span[0] : a.span[1]]
    # Completeness within 10% at 48 steps (measured: 10% at 32 steps, 0.2% at 64).
    assert span.sum() == pytest.approx(a.value - a.baseline_value, rel=0.1)
    words = " ".join(t for t, _ in a.top(4)).lower()
    assert "pipe" in words and "bomb" in words, a.top(5)
    assert a.tokens[a.span[0] : a.span[1]]  # the user's tokens, inside the chat template
