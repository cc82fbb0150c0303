"""How an audit run does its work: :class:`Running`, one value for the settings of
:func:`aqi.audit_models`'s generation and capture, its progress display and what it may
replace."""

from __future__ import annotations

from dataclasses import dataclass

from .._settings import check_bool, check_positive_int
from ..prompts.encoding import MAX_PROMPT_TOKENS

__all__ = ["Running"]


@dataclass(frozen=True, kw_only=True)
class Running:
    """How :func:`aqi.audit_models` does its work: batches, rendering, response length,
    progress, and what it may replace or make again.

    Parameters
    ----------
    batch_size : int, default 16
        Prompts per generation and capture batch.
    chat : bool, optional
        Render with the chat template (default: when the tokenizer has one).
    max_new_tokens : int, optional
        Greedy tokens per response (default ``JUDGE_NEW_TOKENS``, 64: what the judge was
        validated on).
    max_prompt_tokens : int or None, default MAX_PROMPT_TOKENS (4096)
        The per-prompt token limit of generation and capture: a longer prompt is refused,
        naming it and the limit, before any forward pass. ``None``: no limit.
    progress : bool, optional
        The run's progress display (default: on a terminal outside CI).
    overwrite : bool, default False
        Replace an existing report (or the JSON beside it) that aqi did not write.
    rebuild : bool, default False
        Make again a reused artefact of the work folder (responses, store) whose content
        no longer matches the hash recorded when it was made; without it such a file is
        refused, naming it.
    response_text : bool, default True
        Show the first line of each response in the report's *What changed* section
        (``False``: ids, categories and prompt texts only, in the HTML and the JSON).

    Raises
    ------
    aqi._errors.ArgumentError
        A field that is not what it may be, named with its value and what is accepted.

    Examples
    --------
    >>> import aqi
    >>> aqi.Running(batch_size=8, progress=False).max_prompt_tokens
    4096
    >>> aqi.Running(max_new_tokens=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: max_new_tokens=0; expected a positive int or None (64, ...)
    """

    batch_size: int = 16
    chat: bool | None = None
    max_new_tokens: int | None = None
    max_prompt_tokens: int | None = MAX_PROMPT_TOKENS
    progress: bool | None = None
    overwrite: bool = False
    rebuild: bool = False
    response_text: bool = True

    def __post_init__(self) -> None:
        check_positive_int("batch_size", self.batch_size)
        check_bool("chat", self.chat, none="when the tokenizer has a chat template")
        check_positive_int("max_new_tokens", self.max_new_tokens,
                           none="64, what the judge was validated on")  # fmt: skip
        check_positive_int("max_prompt_tokens", self.max_prompt_tokens, none="no limit")
        check_bool("progress", self.progress, none="automatic")
        for name in ("overwrite", "rebuild", "response_text"):
            check_bool(name, getattr(self, name))
