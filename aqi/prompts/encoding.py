"""Render prompts (chat template or plain text), tokenize them and locate the spans to pool.

Spans (the grammar is :mod:`.spans`: ``"instruction"``, ``"post_instruction"``,
``"response_onset"``, ``"response"``, ``"all"``) are found from character offsets of
the rendered text, so they are exact for any chat template and tokenizer that reports
offsets (every "fast" tokenizer). One encoder locates several spans of the same
rendering, so one forward pass can pool all of them.

Inputs longer than ``max_length`` tokens are truncated on the tokenizer's
``truncation_side``, flagged and reported; a row one of whose spans is cut away
entirely is an error. Truncation happens per row, before any batch is
formed; :func:`~aqi.prompts.batching.plan_batches` then bounds each batch by rows and by
padded tokens. What :meth:`PromptEncoder.encode` returns (:class:`EncodedPrompt`) and the
padding of a batch live in :mod:`aqi.prompts.batching` (importable from here too).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from typing import Any

from .batching import (  # noqa: F401 - the batching functions' old home; they still import
    EncodedPrompt,
    pad_batch,
    pad_token_type_ids,
    plan_batches,
    span_masks,
)
from .prompt_set import Prompt
from .spans import (
    DEFAULT_ONSET_TOKENS,
    RESPONSE_SPANS,
    SPANS,
    CharRegions,
    check_spans,
    token_ranges,
)

__all__ = ["MAX_PROMPT_TOKENS", "SPANS", "EncodedPrompt", "PromptEncoder", "check_prompt_tokens"]

#: The default per-prompt token limit of capture, generation and the audit: the user's text,
#: tokenized without the chat template. One forward pass over a longer input takes minutes
#: on a CPU (a 60,000-character prompt was a five-minute stall), so it is refused, naming
#: the prompt and the limit, before any forward pass; ``max_prompt_tokens=None`` lifts it.
MAX_PROMPT_TOKENS = 4096


def check_prompt_tokens(
    tokenizer: Any, prompts: Sequence[Prompt], limit: int | None, *,
    max_length: int | None = None,
) -> None:  # fmt: skip
    """Refuse prompts whose text is longer than ``limit`` tokens (``None``: no limit).

    A ``max_length`` given by the caller at or below ``limit`` already bounds the work
    (longer inputs are truncated to it, counted and warned about): then nothing is refused.
    Text of at most ``limit`` UTF-8 bytes is not tokenized (a token spans at least one
    byte), so the check costs nothing for ordinary prompts.

    Raises
    ------
    ArgumentError
        Naming the first prompt over the limit, its token count, how many are over, and
        ``max_prompt_tokens`` (CLI: ``--max-prompt-tokens``).
    """
    from .._errors import ArgumentError

    if limit is None or (max_length is not None and max_length <= limit):
        return
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ArgumentError("{max_prompt_tokens}; expected a positive int or None (no limit)",
                            max_prompt_tokens=limit)  # fmt: skip
    long = [p for p in prompts if len(p.text.encode("utf-8")) > limit]
    if not long:
        return
    ids = tokenizer([p.text for p in long], add_special_tokens=False, verbose=False)["input_ids"]
    over = [(p.id, len(t)) for p, t in zip(long, ids, strict=True) if len(t) > limit]
    if over:
        (pid, n), more = over[0], len(over) - 1
        also = f" (and {more} more)" if more else ""
        raise ArgumentError(
            f"prompt {pid!r} has {n} tokens{also}, over the per-prompt limit "
            f"{{max_prompt_tokens}}: a forward pass over so long an input takes minutes; "
            "shorten it or leave it out, or raise the limit", max_prompt_tokens=limit,
        )


class PromptEncoder:
    """Turn :class:`Prompt` rows into token ids and pooling spans for one tokenizer.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerBase
        The model's tokenizer.
    span : str or sequence of str
        Which tokens the pooling reads (:mod:`.spans`): one span, or several located in
        the same rendering (``"user"`` is ``"instruction"``).
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
    onset_tokens : int
        Tokens of the ``"response_onset"`` span (default 5).
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        span: str | Sequence[str] = "instruction",
        chat: bool | None = None,
        system_prompt: str | None = None,
        include_response: bool = False,
        max_length: int | None = None,
        text_pair: bool = False,
        onset_tokens: int = DEFAULT_ONSET_TOKENS,
    ) -> None:
        spans = check_spans(span, name="span")
        if isinstance(onset_tokens, bool) or not isinstance(onset_tokens, int) or onset_tokens < 1:
            raise ValueError(f"onset_tokens={onset_tokens!r}; expected a positive int")
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
        need_response = [s for s in spans if s in RESPONSE_SPANS]
        if need_response and not include_response:
            raise ValueError(
                f"span={need_response[0]!r} reads the response, so it needs "
                "include_response=True and rows with responses (aqi capture --responses FILE)"
            )
        located = [s for s in spans if s != "all"]
        if located and not getattr(tokenizer, "is_fast", False):
            raise ValueError(
                f"span={located[0]!r} needs token offsets, which {type(tokenizer).__name__} (a "
                "slow tokenizer) does not report; load the fast tokenizer "
                "(AutoTokenizer.from_pretrained(..., use_fast=True), a PreTrainedTokenizerFast) "
                "or use span='all'"
            )
        if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
            raise ValueError(f"max_length={max_length!r}; expected a positive int or None")
        if text_pair and (chat or not include_response or spans != ("all",)):
            raise ValueError(
                "text_pair=True encodes plain (prompt, response) pairs: it needs chat=False, "
                f"include_response=True and span='all'; got chat={chat}, include_response="
                f"{include_response}, span={span!r}"
            )
        self.text_pair = bool(text_pair)
        self.tokenizer = tokenizer
        self.spans = spans
        self.span = spans[0]
        self.onset_tokens = onset_tokens
        self._said_plain_post = False
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

    def regions(self, prompt: Prompt) -> tuple[str, CharRegions]:
        """The model's input text and where the user's text and the response are in it."""
        text, response = prompt.text, prompt.response
        if self.include_response and response is None:
            raise ValueError(
                f"prompt {prompt.id!r} has no response but include_response=True "
                "(aqi capture --include-response); give every row a 'response'"
            )
        if not self.chat:
            rendered = text + ("\n" + response if self.include_response else "")  # type: ignore[operator]
            end = len(rendered)
            resp = (len(text) + 1, end) if self.include_response else (end, end)
            return rendered, CharRegions(end, (0, len(text)), resp)
        messages = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({"role": "user", "content": text})
        if self.include_response:
            messages.append({"role": "assistant", "content": response})
        rendered = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=not self.include_response
        )
        end = len(rendered)
        if self.spans == ("all",):  # nothing to locate
            return rendered, CharRegions(end, (0, end), (end, end))
        resp = (end, end)
        if self.include_response:
            resp = _locate(rendered, response, end, prompt.id, "response", self.tokenizer)  # type: ignore[arg-type]
        user = _locate(rendered, text, resp[0], prompt.id, "text", self.tokenizer)
        return rendered, CharRegions(end, user, resp)

    def render(self, prompt: Prompt) -> tuple[str, tuple[int, int]]:
        """The model's input text and the character range of the (first) span's text.

        Character ranges exist for the spans that are text (instruction, response, all);
        the token positions of every span come from :meth:`encode`.
        """
        rendered, reg = self.regions(prompt)
        if self.span == "instruction":
            return rendered, reg.instruction
        if self.span in ("response", "response_onset"):
            return rendered, reg.response
        if self.span == "post_instruction":
            return rendered, (reg.instruction[1], reg.response[0])
        return rendered, (0, reg.text_length)

    def encode(self, prompts: Sequence[Prompt]) -> list[EncodedPrompt]:
        """Encode a batch of prompts (one tokenizer call), locating every span of each."""
        rendered, enc = self._tokenize(prompts)
        types = enc.get("token_type_ids") if self.text_pair else None
        out: list[EncodedPrompt] = []
        for i, (prompt, (_, reg)) in enumerate(zip(prompts, rendered, strict=True)):
            ids: list[int] = list(enc["input_ids"][i])
            tt: list[int] | None = None if types is None else list(types[i])
            if self.spans == ("all",):
                ranges = [(0, len(ids))]
            else:
                ranges = self._span_ranges(prompt, enc["offset_mapping"][i], reg)
            out.append(self._truncate(prompt, ids, tt, ranges))
        self._warn_truncated_and_short(out)
        return out

    def _tokenize(self, prompts: Sequence[Prompt]) -> tuple[list[tuple[str, CharRegions]], Any]:
        """The rendered inputs with their character regions, and their tokenization (ids, and
        offsets when a span must be located; segment ids of a text pair)."""
        if self.text_pair:
            for p in prompts:
                if p.response is None:
                    raise ValueError(f"prompt {p.id!r} has no response but text_pair=True")
            rendered = [(p.text, CharRegions(0, (0, 0), (0, 0))) for p in prompts]
            pair: dict[str, Any] = {"text_pair": [p.response for p in prompts]}
        else:
            rendered = [self.regions(p) for p in prompts]
            pair = {}
        offsets_needed = self.spans != ("all",)
        if offsets_needed and self.include_response:
            return rendered, self._tokenize_apart(rendered)
        return rendered, self.tokenizer(
            [r for r, _ in rendered],
            **pair,
            add_special_tokens=not self.chat,
            return_offsets_mapping=offsets_needed,
            return_attention_mask=False,
            truncation=False,
            verbose=False,
        )

    def _span_ranges(
        self, prompt: Prompt, offsets: Sequence[tuple[int, int]], reg: CharRegions
    ) -> list[tuple[int, int]]:
        """Token ``[start, stop)`` of every span of one input (``spans`` order), from its
        tokens' character offsets; a span that selects no token is an error."""
        found, problems = token_ranges(
            offsets, reg, self.spans, chat=self.chat, onset_tokens=self.onset_tokens
        )
        if problems:
            span, why = next(iter(problems.items()))
            raise ValueError(
                f"prompt {prompt.id!r}: span {span!r} selects no token ({why}; "
                f"{_template_name(self.tokenizer) if self.chat else 'plain text'}); "
                "use another span, e.g. span='all' (aqi capture --span all)"
            )
        if "post_instruction" in self.spans and not self.chat:
            self._say_plain_post()
        return [found[s] for s in self.spans]

    def _truncate(
        self, prompt: Prompt, ids: list[int], tt: list[int] | None, ranges: list[tuple[int, int]]
    ) -> EncodedPrompt:
        """One input cut to ``max_length`` on the tokenizer's ``truncation_side`` (when
        longer), its span ranges moved with the cut; a span cut away entirely is an error."""
        n = len(ids)
        truncated = self.max_length is not None and n > self.max_length
        if truncated:
            keep = int(self.max_length)  # type: ignore[arg-type]
            if self.truncation_side == "left":
                cut = n - keep
                ids = ids[cut:]
                tt = None if tt is None else tt[cut:]
                ranges = [(max(a - cut, 0), b - cut) for a, b in ranges]
            else:
                ids = ids[:keep]
                tt = None if tt is None else tt[:keep]
                ranges = [(a, min(b, keep)) for a, b in ranges]
            lost = [s for s, (a, b) in zip(self.spans, ranges, strict=True) if b <= a]
            if lost:
                raise ValueError(
                    f"prompt {prompt.id!r}: {n} tokens, truncated to max_length="
                    f"{keep} on the {self.truncation_side}, leaves none of its "
                    f"{lost[0]!r} span; raise max_length (--max-length) or use "
                    "span='all' (--span all)"
                )
        return EncodedPrompt(
            input_ids=ids,
            start=ranges[0][0],
            stop=ranges[0][1],
            truncated=truncated,
            token_type_ids=tt,
            ranges=tuple(ranges),
        )

    def _warn_truncated_and_short(self, encoded: Sequence[EncodedPrompt]) -> None:
        """Say how many inputs were truncated, and how many responses are shorter than the
        ``"response_onset"`` span (one warning each, for :meth:`encode`'s caller)."""
        n_truncated = sum(e.truncated for e in encoded)
        if n_truncated:
            warnings.warn(
                f"{n_truncated} prompt(s) longer than max_length={self.max_length} tokens were "
                f"truncated on the {self.truncation_side}; they are flagged in the store's "
                "'truncated' column",
                stacklevel=4,
            )
        if "response_onset" not in self.spans:
            return
        k = self.spans.index("response_onset")
        n_short_onset = sum(e.ranges[k][1] - e.ranges[k][0] < self.onset_tokens for e in encoded)
        if n_short_onset:
            warnings.warn(
                f"{n_short_onset} response(s) have fewer than onset_tokens={self.onset_tokens} "
                "tokens; their 'response_onset' span holds all of their tokens (counted in the "
                "store's span_tokens column)",
                stacklevel=4,
            )

    def _tokenize_apart(self, rendered: Sequence[tuple[str, CharRegions]]) -> dict[str, Any]:
        """Tokenize each input's prompt and response apart, as generation sees them.

        Tokenized as one string, the text at the boundary may merge across it (Llama 3's
        ``"\n\n"`` before a response becomes other tokens than at the end of its
        generation prompt), so the post-instruction tokens would not be the ones the model
        decided at. Apart, the prompt's tokens are exactly the generation prompt's.
        """
        cuts = [reg.response[0] for _, reg in rendered]
        kw: dict[str, Any] = {
            "return_offsets_mapping": True,
            "return_attention_mask": False,
            "truncation": False,
            "verbose": False,
        }
        head = self.tokenizer(
            [r[:c] for (r, _), c in zip(rendered, cuts, strict=True)],
            add_special_tokens=not self.chat,
            **kw,
        )
        tail = self.tokenizer(
            [r[c:] for (r, _), c in zip(rendered, cuts, strict=True)],
            add_special_tokens=False,
            **kw,
        )
        ids, offsets = [], []
        for i, c in enumerate(cuts):
            ids.append([*head["input_ids"][i], *tail["input_ids"][i]])
            shifted = ((a + c, b + c) for a, b in tail["offset_mapping"][i])
            offsets.append([*head["offset_mapping"][i], *shifted])
        return {"input_ids": ids, "offset_mapping": offsets}

    def _say_plain_post(self) -> None:
        if not self._said_plain_post:
            self._said_plain_post = True
            warnings.warn(
                "span 'post_instruction' without a chat template: plain text has no "
                "post-instruction tokens, so the final prompt token is read",
                stacklevel=5,
            )


def _template_name(tokenizer: Any) -> str:
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    digest = PromptEncoder.template_hash(tokenizer)[:12]
    return f"chat template of {name!r} (sha256 {digest}…)"


def _locate(
    rendered: str, needle: str, before: int, pid: str, what: str, tokenizer: Any
) -> tuple[int, int]:
    """Character range of the last occurrence of ``needle`` ending before ``before``."""
    for candidate in (needle, needle.strip()):  # templates commonly strip whitespace
        at = rendered.rfind(candidate, 0, before)
        if at >= 0 and candidate:
            return at, at + len(candidate)
    raise ValueError(
        f"prompt {pid!r}: the {_template_name(tokenizer)} changed its {what} so it cannot be "
        "located in the rendered input; use span='all' (aqi capture --span all)"
    )
