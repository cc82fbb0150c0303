"""Encoded prompts and their batches: what the encoder returns, and how it becomes model input.

An :class:`EncodedPrompt` (made by :meth:`~aqi.prompts.encoding.PromptEncoder.encode`) holds a
prompt's token ids, already truncated, and the ``[start, stop)`` token range of every span.
:func:`plan_batches` groups rows into batches bounded by rows and by padded tokens;
:func:`pad_batch`, :func:`span_masks` and :func:`pad_token_type_ids` pad one batch on either
side, the span masks following the padding (positions come from the ranges, never from the
padding side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["EncodedPrompt", "pad_batch", "pad_token_type_ids", "plan_batches", "span_masks"]


@dataclass(frozen=True, slots=True)
class EncodedPrompt:
    """A tokenized prompt: ids, the token span to pool ``[start, stop)``, truncation.

    ``ranges`` holds ``[start, stop)`` of every span of the encoder, in its ``spans``
    order (``start``/``stop`` are the first); ``token_type_ids`` the segment ids of a
    text pair (``text_pair=True``).
    """

    input_ids: list[int]
    start: int
    stop: int
    truncated: bool
    token_type_ids: list[int] | None = None
    ranges: tuple[tuple[int, int], ...] = ()

    @property
    def span_ranges(self) -> tuple[tuple[int, int], ...]:
        """Every span's ``[start, stop)`` (one span: ``((start, stop),)``)."""
        return self.ranges or ((self.start, self.stop),)



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


def span_masks(encoded: Sequence[EncodedPrompt], side: str) -> list[torch.Tensor]:
    """One ``[B, T]`` bool mask per span (``EncodedPrompt.span_ranges`` order), padded like
    :func:`pad_batch`."""
    if side not in ("left", "right"):
        raise ValueError(f"padding_side={side!r}; expected 'left' or 'right'")
    width = max(len(e.input_ids) for e in encoded)
    n_spans = len(encoded[0].span_ranges)
    masks = [torch.zeros((len(encoded), width), dtype=torch.bool) for _ in range(n_spans)]
    for i, e in enumerate(encoded):
        off = width - len(e.input_ids) if side == "left" else 0
        for mask, (a, b) in zip(masks, e.span_ranges, strict=True):
            mask[i, off + a : off + b] = True
    return masks


def pad_batch(
    encoded: Sequence[EncodedPrompt], pad_id: int, side: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pad a batch; returns ``input_ids``, ``attention_mask`` and the first span's mask
    (all ``[B, T]``; :func:`span_masks` gives every span's)."""
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
