"""Resolve layer specifications against a model's module tree.

A layer spec names the modules whose outputs are captured:

- ``"blocks"`` (the default): every transformer block — the residual stream
  after each block;
- ``"all"``: the embedding output, every block and the final norm — the same
  positions as Hugging Face's ``output_hidden_states`` plus the raw output of
  the last block (HF reports the last block *after* the final norm);
- ``"embeddings"`` / ``"final_norm"``: those single modules;
- an ``int``: a block index (negative counts from the end);
- an exact module name (``"model.layers.5"``) or a glob
  (``"model.layers.*.mlp"``);
- a list mixing any of these.

Blocks, embeddings and the final norm are found through one architecture table
of common Hugging Face families (:data:`ARCHITECTURES`), which also lists the
modules that write into the residual stream (used by
:func:`aqi.probes.ablate_direction`); unknown architectures fall back to the
longest ``nn.ModuleList`` of identical modules, and the store records what was read.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "LayerRef",
    "LayerSpec",
    "ModelArchitecture",
    "find_architecture",
    "resolve_layers",
]

LayerSpec = str | int | Sequence[str | int] | None


@dataclass(frozen=True)
class Architecture:
    """Where a family keeps its modules, as name suffixes.

    Attributes
    ----------
    blocks : str
        The ``nn.ModuleList`` of transformer blocks.
    embeddings, final_norm : str or None
        The module whose output is the embedding output (what
        ``layers="embeddings"`` captures) and the final norm.
    embedding_writers : tuple of str
        The embedding tables that write into the residual stream (token and, where
        learned, position embeddings).
    block_writers : tuple of str
        Per block, relative to it: the modules that add into the residual stream
        (attention and MLP output projections).
    no_ablation : str or None
        Why :func:`aqi.probes.ablate_direction` does not apply to the family
        (``None`` when the writers are listed).
    """

    blocks: str
    embeddings: str | None
    final_norm: str | None
    embedding_writers: tuple[str, ...] = ()
    block_writers: tuple[str, ...] = ()
    no_ablation: str | None = None

    def __post_init__(self) -> None:
        has_writers = bool(self.embedding_writers) and bool(self.block_writers)
        if has_writers == (self.no_ablation is not None):
            raise ValueError(
                "an Architecture lists its residual-stream writers (embedding_writers and "
                "block_writers) or says why ablation does not apply (no_ablation), not both "
                f"or neither; got {self!r}"
            )


_POST_NORM = (
    "post-norm — a LayerNorm after each residual addition re-normalises the stream, "
    "so orthogonalising its writers would not remove the direction"
)
_SANDWICH_NORM = (
    "sandwich norms — attention and MLP outputs pass through a norm with a learned scale "
    "before joining the residual stream, so orthogonalising the projections would not "
    "remove the direction"
)
_MOE = "mixture of experts — the experts' output weights are not supported yet"
_DECODER = Architecture(
    blocks="layers",
    embeddings="embed_tokens",
    final_norm="norm",
    embedding_writers=("embed_tokens",),
    block_writers=("self_attn.o_proj", "mlp.down_proj"),
)
_DECODER_SANDWICH = replace(
    _DECODER, embedding_writers=(), block_writers=(), no_ablation=_SANDWICH_NORM
)
_DECODER_MOE = replace(_DECODER, embedding_writers=(), block_writers=(), no_ablation=_MOE)
_ENCODER = Architecture(
    blocks="encoder.layer", embeddings="embeddings", final_norm=None, no_ablation=_POST_NORM
)

#: model_type -> where blocks, embeddings, final norm and residual-stream writers live
#: (matched as name suffixes, so the same entry serves ``LlamaModel``,
#: ``LlamaForCausalLM`` and wrappers).
ARCHITECTURES: dict[str, Architecture] = {
    "llama": _DECODER,
    "mistral": _DECODER,
    "mixtral": _DECODER_MOE,
    "qwen2": _DECODER,
    "qwen3": _DECODER,
    "qwen2_moe": _DECODER_MOE,
    "qwen3_moe": _DECODER_MOE,
    "phi3": _DECODER,
    "olmo": _DECODER,
    "olmo2": _DECODER_SANDWICH,
    "gemma": _DECODER,
    "gemma2": _DECODER_SANDWICH,
    "gemma3_text": _DECODER_SANDWICH,
    # Multimodal Gemma 3: only the language model's blocks, never the vision tower's.
    "gemma3": Architecture(
        blocks="language_model.layers",
        embeddings="language_model.embed_tokens",
        final_norm="language_model.norm",
        no_ablation=_SANDWICH_NORM,
    ),
    "gpt2": Architecture(
        blocks="h",
        embeddings="drop",
        final_norm="ln_f",
        embedding_writers=("wte", "wpe"),
        block_writers=("attn.c_proj", "mlp.c_proj"),
    ),
    "gpt_neox": Architecture(
        blocks="layers",
        embeddings="emb_dropout",
        final_norm="final_layer_norm",
        embedding_writers=("embed_in",),
        block_writers=("attention.dense", "mlp.dense_4h_to_h"),
    ),
    "bert": _ENCODER,
    "roberta": _ENCODER,
    "xlm-roberta": _ENCODER,
    "deberta": _ENCODER,
    "deberta-v2": _ENCODER,
}


@dataclass(frozen=True)
class LayerRef:
    """One resolved layer: its module path, the module and what it is.

    ``role`` is ``"embeddings"``, ``"block"``, ``"final_norm"`` or ``"module"``
    (any other module); ``block`` is the block index for blocks, else ``None``.
    """

    name: str
    module: nn.Module
    role: str
    block: int | None = None


@dataclass(frozen=True)
class ModelArchitecture:
    """Where one model keeps its blocks, embedding output, final norm and residual writers.

    Attributes
    ----------
    blocks_name : str
        The block list (``"model.layers"``).
    blocks : tuple of str
        Every block, in order (``"model.layers.0"``, …).
    embeddings, final_norm : str or None
        The embedding-output module and the final norm, where known.
    source : str
        ``"table:<model_type>"`` (found through :data:`ARCHITECTURES`) or ``"heuristic"``.
    residual_writers : tuple of str
        Every module that writes into the residual stream (embedding tables, then each
        block's attention and MLP output projections); empty when unknown.
    no_ablation : str or None
        Why ``residual_writers`` is empty (``None`` when it is not).
    """

    blocks_name: str
    blocks: tuple[str, ...]
    embeddings: str | None
    final_norm: str | None
    source: str
    residual_writers: tuple[str, ...] = ()
    no_ablation: str | None = None


def _by_suffix(names: Sequence[str], suffix: str | None) -> str | None:
    if suffix is None:
        return None
    hits = [n for n in names if n == suffix or n.endswith("." + suffix)]
    # Shortest path wins: the outermost match (e.g. the text model, not a nested copy).
    return min(hits, key=len) if hits else None


def _writers(
    arch: Architecture, names: Sequence[str], blocks: Sequence[str], model_type: str
) -> tuple[tuple[str, ...], str | None]:
    """Full names of the residual writers of ``arch``, or ``()`` and why not."""
    if arch.no_ablation is not None:
        return (), f"model_type {model_type!r}: {arch.no_ablation}"
    embeds = [_by_suffix(names, e) for e in arch.embedding_writers]
    per_block = [f"{b}.{w}" for b in blocks for w in arch.block_writers]
    known = set(names)
    missing = [e for e, n in zip(arch.embedding_writers, embeds, strict=True) if n is None]
    missing += [n for n in per_block if n not in known]
    if missing:
        return (), (
            f"model_type {model_type!r}: the table's residual-stream writers are not all in "
            f"the model (missing: {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''})"
        )
    return (*(e for e in embeds if e is not None), *per_block), None


def find_architecture(model: nn.Module) -> ModelArchitecture:
    """Locate the blocks, embedding output, final norm and residual writers of ``model``.

    Hugging Face families in :data:`ARCHITECTURES` are found by ``config.model_type``;
    any other model falls back to its longest ``nn.ModuleList`` of identical modules
    (no embeddings, final norm or writers known).

    Raises
    ------
    ValueError
        When no block list can be found.

    Examples
    --------
    >>> from transformers import GPT2Config, GPT2Model
    >>> a = find_architecture(GPT2Model(GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=10)))
    >>> a.blocks, a.source
    (('h.0', 'h.1'), 'table:gpt2')
    >>> a.residual_writers[:4]
    ('wte', 'wpe', 'h.0.attn.c_proj', 'h.0.mlp.c_proj')
    """
    modules = dict(model.named_modules())
    names = list(modules)
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    arch = ARCHITECTURES.get(model_type) if model_type else None
    if arch is not None:
        blocks_name = _by_suffix(names, arch.blocks)
        if blocks_name is not None and isinstance(modules[blocks_name], nn.ModuleList):
            n = len(modules[blocks_name])
            blocks = tuple(f"{blocks_name}.{i}" for i in range(n)) if blocks_name else ()
            writers, no_ablation = _writers(arch, names, blocks, str(model_type))
            return ModelArchitecture(
                blocks_name=blocks_name,
                blocks=blocks,
                embeddings=_by_suffix(names, arch.embeddings),
                final_norm=_by_suffix(names, arch.final_norm),
                source=f"table:{model_type}",
                residual_writers=writers,
                no_ablation=no_ablation,
            )
    # Heuristic: the longest ModuleList whose children all share one class.
    best: tuple[int, str] | None = None
    for name, mod in modules.items():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0:
            kinds = {type(c) for c in mod}
            if len(kinds) == 1 and (best is None or len(mod) > best[0]):
                best = (len(mod), name)
    if best is None:
        raise ValueError(
            f"cannot find the transformer blocks of {type(model).__name__} "
            f"(model_type={model_type!r}): no nn.ModuleList of identical modules; "
            "name the modules to capture explicitly, e.g. layers=['encoder.0', 'encoder.1']"
        )
    n, blocks_name = best
    return ModelArchitecture(
        blocks_name=blocks_name,
        blocks=tuple(f"{blocks_name}.{i}" for i in range(n)),
        embeddings=None,
        final_norm=None,
        source="heuristic",
        no_ablation=(
            f"model_type {model_type!r}: not in aqi.activations.ARCHITECTURES, so its "
            "residual-stream writers are unknown"
        ),
    )


def _suggest(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _select_modules(item: Any, model: str, modules: dict[str, Any],
                    found: ModelArchitecture | None, arch_error: ValueError | None) -> list[str]:
    """The module names one item of ``layers`` selects (``model``: the class name, for
    messages; ``arch_error`` is raised when the item needs the architecture and none was
    found)."""
    if isinstance(item, bool) or not isinstance(item, (str, int)):
        raise TypeError(f"layer {item!r}: expected a str or int, got {type(item).__name__}")
    names = [n for n in modules if n]

    def arch() -> ModelArchitecture:
        if found is None:
            assert arch_error is not None  # internal invariant, not user input
            raise arch_error
        return found

    if isinstance(item, int):
        blocks = arch().blocks
        if not -len(blocks) <= item < len(blocks):
            raise ValueError(
                f"layer index {item} out of range: the model has {len(blocks)} blocks "
                f"({blocks[0]} … {blocks[-1]}); use -{len(blocks)} … {len(blocks) - 1}"
            )
        return [blocks[item]]
    if item == "blocks":
        return list(arch().blocks)
    if item in ("embeddings", "final_norm"):
        target = getattr(arch(), item)
        if target is None:
            raise ValueError(
                f"layer {item!r}: {model} has no known {item} module "
                f"(architecture found by {arch().source}); name the module explicitly"
            )
        return [target]
    if item == "all":
        a = arch()
        return [x for x in (a.embeddings, *a.blocks, a.final_norm) if x is not None]
    if any(ch in item for ch in "*?["):
        hits = [n for n in names if fnmatch.fnmatchcase(n, item)]
        if not hits:
            raise ValueError(f"layer glob {item!r} matches no module{_suggest(item, names)}")
        return hits
    if item and item in modules:
        return [item]
    blocks = found.blocks if found is not None else ()
    hint = f" ({len(blocks)} blocks: {blocks[0]} … {blocks[-1]})" if blocks else ""
    raise ValueError(f"layer {item!r} not found{_suggest(item, names)}{hint}")


def resolve_layers(model: nn.Module | Any, spec: LayerSpec = "blocks") -> list[LayerRef]:
    """Resolve a layer spec to modules, in the order they run.

    Parameters
    ----------
    model : torch.nn.Module or nnsight model
        The model (any ``nn.Module``; HF families get the architecture table). A
        TransformerLens model resolves to hook points
        (:func:`aqi.activations.adapters.resolve_hook_points`), an nnsight model to the
        modules of the model it wraps.
    spec : str, int or sequence of them, default "blocks"
        See the module docstring.

    Returns
    -------
    list of LayerRef
        Unique layers in forward order (module-registration order).

    Raises
    ------
    ValueError
        On an unknown name (with close matches), an out-of-range block index,
        a glob that matches nothing, or an empty spec.

    Examples
    --------
    >>> from transformers import GPT2Config, GPT2Model
    >>> m = GPT2Model(GPT2Config(n_layer=2, n_embd=8, n_head=2, vocab_size=10))
    >>> [r.name for r in resolve_layers(m, [0, -1])]
    ['h.0', 'h.1']
    """
    from .adapters import as_module, model_family, resolve_hook_points  # builds on this module

    model = as_module(model)  # an nnsight model: the module it wraps
    if model_family(model) == "transformerlens":
        return resolve_hook_points(model, spec)
    if spec is None:
        spec = "blocks"
    items: list[str | int] = [spec] if isinstance(spec, (str, int)) else list(spec)
    if not items:
        raise ValueError("layers is empty; pass 'blocks', 'all', block indices or module names")
    modules = dict(model.named_modules())
    order = {n: i for i, n in enumerate(modules)}
    try:
        found: ModelArchitecture | None = find_architecture(model)
        arch_error: ValueError | None = None
    except ValueError as e:  # only an error if the spec needs blocks / aliases
        found, arch_error = None, e

    selected: list[str] = []
    for item in items:
        selected.extend(_select_modules(item, type(model).__name__, modules, found, arch_error))

    def ref(name: str) -> LayerRef:
        if found is not None and name in found.blocks:
            return LayerRef(name, modules[name], "block", found.blocks.index(name))
        if found is not None and name == found.embeddings:
            return LayerRef(name, modules[name], "embeddings")
        if found is not None and name == found.final_norm:
            return LayerRef(name, modules[name], "final_norm")
        return LayerRef(name, modules[name], "module")

    return [ref(n) for n in sorted(set(selected), key=order.__getitem__)]
