"""Direction ablation by weight orthogonalisation: erase a direction from the residual stream.

Used to validate the audit (a model whose safe/unsafe direction is removed must
be flagged; one with a random direction removed must not) and as a red-team
tool. Every weight that *writes* into the residual stream — token (and
position) embeddings, attention output projections, MLP output projections and
their biases — is projected off the unit direction ``r``:
``W ← W − r rᵀ W`` (Arditi et al., 2024). In a pre-norm transformer the
residual stream then has no component along ``r`` at any layer.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from ..activations.layers import ARCHITECTURES, find_architecture
from ..activations.store import ActivationStore

__all__ = ["ablate_direction", "mean_difference_direction", "residual_writers"]


def mean_difference_direction(
    store: ActivationStore, layer: str | int, *, pooling: str | None = None, rows: Any = None
) -> np.ndarray:
    """Unit vector from the safe centroid to the unsafe centroid at ``layer``.

    ``rows`` restricts to a training split (indices or a boolean mask).
    """
    pooling = store.resolve_pooling(pooling)
    X = store.activations(layer, pooling).astype(np.float64)
    y = store.y
    if rows is not None:
        X, y = X[rows], y[rows]
    if len(np.unique(y)) < 2:
        raise ValueError("need both safe and unsafe rows to find a direction")
    d = X[y == 1].mean(0) - X[y == 0].mean(0)
    norm = np.linalg.norm(d)
    if norm == 0:
        raise ValueError("the safe and unsafe centroids coincide; the direction is undefined")
    return d / norm


def _kind(name: str, module: nn.Module) -> str:
    if isinstance(module, nn.Embedding):
        return "embedding"
    if isinstance(module, nn.Linear):
        return "linear"
    if type(module).__name__ == "Conv1D":  # transformers' GPT-2 layer: weight is in x out
        return "conv1d"
    raise ValueError(
        f"residual writer {name!r} is a {type(module).__name__}; direction ablation handles "
        "nn.Embedding, nn.Linear and transformers' Conv1D"
    )


def residual_writers(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    """``(name, module, kind)`` of every module writing into the residual stream.

    The modules come from the architecture table
    (:data:`aqi.activations.ARCHITECTURES`, through
    :func:`aqi.activations.find_architecture`). ``kind``: ``"embedding"`` (rows are
    vectors), ``"linear"`` (``out x in`` weight) or ``"conv1d"`` (GPT-2's ``in x out``
    weight).

    Raises
    ------
    ValueError
        For a family whose writers are not in the table (post-norm encoders,
        sandwich-norm decoders, mixtures of experts, unknown architectures).
    """
    found = find_architecture(model)
    if not found.residual_writers:
        supported = sorted(k for k, a in ARCHITECTURES.items() if a.no_ablation is None)
        raise ValueError(
            f"cannot ablate a direction in {type(model).__name__}; {found.no_ablation} "
            f"(ablation supports model types {', '.join(supported)})"
        )
    modules = dict(model.named_modules())
    return [(n, modules[n], _kind(n, modules[n])) for n in found.residual_writers]


def ablate_direction(model: nn.Module, direction: Any, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (or the model itself) with ``direction`` removed from every
    residual-stream write.

    Parameters
    ----------
    model : torch.nn.Module
        A pre-norm model whose family lists its residual-stream writers in
        :data:`aqi.activations.ARCHITECTURES` (Llama, Mistral, Qwen2/3, Phi-3, OLMo,
        Gemma, GPT-2, GPT-NeoX).
    direction : array-like of shape (hidden_size,)
        Normalised internally.
    inplace : bool
        Modify ``model`` instead of a deep copy.
    """
    r = torch.as_tensor(np.asarray(direction, dtype=np.float64))
    if r.ndim != 1:
        raise ValueError(f"direction must be a 1-D vector, got shape {tuple(r.shape)}")
    writers = residual_writers(model)
    hidden = writers[0][1].weight.shape[1]
    if r.shape[0] != hidden:
        raise ValueError(f"direction has {r.shape[0]} entries but the hidden size is {hidden}")
    if not torch.isfinite(r).all() or r.norm() == 0:
        raise ValueError("direction must be finite and non-zero")
    r = r / r.norm()
    target = model if inplace else copy.deepcopy(model)
    with torch.no_grad():
        for _name, module, kind in residual_writers(target):
            W = module.weight
            rr = r.to(W.device, torch.float64)
            W64 = W.double()
            if kind == "linear":  # out x in: remove r from the output
                W64 -= torch.outer(rr, rr @ W64)
            else:  # embedding / conv1d rows are vectors in the residual space
                W64 -= torch.outer(W64 @ rr, rr)
            W.copy_(W64.to(W.dtype))
            b = getattr(module, "bias", None)
            if isinstance(b, torch.Tensor) and b.shape[-1] == hidden:
                b64 = b.double()
                b.copy_((b64 - (b64 @ rr) * rr).to(b.dtype))
    return target
