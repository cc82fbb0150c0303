"""Token pooling: reduce ``[batch, seq, dim]`` hidden states to ``[batch, dim]``.

Every pooling reads only the tokens of a *span mask*: the real (non-padding)
tokens of each row, or the sub-span holding the user's text. Positions are
taken from the mask, never from an assumed padding side, so left and right
padding give identical results. Results are float32 whatever the model's
dtype; means accumulate in float32.

=========  =====================================================
``mean``   mean over the span's tokens
``last``   the span's last token
``first``  the span's first token
``max``    element-wise maximum over the span's tokens
=========  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._vocab import POOLINGS, check_poolings

__all__ = ["POOLINGS", "SpanMask", "check_poolings", "pool"]


@dataclass
class SpanMask:
    """The tokens to pool for one batch, with per-device copies made on demand.

    Parameters
    ----------
    mask : torch.Tensor
        Boolean ``[batch, seq]``; ``True`` marks tokens inside the span. Every
        row must have at least one ``True``.

    Examples
    --------
    >>> m = SpanMask(torch.tensor([[False, True, True], [True, True, False]]))
    >>> m.first.tolist(), m.last.tolist()
    ([1, 0], [2, 1])
    """

    mask: torch.Tensor
    first: torch.Tensor = field(init=False)
    last: torch.Tensor = field(init=False)
    count: torch.Tensor = field(init=False)
    _on: dict[torch.device, tuple[torch.Tensor, ...]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.mask.dtype != torch.bool or self.mask.ndim != 2:
            raise ValueError(
                f"span mask must be a bool [batch, seq] tensor, got {self.mask.dtype} "
                f"with shape {tuple(self.mask.shape)}"
            )
        self.count = self.mask.sum(1)
        if bool((self.count == 0).any()):
            rows = torch.nonzero(self.count == 0).flatten().tolist()
            raise ValueError(f"span mask rows {rows} select no token; nothing to pool")
        seq = self.mask.shape[1]
        pos = torch.arange(seq, device=self.mask.device).expand_as(self.mask)
        self.first = torch.where(self.mask, pos, seq).amin(1)
        self.last = torch.where(self.mask, pos, -1).amax(1)

    @classmethod
    def full(cls, batch: int, seq: int, device: torch.device | str = "cpu") -> SpanMask:
        """A mask selecting every position (for inputs without padding)."""
        return cls(torch.ones(batch, seq, dtype=torch.bool, device=device))

    def on(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``(mask, first, last, count)`` on ``device``, copied once per batch and device."""
        got = self._on.get(device)
        if got is None:
            got = tuple(
                t.to(device, non_blocking=True)
                for t in (self.mask, self.first, self.last, self.count)
            )
            self._on[device] = got
        return got


def pool(hidden: torch.Tensor, how: str, span: SpanMask) -> torch.Tensor:
    """Pool ``hidden`` (``[batch, seq, dim]``) over ``span`` into float32 ``[batch, dim]``.

    Parameters
    ----------
    hidden : torch.Tensor
        Hidden states of one layer, on any device and in any float dtype.
    how : {"mean", "last", "first", "max"}
        The pooling.
    span : SpanMask
        Which tokens of each row to pool; its shape must match ``hidden``'s first two dims.

    Examples
    --------
    >>> h = torch.arange(12.0).reshape(2, 3, 2)
    >>> span = SpanMask(torch.tensor([[True, True, False], [False, True, True]]))
    >>> pool(h, "mean", span).tolist()
    [[1.0, 2.0], [9.0, 10.0]]
    >>> pool(h, "last", span).tolist()
    [[2.0, 3.0], [10.0, 11.0]]
    """
    if hidden.ndim != 3:
        raise ValueError(f"hidden must be [batch, seq, dim], got shape {tuple(hidden.shape)}")
    if tuple(hidden.shape[:2]) != tuple(span.mask.shape):
        raise ValueError(
            f"hidden shape {tuple(hidden.shape)} does not match span mask "
            f"{tuple(span.mask.shape)} in its first two dimensions"
        )
    mask, first, last, count = span.on(hidden.device)
    if how == "mean":
        h = hidden if hidden.dtype == torch.float32 else hidden.float()
        # where(), not a multiply: padding positions may legitimately hold NaN/inf.
        h = torch.where(mask.unsqueeze(-1), h, 0.0)
        return h.sum(1) / count.unsqueeze(-1).to(torch.float32)
    if how == "last" or how == "first":
        idx = last if how == "last" else first
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        return hidden[rows, idx].float()
    if how == "max":
        return torch.where(mask.unsqueeze(-1), hidden, float("-inf")).amax(1).float()
    raise ValueError(f"pooling={how!r}; expected one of {', '.join(map(repr, POOLINGS))}")
