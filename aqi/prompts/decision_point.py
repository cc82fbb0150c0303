"""The decision point of a chat template: the tokens it renders after the user's text.

:func:`decision_point_tokens` renders one probe prompt the way capture renders it and
returns the ``post_instruction`` span's tokens (:mod:`.spans`), or refuses a template
that renders none, naming and quoting it — a check for the door, before any capture.
"""

from __future__ import annotations

from typing import Any

from .encoding import PromptEncoder, _template_name
from .prompt_set import Prompt
from .spans import token_ranges

__all__ = ["decision_point_tokens"]

#: The user's text of :func:`decision_point_tokens`' probe: plain words no template rewrites.
_PROBE_TEXT = "What is the capital of France?"


def decision_point_tokens(tokenizer: Any, *, system_prompt: str | None = None) -> tuple[str, ...]:
    """The tokens a chat template renders at the decision point, one string per token.

    The decision point is the ``post_instruction`` span (:mod:`.spans`): the tokens after
    the user's text up to where the response starts — the end of the user's turn and the
    assistant's header, whatever the template writes there; pooled ``last`` it is
    t_post-inst. One probe prompt is rendered with the generation prompt, tokenized as
    :class:`PromptEncoder` tokenizes it, and the span's tokens are decoded one by one, so
    ``"".join(...)`` is the span's text. Call it where a template is set or written, before
    any capture, so that a template without a decision point is refused at the door.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
        A fast tokenizer with a chat template.
    system_prompt : str, optional
        Rendered before the user's turn, as capture would render it.

    Returns
    -------
    tuple of str
        The decoded tokens of the span, in order (never empty).

    Raises
    ------
    ValueError
        The tokenizer has no chat template, or its template renders no token between the
        user's text and the response (or changes the user's text so that it cannot be
        found): the message names the template (tokenizer, SHA-256) and quotes it.

    Examples
    --------
    SmolLM2's own template: ``decision_point_tokens(tok)`` gives ``('<|im_end|>', '\\n',
    '<|im_start|>', 'ass', 'istant', '\\n')``.
    """
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
        raise ValueError(f"tokenizer {name!r} has no chat template, so it renders no decision "
                         "point (post_instruction span); set tokenizer.chat_template to one "
                         "that renders the end of the user's turn and the assistant's header")
    encoder = PromptEncoder(tokenizer, span="post_instruction", chat=True,
                            system_prompt=system_prompt)
    rendered, regions = encoder.regions(Prompt("decision-point-probe", _PROBE_TEXT, "safe"))
    out = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True,
                    return_attention_mask=False, verbose=False)
    ranges, problems = token_ranges(out["offset_mapping"], regions, ("post_instruction",),
                                    chat=True)
    if problems:
        shown = str(template) if len(str(template)) <= 400 else f"{str(template)[:400]}…"
        raise ValueError(
            f"the {_template_name(tokenizer)} renders no decision point: "
            f"{problems['post_instruction']} (rendered: {rendered!r}); the post_instruction "
            "span needs the end of the user's turn and the assistant's header after the "
            f"user's text (Gemma 3: '<end_of_turn>\\n<start_of_turn>model\\n'); template: "
            f"{shown!r}"
        )
    a, b = ranges["post_instruction"]
    return tuple(tokenizer.decode([i]) for i in out["input_ids"][a:b])
