"""TransformerLens and nnsight models in :func:`aqi.capture` and :class:`ActivationHooks`.

Both are optional extras (``pip install 'aqi[transformerlens]'``, ``'aqi[nnsight]'``).
A model is recognised by the module its class comes from, so neither library is
imported unless the model is one of theirs: ``import aqi`` and Hugging Face captures
never load them.

- **nnsight** (``LanguageModel``, ``TransformersModel``, any ``NNsight`` wrapper): the
  wrapped ``torch.nn.Module`` is unwrapped and captured as it is — the same code path,
  numbers and store as the bare Hugging Face model.
- **TransformerLens** (``HookedTransformer`` before 4.0, ``TransformerBridge`` from 3.0,
  which also answers to the ``HookedTransformer`` hook names): layers are *hook points*,
  named as in ``model.hook_dict``. ``"blocks"`` and block
  indices mean ``blocks.N.hook_resid_post``, ``"embeddings"`` the residual stream
  entering block 0 (``blocks.0.hook_resid_pre``) and ``"final_norm"``
  ``ln_final.hook_normalized``; full hook names and globs (``"blocks.*.hook_resid_mid"``)
  select any other. The model is called as ``model(tokens, attention_mask=mask,
  return_type=None)``: TransformerLens masks the padding and derives positions from the
  mask, so pooled rows do not depend on padding or batch composition. The tokens are
  aqi's (the chat template or the tokenizer's own special tokens, as for a Hugging Face
  model); TransformerLens's ``prepend_bos`` only applies to string input, never here.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..model_info import EXTRAS, model_family
from .layers import LayerRef, LayerSpec, _suggest

__all__ = [
    "EXTRAS",
    "ForwardInputs",
    "as_module",
    "extra_versions",
    "hook_points",
    "model_family",
    "model_tokenizer",
    "require_extra",
    "resolve_hook_points",
    "transformerlens_identity",
    "transformerlens_inputs",
    "unwrap_nnsight",
]

_BLOCK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")
_INT_RE = re.compile(r"^-?\d+$")
# Keys of a TransformerLens config that say where or how a model was loaded, not what it is.
_VOLATILE_CFG_KEYS = {"device", "n_devices", "dtype", "model_name", "tokenizer_name", "n_params"}
ForwardInputs = Callable[[torch.Tensor, torch.Tensor], tuple[tuple[Any, ...], dict[str, Any]]]


def require_extra(extra: str, submodule: str = "") -> ModuleType:
    """Import the library of an optional extra, or say how to install it.

    Parameters
    ----------
    extra : {"transformerlens", "nnsight"}
        The extra.
    submodule : str, optional
        A submodule to import instead of the top-level package (``"hook_points"``).

    Raises
    ------
    ImportError
        When the library cannot be imported; the message names ``pip install 'aqi[extra]'``.

    Examples
    --------
    >>> require_extra("tensorflow")
    Traceback (most recent call last):
    ...
    ValueError: extra='tensorflow'; expected one of 'transformerlens', 'nnsight'
    """
    if extra not in EXTRAS:
        raise ValueError(f"extra={extra!r}; expected one of {', '.join(map(repr, EXTRAS))}")
    module, dist = EXTRAS[extra]
    name = f"{module}.{submodule}" if submodule else module
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(
            f"this model needs {dist} ({name} could not be imported: {e}); "
            f"pip install 'aqi[{extra}]'"
        ) from e


def unwrap_nnsight(model: Any) -> nn.Module:
    """The ``torch.nn.Module`` an nnsight model wraps (weights loaded if still on meta).

    Parameters
    ----------
    model : nnsight.LanguageModel or any nnsight model
        The wrapper.

    Returns
    -------
    torch.nn.Module
        The wrapped module, e.g. the Hugging Face ``LlamaForCausalLM``.

    Examples
    --------
    Needs nnsight, so not run as a doctest:

    >>> from nnsight import LanguageModel  # doctest: +SKIP
    >>> lm = LanguageModel(hf_model, tokenizer=tok)  # doctest: +SKIP
    >>> unwrap_nnsight(lm) is hf_model  # doctest: +SKIP
    True
    """
    if model_family(model) != "nnsight":
        raise TypeError(f"model must be an nnsight model, got {type(model).__name__}")
    require_extra("nnsight")

    def inner() -> Any:
        # vars(), not getattr(): an Envoy forwards unknown attributes to the wrapped module.
        state = vars(model)
        return state.get("_module", state.get("_model"))

    module = inner()
    # An undispatched model holds a weightless skeleton on the meta device: load it.
    if (
        isinstance(module, nn.Module)
        and hasattr(model, "dispatch")
        and any(p.device.type == "meta" for p in module.parameters())
    ):
        model.dispatch()
        module = inner()
    if not isinstance(module, nn.Module):
        raise TypeError(
            f"cannot find the torch module inside {type(model).__name__} (nnsight "
            f"{_version('nnsight')}); pass the wrapped model itself, e.g. model._module"
        )
    return module


def as_module(model: Any) -> nn.Module:
    """The module to hook: an nnsight model unwrapped, any other ``nn.Module`` as it is.

    Raises
    ------
    TypeError
        For anything that is not a ``torch.nn.Module``, TransformerLens or nnsight model.

    Examples
    --------
    >>> from torch import nn
    >>> net = nn.Linear(2, 2)
    >>> as_module(net) is net
    True
    """
    if model_family(model) == "nnsight":
        return unwrap_nnsight(model)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module, got {type(model).__name__}; also accepted: a "
            "TransformerLens HookedTransformer / TransformerBridge or an nnsight model"
        )
    return model


def model_tokenizer(model: Any, tokenizer: Any) -> Any:
    """``tokenizer``, or for ``None`` the model's own (TransformerLens and nnsight models).

    Raises
    ------
    ValueError
        When ``tokenizer`` is ``None`` and the model has no ``tokenizer`` attribute to use.
    """
    if tokenizer is not None:
        return tokenizer
    own = getattr(model, "tokenizer", None) if model_family(model) != "torch" else None
    if own is None:
        raise ValueError(
            f"tokenizer=None; pass the model's tokenizer (only TransformerLens and nnsight "
            f"models bring their own as model.tokenizer, and this {type(model).__name__} "
            "has none)"
        )
    return own


# -- TransformerLens -------------------------------------------------------------------


def hook_points(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: HookPoint}`` of a TransformerLens model, in ``model.hook_dict`` order.

    Raises
    ------
    ImportError
        When TransformerLens cannot be imported (``pip install 'aqi[transformerlens]'``).
    TypeError
        When ``model`` is not a TransformerLens model with hook points.
    """
    points = getattr(model, "hook_dict", None) if isinstance(model, nn.Module) else None
    if model_family(model) != "transformerlens" or not isinstance(points, dict):
        raise TypeError(
            f"model must be a TransformerLens HookedTransformer or TransformerBridge (an "
            f"nn.Module with hook_dict), got {type(model).__name__}"
        )
    hp = require_extra("transformerlens", "hook_points")
    bad = [n for n, p in points.items() if not isinstance(p, hp.HookPoint)]
    if bad:
        raise TypeError(f"{type(model).__name__}.hook_dict holds non-HookPoint entries: {bad[:3]}")
    return dict(points)


def _n_layers(model: nn.Module, points: dict[str, nn.Module]) -> int:
    n = getattr(getattr(model, "cfg", None), "n_layers", None)
    if isinstance(n, int) and n >= 0:
        return n
    found = {int(m.group(1)) for m in map(_BLOCK_RE.match, points) if m}
    return max(found) + 1 if found else 0


def _first(points: dict[str, nn.Module], *names: str) -> str | None:
    return next((n for n in names if n in points), None)


def _forward_order(names: Sequence[str]) -> dict[str, tuple[int, int, int, int]]:
    """Sort keys: embeddings, then blocks in order (resid_pre first, resid_post last), then
    the final norm and unembedding; registration order inside each group."""
    keys = {}
    for i, name in enumerate(names):
        m = _BLOCK_RE.match(name)
        if m:
            leaf = m.group(2)
            inner = 1
            if leaf in ("hook_resid_pre", "hook_in"):
                inner = 0
            elif leaf in ("hook_resid_post", "hook_out"):
                inner = 2
            keys[name] = (1, int(m.group(1)), inner, i)
        elif name.split(".")[0] in ("ln_final", "unembed", "hook_unembed"):
            keys[name] = (2, 0, 0, i)
        else:
            keys[name] = (0, 0, 0, i)
    return keys


@dataclass(frozen=True)
class _Hooks:
    """A model's hook points as :func:`resolve_hook_points` selects from them."""

    model: str  # the model's class name, for messages
    points: dict[str, Any]
    blocks: list[str]
    aliases: dict[str, str | None]
    span: str  # "N blocks: first … last", for messages

    @property
    def names(self) -> list[str]:
        return list(self.points)

    def select(self, item: Any) -> list[str]:
        """The hook names one item of ``layers`` selects."""
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise TypeError(f"layer {item!r}: expected a str or int, got {type(item).__name__}")
        n = len(self.blocks)
        if isinstance(item, int) or _INT_RE.match(item):
            i = int(item)
            if not -n <= i < n:
                raise ValueError(
                    f"layer index {item!r} out of range: {self.model} has {n} blocks "
                    f"({self.span}); use -{n} … {n - 1}"
                )
            return [self.blocks[i]]
        if item == "blocks":
            return list(self.blocks)
        if item in self.aliases:
            target = self.aliases[item]
            if target is None:
                raise ValueError(f"layer {item!r}: {self.model} has no such hook point")
            return [target]
        if item == "all":
            ends = (self.aliases["embeddings"], *self.blocks, self.aliases["final_norm"])
            return [x for x in ends if x is not None]
        if any(ch in item for ch in "*?["):
            hits = [h for h in self.names if fnmatch.fnmatchcase(h, item)]
            if not hits:
                raise ValueError(f"layer glob {item!r} matches no hook point"
                                 f"{_suggest(item, self.names)} ({self.span})")
            return hits
        if item in self.points:
            return [item]
        hint = ""
        if "hook_resid" in item and not any("hook_resid" in h for h in self.names):
            hint = "; call model.enable_compatibility_mode() for HookedTransformer names"
        raise ValueError(
            f"hook point {item!r} not found{_suggest(item, self.names)} ({self.span}){hint}"
        )


def resolve_hook_points(model: nn.Module, spec: LayerSpec = "blocks") -> list[LayerRef]:
    """Resolve a layer spec to the hook points of a TransformerLens model.

    Parameters
    ----------
    model : HookedTransformer or TransformerBridge
        The model. Both name a block's output ``blocks.N.hook_resid_post`` (a bridge also
        ``blocks.N.hook_out``, used when the former is missing).
    spec : str, int or sequence of them, default "blocks"
        ``"blocks"`` (every ``blocks.N.hook_resid_post``), a block index (``int`` or
        ``"3"``; negative counts from the end), ``"embeddings"``
        (``blocks.0.hook_resid_pre``), ``"final_norm"`` (``ln_final.hook_normalized``),
        ``"all"`` (those three), a hook name or a glob of hook names.

    Returns
    -------
    list of LayerRef
        Unique hook points in forward order; ``module`` is the ``HookPoint``.

    Raises
    ------
    ValueError
        On an unknown hook name (with close matches), a glob that matches nothing, an
        out-of-range block index or an empty spec.

    Examples
    --------
    Needs TransformerLens, so not run as a doctest:

    >>> from transformer_lens.config import TransformerBridgeConfig  # doctest: +SKIP
    >>> from transformer_lens.model_bridge import TransformerBridge  # doctest: +SKIP
    >>> cfg = TransformerBridgeConfig(d_model=32, d_head=8, n_heads=4, n_layers=2, n_ctx=64,
    ...                               d_vocab=100, act_fn="gelu")  # doctest: +SKIP
    >>> bridge = TransformerBridge.boot_native(cfg)  # doctest: +SKIP
    >>> refs = resolve_hook_points(bridge, [-1, "blocks.0.hook_resid_p*"])  # doctest: +SKIP
    >>> [r.name for r in refs]  # doctest: +SKIP
    ['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']
    """
    points = hook_points(model)
    names = list(points)
    n = _n_layers(model, points)
    blocks = [
        _first(points, f"blocks.{i}.hook_resid_post", f"blocks.{i}.hook_out") for i in range(n)
    ]
    if None in blocks:
        raise ValueError(
            f"{type(model).__name__} has no residual-stream hook for block "
            f"{blocks.index(None)} (blocks.N.hook_resid_post or blocks.N.hook_out)"
        )
    block_names: list[str] = [b for b in blocks if b is not None]
    aliases = {
        "embeddings": _first(points, "blocks.0.hook_resid_pre", "blocks.0.hook_in"),
        "final_norm": _first(points, "ln_final.hook_normalized"),
    }
    span = f"{n} blocks: {block_names[0]} … {block_names[-1]}" if block_names else "no blocks"
    if spec is None:
        spec = "blocks"
    items: list[Any] = [spec] if isinstance(spec, (str, int)) else list(spec)
    if not items:
        raise ValueError("layers is empty; pass 'blocks', 'all', block indices or hook names")
    selected: list[str] = []
    hooks = _Hooks(type(model).__name__, points, block_names, aliases, span)
    for item in items:
        selected.extend(hooks.select(item))
    order = _forward_order(names)

    def ref(name: str) -> LayerRef:
        if name in block_names:
            return LayerRef(name, points[name], "block", block_names.index(name))
        for role, target in aliases.items():
            if name == target:
                return LayerRef(name, points[name], role)
        return LayerRef(name, points[name], "module")

    return [ref(h) for h in sorted(set(selected), key=order.__getitem__)]


def transformerlens_inputs(device: torch.device) -> ForwardInputs:
    """How :func:`aqi.capture` calls a TransformerLens model on one padded batch.

    Tokens go in as a tensor (so no ``prepend_bos``), the mask as ``attention_mask``
    (padding masked, positions derived from it); ``return_type=None``: the hooks collect,
    nothing is returned.
    """

    def inputs(ids: torch.Tensor, attn: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (ids.to(device),), {"attention_mask": attn.to(device), "return_type": None}

    return inputs


def transformerlens_identity(model: nn.Module) -> dict[str, Any]:
    """Config hash, name, block count and context length of a TransformerLens model."""
    cfg = getattr(model, "cfg", None)
    d = cfg.to_dict() if hasattr(cfg, "to_dict") else {}
    d = {k: v for k, v in d.items() if k not in _VOLATILE_CFG_KEYS}
    n_ctx = getattr(cfg, "n_ctx", None)
    return {
        "config_sha256": (
            hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()
            if d
            else None
        ),
        "name": str(getattr(cfg, "model_name", "") or type(model).__name__),
        "architecture": getattr(cfg, "original_architecture", None)
        or getattr(cfg, "architecture", None),
        "n_blocks": _n_layers(model, hook_points(model)),
        "n_ctx": n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None,
    }


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def extra_versions(family: str) -> dict[str, str]:
    """The version of the library a model came from (empty for plain torch models)."""
    if family not in EXTRAS:
        return {}
    dist = EXTRAS[family][1]
    return {dist: _version(dist)}
