"""Activation capture: labelled prompts in, layer-wise pooled activations out (resumable HDF5)."""

from ..jobs.lock import StoreLockedError
from ..prompts.batching import EncodedPrompt
from ..prompts.encoding import PromptEncoder
from ..prompts.prompt_set import (
    LABELS,
    LITMUS_AXIOMS,
    Prompt,
    PromptSet,
    bundled_prompts,
    load_prompts,
)
from ..prompts.public_sets import (
    PUBLIC_SETS,
    PublicSet,
    load_prompt_set,
    prompt_sets,
    require_both_classes,
)
from ..prompts.spans import DEFAULT_SPANS, SPAN_ALIASES, SPANS, canonical_span, check_spans
from .capture import CaptureInterrupted, capture
from .distributed import current_shard, merge_shards, shard_path
from .hooks import ActivationHooks
from .layers import (
    ARCHITECTURES,
    Architecture,
    LayerRef,
    ModelArchitecture,
    find_architecture,
    resolve_layers,
)
from .pairing import pair_by_id, shared_layers
from .pooling import POOLINGS, SpanMask, pool
from .store import FORMAT_VERSION, ActivationStore, LayerInfo, open_store
from .writer import StoreWriter, check_not_input, check_store_target, store_from_arrays

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_SPANS",
    "FORMAT_VERSION",
    "LABELS",
    "LITMUS_AXIOMS",
    "POOLINGS",
    "PUBLIC_SETS",
    "SPANS",
    "SPAN_ALIASES",
    "ActivationHooks",
    "ActivationStore",
    "Architecture",
    "CaptureInterrupted",
    "EncodedPrompt",
    "LayerInfo",
    "LayerRef",
    "ModelArchitecture",
    "Prompt",
    "PromptEncoder",
    "PromptSet",
    "PublicSet",
    "SpanMask",
    "StoreLockedError",
    "StoreWriter",
    "bundled_prompts",
    "canonical_span",
    "capture",
    "check_not_input",
    "check_spans",
    "check_store_target",
    "current_shard",
    "find_architecture",
    "load_prompt_set",
    "load_prompts",
    "merge_shards",
    "open_store",
    "pair_by_id",
    "pool",
    "prompt_sets",
    "require_both_classes",
    "resolve_layers",
    "shard_path",
    "shared_layers",
    "store_from_arrays",
]
