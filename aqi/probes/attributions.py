"""Token attributions (captum): which tokens push a prompt toward the unsafe cluster.

The attributed quantity is the prompt's pooled activation at ``layer`` projected on
a direction — by default the safe→unsafe mean-difference direction of a store, or a
linear probe's weight vector — ``f(x) = mean_{t ∈ span} h_t(x) · r``.
:class:`captum.attr.LayerIntegratedGradients` integrates its gradient with respect to
the token embeddings from a baseline (the prompt's tokens replaced by padding, the
chat template kept) to the input. Completeness — attributions sum to
``f(x) − f(baseline)`` up to the reported ``delta`` — is checked in the tests.
:func:`aqi.viz.plot_token_attributions` draws the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..activations.layers import resolve_layers
from ..prompts.encoding import PromptEncoder
from ..prompts.prompt_set import Prompt

__all__ = ["TokenAttribution", "token_attributions"]


@dataclass(frozen=True)
class TokenAttribution:
    """Per-token attribution of the projection on a direction at one layer."""

    text: str
    tokens: tuple[str, ...]
    scores: np.ndarray = field(repr=False)
    span: tuple[int, int]
    layer: str
    value: float
    baseline_value: float
    delta: float

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` span tokens that push hardest toward the direction (unsafe)."""
        a, b = self.span
        idx = np.argsort(-self.scores[a:b])[:k] + a
        return [(self.tokens[i], float(self.scores[i])) for i in idx]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "scores": self.scores.tolist(),
            "span": list(self.span),
            "layer": self.layer,
            "value": self.value,
            "baseline_value": self.baseline_value,
            "delta": self.delta,
        }


def token_attributions(
    model: torch.nn.Module,
    tokenizer: Any,
    text: str,
    direction: Any,
    *,
    layer: str | int,
    chat: bool | None = None,
    n_steps: int = 32,
    internal_batch_size: int | None = 8,
) -> TokenAttribution:
    """Integrated-gradients attribution of ``mean(h_layer) · direction`` to the prompt tokens.

    Parameters
    ----------
    model, tokenizer
        A Hugging Face model and its tokenizer.
    text : str
        The user prompt (rendered with the chat template when the tokenizer has one).
    direction : array-like of shape (hidden,)
        E.g. :func:`aqi.probes.mean_difference_direction` (positive = toward unsafe).
    layer : layer spec
        Where the projection is read.
    n_steps : int
        Integration steps (more = smaller completeness error ``delta``).

    Returns
    -------
    TokenAttribution
        Draw it with :func:`aqi.viz.plot_token_attributions`.
    """
    from captum.attr import LayerIntegratedGradients

    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    ref = resolve_layers(model, layer)[0]
    r = torch.as_tensor(np.asarray(direction, dtype=np.float32))
    if r.ndim != 1:
        raise ValueError(f"direction must be a 1-D vector, got shape {tuple(r.shape)}")
    device = next(model.parameters()).device
    enc, ids, base = _input_and_baseline(tokenizer, text, chat, device)
    r = r.to(device)
    captured: dict[str, torch.Tensor] = {}

    def hook(_m: Any, _a: Any, out: Any) -> None:
        captured["h"] = out[0] if isinstance(out, tuple) else out

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids))
        h = captured.pop("h")
        if h.shape[-1] != r.shape[0]:
            raise ValueError(
                f"direction has {r.shape[0]} entries but {ref.name} outputs {h.shape[-1]}"
            )
        return h[:, enc.start : enc.stop].float().mean(1) @ r

    handle = ref.module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
            attr, delta = lig.attribute(
                ids,
                baselines=base,
                n_steps=n_steps,
                return_convergence_delta=True,
                internal_batch_size=internal_batch_size,
            )
            with torch.no_grad():
                fx, fb = float(forward(ids)[0]), float(forward(base)[0])
    finally:
        handle.remove()
    scores = attr.sum(-1)[0].detach().float().cpu().numpy()
    tokens = tuple(tokenizer.convert_ids_to_tokens(enc.input_ids))
    return TokenAttribution(text=text, tokens=tokens, scores=scores, span=(enc.start, enc.stop),
                            layer=ref.name, value=fx, baseline_value=fb,
                            delta=float(delta[0]))  # fmt: skip


def _input_and_baseline(tokenizer: Any, text: str, chat: bool | None,
                        device: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:  # fmt: skip
    """The encoded prompt, its token ids, and the baseline: the same ids with the user's
    text replaced by padding."""
    enc = PromptEncoder(tokenizer, span="user", chat=chat).encode([Prompt("x", text, "unsafe")])[0]
    ids = torch.tensor([enc.input_ids], device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    base = ids.clone()
    base[0, enc.start : enc.stop] = pad
    return enc, ids, base
