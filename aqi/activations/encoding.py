"""Render prompts (chat template or plain text), tokenize them and locate the span to pool.

Spans are found from character offsets, so they are exact for any chat
template and tokenizer that reports offsets (every "fast" tokenizer):

- ``"all"``: every real token of the rendered input (template tokens included);
- ``"user"``: the tokens overlapping the user's text only;
- ``"response"``: the tokens overlapping the assistant response (rows need one).

Inputs longer than ``max_length`` tokens are truncated on the tokenizer's
``truncation_side``, flagged and reported; a row whose span is cut away
entirely is an error. Truncation happens per row, before any batch is
formed; :func:`plan_batches` then bounds each batch by rows and by padded
tokens.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .prompts import Prompt

__all__ = ["SPANS", "EncodedPrompt", "PromptEncoder"]

SPANS: tuple[str, ...] = ("all", "user", "response")


@dataclass(frozen=True, slots=True)
class EncodedPrompt:
    """A tokenized prompt: ids, the token span to pool ``[start, stop)``, truncation.

    ``token_type_ids`` holds the segment ids of a text pair (``text_pair=True``).
    """

    input_ids: list[int]
    start: int
    stop: int
    truncated: bool
    token_type_ids: list[int] | None = None


class PromptEncoder:
    """Turn :class:`Prompt` rows into token ids and pooling spans for one tokenizer.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
        The model's tokenizer.
    span : {"user", "all", "response"}
        Which tokens the pooling reads (see module docstring).
    chat : bool or None
        Render with the tokenizer's chat template. ``None``: when it has one.
    system_prompt : str or None
        A system message placed before the user's (chat only).
    include_response : bool
        Append each row's response as an assistant turn (chat) or after a
        newline (plain text).
    max_length : int or None
        Truncate longer inputs. ``None``: the smaller of the tokenizer's
        ``model_max_length`` and the model's ``max_position_embeddings``
        when known, as passed by :func:`aqi.capture`.
    text_pair : bool
        Plain text only: encode prompt and response as the tokenizer's text pair
        (separator and segment ids, the way sequence-pair reward models are trained)
        instead of joining them with a newline. Needs ``include_response=True`` and
        ``span="all"``.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        span: str = "user",
        chat: bool | None = None,
        system_prompt: str | None = None,
        include_response: bool = False,
        max_length: int | None = None,
        text_pair: bool = False,
    ) -> None:
        if span not in SPANS:
            raise ValueError(f"span={span!r}; expected one of {', '.join(map(repr, SPANS))}")
        if not callable(tokenizer) or not hasattr(tokenizer, "convert_tokens_to_ids"):
            raise TypeError(
                f"tokenizer must be a Hugging Face tokenizer, got {type(tokenizer).__name__}"
            )
        has_template = bool(getattr(tokenizer, "chat_template", None))
        if chat is None:
            chat = has_template
        elif chat and not has_template:
            raise ValueError(
                f"chat=True but {type(tokenizer).__name__} has no chat_template; "
                "pass chat=False to encode plain text"
            )
        if system_prompt is not None and not chat:
            raise ValueError("system_prompt needs chat rendering (chat=True)")
        if span == "response" and not include_response:
            raise ValueError(
                "span='response' needs include_response=True (aqi capture --include-response)"
            )
        if span != "all" and not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"span={span!r} needs token offsets, which {type(tokenizer).__name__} (a slow "
                "tokenizer) does not report; load the fast tokenizer or use span='all'"
            )
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"max_length={max_length!r}; expected a positive int or None")
        if text_pair and (chat or not include_response or span != "all"):
            raise ValueError(
                "text_pair=True encodes plain (prompt, response) pairs: it needs chat=False, "
                f"include_response=True and span='all'; got chat={chat}, include_response="
                f"{include_response}, span={span!r}"
            )
        self.text_pair = bool(text_pair)
        self.tokenizer = tokenizer
        self.span = span
        self.chat = bool(chat)
        self.system_prompt = system_prompt
        self.include_response = include_response
        self.max_length = max_length
        self.truncation_side = getattr(tokenizer, "truncation_side", "right")

    @staticmethod
    def template_hash(tokenizer: Any) -> str:
        """SHA-256 of the tokenizer's chat template (``""`` hashed when it has none)."""
        return hashlib.sha256(
            str(getattr(tokenizer, "chat_template", "") or "").encode()
        ).hexdigest()

    def render(self, prompt: Prompt) -> tuple[str, tuple[int, int]]:
        """The model's input text and the character range of the span to pool."""
        text, response = prompt.text, prompt.response
        if self.include_response and response is None:
            raise ValueError(
                f"prompt {prompt.id!r} has no response but include_response=True "
                "(aqi capture --include-response); give every row a 'response'"
            )
        if not self.chat:
            rendered = text + ("\n" + response if self.include_response else "")  # type: ignore[operator]
            user = (0, len(text))
            resp = (len(text) + 1, len(rendered))
        else:
            messages = []
            if self.system_prompt is not None:
                messages.append({"role": "system", "content": self.system_prompt})
            messages.append({"role": "user", "content": text})
            if self.include_response:
                messages.append({"role": "assistant", "content": response})
            rendered = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=not self.include_response
            )
            if self.span == "all":  # nothing to locate
                return rendered, (0, len(rendered))
            resp = (len(rendered), len(rendered))
            if self.include_response:
                resp = _locate(rendered, response, len(rendered), prompt.id, "response")  # type: ignore[arg-type]
            user = _locate(rendered, text, resp[0], prompt.id, "text")
        if self.span == "user":
            return rendered, user
        if self.span == "response":
            return rendered, resp
        return rendered, (0, len(rendered))

    def encode(self, prompts: Sequence[Prompt]) -> list[EncodedPrompt]:
        """Encode a batch of prompts (one tokenizer call)."""
        if self.text_pair:
            for p in prompts:
                if p.response is None:
                    raise ValueError(f"prompt {p.id!r} has no response but text_pair=True")
            rendered = [(p.text, (0, 0)) for p in prompts]
            pair: dict[str, Any] = {"text_pair": [p.response for p in prompts]}
        else:
            rendered = [self.render(p) for p in prompts]
            pair = {}
        enc = self.tokenizer(
            [r for r, _ in rendered],
            **pair,
            add_special_tokens=not self.chat,
            return_offsets_mapping=self.span != "all",
            return_attention_mask=False,
            truncation=False,
            verbose=False,
        )
        types = enc.get("token_type_ids") if self.text_pair else None
        out: list[EncodedPrompt] = []
        n_truncated = 0
        for i, (prompt, (_, (c0, c1))) in enumerate(zip(prompts, rendered, strict=True)):
            ids: list[int] = list(enc["input_ids"][i])
            tt: list[int] | None = None if types is None else list(types[i])
            n = len(ids)
            if self.span == "all":
                start, stop = 0, n
            else:
                inside = [
                    j
                    for j, (a, b) in enumerate(enc["offset_mapping"][i])
                    if b > a and b > c0 and a < c1
                ]
                if not inside:
                    raise ValueError(
                        f"prompt {prompt.id!r}: no token overlaps its {self.span} span; "
                        "use span='all' (aqi capture --span all)"
                    )
                start, stop = inside[0], inside[-1] + 1
            truncated = self.max_length is not None and n > self.max_length
            if truncated:
                n_truncated += 1
                keep = int(self.max_length)  # type: ignore[arg-type]
                if self.truncation_side == "left":
                    cut = n - keep
                    ids = ids[cut:]
                    tt = None if tt is None else tt[cut:]
                    start, stop = max(start - cut, 0), stop - cut
                else:
                    ids = ids[:keep]
                    tt = None if tt is None else tt[:keep]
                    stop = min(stop, keep)
                if stop <= start:
                    raise ValueError(
                        f"prompt {prompt.id!r}: {n} tokens, truncated to max_length="
                        f"{keep} on the {self.truncation_side}, leaves none of its "
                        f"{self.span!r} span; raise max_length (--max-length) or use "
                        "span='all' (--span all)"
                    )
            out.append(
                EncodedPrompt(
                    input_ids=ids, start=start, stop=stop, truncated=truncated, token_type_ids=tt
                )
            )
        if n_truncated:
            warnings.warn(
                f"{n_truncated} prompt(s) longer than max_length={self.max_length} tokens were "
                f"truncated on the {self.truncation_side}; they are flagged in the store's "
                "'truncated' column",
                stacklevel=3,
            )
        return out


def _locate(rendered: str, needle: str, before: int, pid: str, what: str) -> tuple[int, int]:
    """Character range of the last occurrence of ``needle`` ending before ``before``."""
    for candidate in (needle, needle.strip()):  # templates commonly strip whitespace
        at = rendered.rfind(candidate, 0, before)
        if at >= 0:
            return at, at + len(candidate)
    raise ValueError(
        f"prompt {pid!r}: the chat template changed its {what} so it cannot be located "
        "in the rendered input; use span='all'"
    )


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_tokens: int | None
) -> list[list[int]]:
    """Group rows into batches, longest first, bounded by rows and by padded tokens.

    Rows are sorted by length (longest first, ties in row order) and cut into
    batches of at most ``batch_size`` rows whose padded size (rows x longest
    row) stays within ``max_tokens``. A row longer than ``max_tokens`` runs
    alone, so one long input never pads a whole batch to its length.

    Parameters
    ----------
    lengths : sequence of int
        Token count of each row (after truncation).
    batch_size : int
        Most rows per batch.
    max_tokens : int or None
        Most padded tokens per batch; ``None``: no bound.

    Returns
    -------
    list of list of int
        Row indices of each batch.

    Examples
    --------
    >>> plan_batches([5, 100, 6, 7], batch_size=3, max_tokens=None)
    [[1, 3, 2], [0]]
    >>> plan_batches([5, 100, 6, 7], batch_size=3, max_tokens=64)
    [[1], [3, 2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches:
            cur = batches[-1]
            width = lengths[cur[0]]  # the longest: rows come longest first
            fits = max_tokens is None or (len(cur) + 1) * width <= max_tokens
            if len(cur) < batch_size and fits:
                cur.append(i)
                continue
        batches.append([i])
    return batches


def pad_batch(
    encoded: Sequence[EncodedPrompt], pad_id: int, side: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a batch; returns ``input_ids``, ``attention_mask`` and the span mask (all ``[B, T]``)."""
    if side not in ("left", "right"):
        raise ValueError(f"padding_side={side!r}; expected 'left' or 'right'")
    width = max(len(e.input_ids) for e in encoded)
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(encoded), width), dtype=torch.long)
    span = torch.zeros((len(encoded), width), dtype=torch.bool)
    for i, e in enumerate(encoded):
        n = len(e.input_ids)
        off = width - n if side == "left" else 0
        ids[i, off : off + n] = torch.as_tensor(e.input_ids, dtype=torch.long)
        attn[i, off : off + n] = 1
        span[i, off + e.start : off + e.stop] = True
    return ids, attn, span


def pad_token_type_ids(encoded: Sequence[EncodedPrompt], side: str) -> torch.Tensor | None:
    """Segment ids of a text-pair batch padded like :func:`pad_batch` (``None`` without)."""
    if side not in ("left", "right"):
        raise ValueError(f"padding_side={side!r}; expected 'left' or 'right'")
    if any(e.token_type_ids is None for e in encoded):
        return None
    width = max(len(e.input_ids) for e in encoded)
    out = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        n = len(e.input_ids)
        off = width - n if side == "left" else 0
        out[i, off : off + n] = torch.as_tensor(e.token_type_ids, dtype=torch.long)
    return out
