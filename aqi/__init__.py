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

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from ._progress import progress_bars
from ._version import __version__

# The names below are imported on first use (PEP 562), so `import aqi` and `aqi --help`
# do not pay for torch, transformers, umap and matplotlib until a verb needs them.
_LAZY: dict[str, str] = {
    "AQIProfile": "indices",
    "AQIResult": "indices",
    "ActivationHooks": "activations",
    "ActivationStore": "activations",
    "AuditReport": "audit",
    "AuditThresholds": "checks",
    "Comparison": "indices",
    "Coverage": "coverage",
    "Decoding": "behaviour",
    "ModelSpec": "workflow",
    "Prompt": "activations",
    "PromptSet": "activations",
    "EncoderJudge": "behaviour",
    "Evidence": "audit_values",
    "Judging": "audit_values",
    "RefusalJudge": "behaviour",
    "Rendering": "prompts",
    "Responses": "behaviour",
    "Running": "workflow",
    "Scoring": "audit_values",
    "Writing": "jobs",
    "alignment_quality_index": "indices",
    "audit": "audit",
    "audit_coverage": "coverage",
    "audit_models": "workflow",
    "bundled_prompts": "activations",
    "capture": "activations",
    "compare": "indices",
    "compare_refusal": "behaviour",
    "generate_responses": "behaviour",
    "learn_layer_weights": "indices",
    "load_model": "loading",
    "load_prompt_set": "activations",
    "load_prompts": "activations",
    "load_responses": "behaviour",
    "merge_shards": "activations",
    "open_store": "activations",
    "pair_by_id": "activations",
    "prompt_sets": "activations",
    "refusal_rate": "behaviour",
    "resolve_judge": "behaviour",
    "resolve_layers": "activations",
    "score": "indices",
    "store_from_arrays": "activations",
    "with_responses": "behaviour",
}
_SUBPACKAGES = ("activations", "audit", "behaviour", "checks", "indices", "integrations",
                "loading", "probes", "report", "viz")

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .activations import (
        ActivationHooks,
        ActivationStore,
        Prompt,
        PromptSet,
        bundled_prompts,
        capture,
        load_prompt_set,
        load_prompts,
        merge_shards,
        open_store,
        pair_by_id,
        prompt_sets,
        resolve_layers,
        store_from_arrays,
    )
    from .audit import (
        AuditReport,
        audit,
    )
    from .audit_values import Evidence, Judging, Scoring
    from .behaviour import (
        Decoding,
        EncoderJudge,
        RefusalJudge,
        Responses,
        compare_refusal,
        generate_responses,
        load_responses,
        refusal_rate,
        resolve_judge,
        with_responses,
    )
    from .checks import (
        AuditThresholds,
    )
    from .coverage import Coverage, audit_coverage
    from .indices import (
        AQIProfile,
        AQIResult,
        Comparison,
        alignment_quality_index,
        compare,
        learn_layer_weights,
        score,
    )
    from .jobs import Writing
    from .loading import (
        load_model,
    )
    from .prompts import Rendering
    from .workflow import ModelSpec, Running, audit_models


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'aqi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBPACKAGES})


class _Package(types.ModuleType):
    """``aqi.audit`` is the verb, also once the submodule ``aqi.audit`` has been imported
    (the import system would otherwise set the package attribute to the module)."""

    @property
    def audit(self) -> Any:
        return importlib.import_module(".audit", __name__).audit

    @audit.setter
    def audit(self, value: Any) -> None:  # the submodule stays in sys.modules["aqi.audit"]
        pass


sys.modules[__name__].__class__ = _Package


__all__ = [
    "AQIProfile",
    "AQIResult",
    "ActivationHooks",
    "ActivationStore",
    "AuditReport",
    "AuditThresholds",
    "Comparison",
    "Coverage",
    "Decoding",
    "EncoderJudge",
    "Evidence",
    "Judging",
    "ModelSpec",
    "Prompt",
    "PromptSet",
    "RefusalJudge",
    "Rendering",
    "Responses",
    "Running",
    "Scoring",
    "Writing",
    "__version__",
    "alignment_quality_index",
    "audit",
    "audit_coverage",
    "audit_models",
    "bundled_prompts",
    "capture",
    "compare",
    "compare_refusal",
    "generate_responses",
    "learn_layer_weights",
    "load_model",
    "load_prompt_set",
    "load_prompts",
    "load_responses",
    "merge_shards",
    "open_store",
    "pair_by_id",
    "progress_bars",
    "prompt_sets",
    "refusal_rate",
    "resolve_judge",
    "resolve_layers",
    "score",
    "store_from_arrays",
    "with_responses",
]
