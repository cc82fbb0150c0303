"""How prompts become a model's input tokens: :class:`Rendering`, one value for the
settings of the one rendering path (:class:`~aqi.prompts.encoding.PromptEncoder`)."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import ArgumentError
from .._settings import check_bool, check_positive_int
from .encoding import MAX_PROMPT_TOKENS
from .spans import DEFAULT_ONSET_TOKENS

__all__ = ["CAPTURE_ONLY", "Rendering"]

#: The fields of :class:`Rendering` that only a capture reads (the response rendered
#: after the prompt, the tokens of the response-onset span); generation refuses them
#: unless left at default.
CAPTURE_ONLY = ("include_response", "onset_tokens")


@dataclass(frozen=True, kw_only=True)
class Rendering:
    """How prompts are rendered: the template, the system message, the limits.

    One value for :func:`aqi.capture` and :func:`aqi.generate_responses`, so that a
    model's responses and its activations see the same text; checked when it is made.
    The first four fields are shared; ``include_response`` and ``onset_tokens`` are read
    by capture only, and generation refuses them unless they keep their defaults.

    Parameters
    ----------
    chat : bool, optional
        Render with the tokenizer's chat template (default: when it has one).
    system_prompt : str, optional
        A system message before the user's (chat rendering only).
    max_length : int, optional
        The context. Capture truncates a longer input (each row on its own, before
        batching), flags and warns about it; generation cuts the user's text on the left
        to leave room for ``max_new_tokens``. Default: the tokenizer's / model's limit.
    max_prompt_tokens : int or None, default MAX_PROMPT_TOKENS (4096)
        The per-prompt token limit (the user's text, without the template): a longer
        prompt is refused, naming it and the limit, before any forward pass (unless
        ``max_length``, given at or below it, truncates it). ``None``: no limit.
    include_response : bool, default False
        Capture: append each prompt's response (needs responses in the prompt set; the
        ``"response"`` and ``"response_onset"`` spans read it).
    onset_tokens : int, default 5
        Capture: tokens of the ``"response_onset"`` span.

    Raises
    ------
    aqi._errors.ArgumentError
        A field that is not what it may be, named with its value and what is accepted.

    Examples
    --------
    >>> import aqi
    >>> r = aqi.Rendering(chat=False, max_length=256)
    >>> r.chat, r.max_length, r.max_prompt_tokens
    (False, 256, 4096)
    >>> aqi.Rendering(max_prompt_tokens=0)
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: max_prompt_tokens=0; expected a positive int or None (no limit)
    """

    chat: bool | None = None
    system_prompt: str | None = None
    max_length: int | None = None
    max_prompt_tokens: int | None = MAX_PROMPT_TOKENS
    include_response: bool = False
    onset_tokens: int = DEFAULT_ONSET_TOKENS

    def __post_init__(self) -> None:
        check_bool("chat", self.chat, none="when the tokenizer has a chat template")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            raise ArgumentError("{system_prompt}; expected a string or None",
                                system_prompt=self.system_prompt)  # fmt: skip
        check_positive_int("max_length", self.max_length, none="the model's limit")
        check_positive_int("max_prompt_tokens", self.max_prompt_tokens, none="no limit")
        check_bool("include_response", self.include_response)
        check_positive_int("onset_tokens", self.onset_tokens)
