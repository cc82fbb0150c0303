"""aqi — audit the alignment of language models from the inside.

The verbs a notebook needs are here; the machinery lives in the subpackages
(:mod:`aqi.activations`, :mod:`aqi.indices`, :mod:`aqi.probes`).

Examples
--------
>>> import aqi
>>> ps = aqi.bundled_prompts()
>>> ps
PromptSet 'aqi-litmus-pairs'(294 prompts: 147 safe, 147 unsafe, 7 categories)
"""

from ._version import __version__
from .activations import (
    ActivationHooks,
    ActivationStore,
    Prompt,
    PromptSet,
    bundled_prompts,
    capture,
    load_prompts,
    merge_shards,
    open_store,
    pair_by_id,
    resolve_layers,
    store_from_arrays,
)
from .audit import AuditReport, audit
from .behaviour import (
    RefusalJudge,
    Responses,
    compare_refusal,
    generate_responses,
    load_responses,
    refusal_rate,
    with_responses,
)
from .checks import AuditThresholds
from .indices import (
    AQIProfile,
    AQIResult,
    Comparison,
    alignment_quality_index,
    compare,
    learn_layer_weights,
    score,
)
from .loading import load_model

__all__ = [
    "AQIProfile",
    "AQIResult",
    "ActivationHooks",
    "ActivationStore",
    "AuditReport",
    "AuditThresholds",
    "Comparison",
    "Prompt",
    "PromptSet",
    "RefusalJudge",
    "Responses",
    "__version__",
    "alignment_quality_index",
    "audit",
    "bundled_prompts",
    "capture",
    "compare",
    "compare_refusal",
    "generate_responses",
    "learn_layer_weights",
    "load_model",
    "load_prompts",
    "load_responses",
    "merge_shards",
    "open_store",
    "pair_by_id",
    "refusal_rate",
    "resolve_layers",
    "score",
    "store_from_arrays",
    "with_responses",
]
