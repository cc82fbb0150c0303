"""What aqi reads off a loaded model: its family, where its inputs go, how long its context is.

Capture (:mod:`aqi.activations`) and generation (:mod:`aqi.behaviour`) both need these
facts about the model they are handed, whoever loaded it; they live here, beside
:mod:`aqi.loading`, and import only :mod:`torch`. A model is recognised by the module its
class comes from, so neither optional library (TransformerLens, nnsight) is imported.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["EXTRAS", "default_max_length", "input_device", "model_family"]

#: extra -> (import name, distribution name)
EXTRAS: dict[str, tuple[str, str]] = {
    "transformerlens": ("transformer_lens", "transformer-lens"),
    "nnsight": ("nnsight", "nnsight"),
}
_UNBOUNDED = 1_000_000  # tokenizers without a limit say 1e30; anything this large is none


def model_family(model: Any) -> str:
    """Where ``model`` comes from: ``"transformerlens"``, ``"nnsight"`` or ``"torch"``.

    Read from the modules of the model's class and its bases; nothing is imported.

    Examples
    --------
    >>> from torch import nn
    >>> model_family(nn.Linear(2, 2))
    'torch'
    """
    for cls in type(model).__mro__:
        top = (getattr(cls, "__module__", "") or "").split(".")[0]
        for extra, (module, _) in EXTRAS.items():
            if top == module:
                return extra
    return "torch"


def input_device(model: nn.Module) -> torch.device:
    """The device the model's input ids go to: its input embeddings', else its first
    parameter's that is not offloaded (``meta``), else the CPU.

    Examples
    --------
    >>> input_device(nn.Linear(2, 2))
    device(type='cpu')
    """
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    weight = getattr(emb, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.device.type != "meta":
        return weight.device
    for p in model.parameters():
        if p.device.type != "meta":
            return p.device
    return torch.device("cpu")


def _transformerlens_context(model: nn.Module) -> int | None:
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


def default_max_length(tokenizer: Any, model: nn.Module) -> int | None:
    """The longest input the model takes: the smaller of the tokenizer's and the model's
    limits (``max_position_embeddings``; a TransformerLens model's ``n_ctx``), or ``None``
    when neither says.

    Examples
    --------
    >>> class Tok:
    ...     model_max_length = 512
    >>> default_max_length(Tok(), nn.Linear(2, 2))
    512
    """
    limits = []
    tml = getattr(tokenizer, "model_max_length", None)
    if isinstance(tml, int) and 0 < tml < _UNBOUNDED:
        limits.append(tml)
    if model_family(model) == "transformerlens":
        n_ctx = _transformerlens_context(model)
        return min([*limits, n_ctx]) if n_ctx is not None else min(limits, default=None)
    config = getattr(model, "config", None)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    mpe = getattr(text, "max_position_embeddings", None)
    if isinstance(mpe, int) and mpe > 0:
        limits.append(mpe)
    return min(limits) if limits else None
