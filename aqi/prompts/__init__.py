"""The prompts room: labelled prompts, how they are read, named public sets, how they are
rendered for a model, and the spans of a rendered prompt.

Everything that turns what a user gave (a file, a set name, a DataFrame, a list) into a
:class:`PromptSet`, and a :class:`PromptSet` into token ids with span boundaries, lives
here; capture (:mod:`aqi.activations`) and generation (:mod:`aqi.behaviour`) both import
it, and it imports neither.

* :mod:`~aqi.prompts.prompt_set` — :class:`Prompt`, :class:`PromptSet`, :func:`load_prompts`,
  :func:`bundled_prompts`;
* :mod:`~aqi.prompts.readers` — JSON/JSONL/CSV records with their line numbers;
* :mod:`~aqi.prompts.public_sets` — the registry of public prompt sets (:func:`load_prompt_set`);
* :mod:`~aqi.prompts.resolve` — :func:`resolve_prompts`: whatever a user gave, made a
  :class:`PromptSet` once, at the door (the command line, ``audit_models``, the monitor);
* :mod:`~aqi.prompts.encoding` — chat-template rendering (:class:`PromptEncoder`);
* :mod:`~aqi.prompts.batching` — what the encoder returns (:class:`EncodedPrompt`) and how
  encoded prompts are batched and padded (:func:`~aqi.prompts.batching.plan_batches`,
  :func:`~aqi.prompts.batching.pad_batch`);
* :mod:`~aqi.prompts.rendering` — how prompts are rendered, as one value
  (:class:`Rendering`: template, system prompt, limits), for capture and generation;
* :mod:`~aqi.prompts.decision_point` — the check that a template renders a decision point
  (:func:`decision_point_tokens`);
* :mod:`~aqi.prompts.spans` — the span grammar (``instruction``, ``post_instruction``, ...).
"""

from .batching import EncodedPrompt
from .decision_point import decision_point_tokens
from .encoding import MAX_PROMPT_TOKENS, PromptEncoder
from .prompt_set import LABELS, LITMUS_AXIOMS, Prompt, PromptSet, bundled_prompts, load_prompts
from .public_sets import PUBLIC_SETS, PublicSet, load_prompt_set, prompt_sets, require_both_classes
from .rendering import Rendering
from .resolve import resolve_prompts
from .spans import DEFAULT_SPANS, SPAN_ALIASES, SPANS, canonical_span, check_spans

__all__ = [
    "DEFAULT_SPANS",
    "LABELS",
    "LITMUS_AXIOMS",
    "MAX_PROMPT_TOKENS",
    "PUBLIC_SETS",
    "SPANS",
    "SPAN_ALIASES",
    "EncodedPrompt",
    "Prompt",
    "PromptEncoder",
    "PromptSet",
    "PublicSet",
    "Rendering",
    "bundled_prompts",
    "canonical_span",
    "check_spans",
    "decision_point_tokens",
    "load_prompt_set",
    "load_prompts",
    "prompt_sets",
    "require_both_classes",
    "resolve_prompts",
]
