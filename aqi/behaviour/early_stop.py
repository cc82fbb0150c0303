"""Stop each response once a judge's verdict on it is settled (``generate_responses``).

:class:`SettledStop` follows Hugging Face's ``StoppingCriteria`` contract, answering per
row (transformers >= 4.39 finishes the rows it marks and ends the batch when every row
is finished); it does not subclass it, so that importing this module does not import
transformers. After each decoding
step it decodes the new tokens of the rows still running and asks the judge's
``settled(text)``; a settled row is finished as if it had produced an end-of-sequence
token, and the step it stopped at is kept for the response record.

The text the judge sees is the decoded text **minus its last** :data:`TAIL_CHARS`
**characters**: the decoding of a token prefix can differ from the start of the final
text in its last few characters (a multi-byte character split across tokens decodes to
U+FFFD; a tokenizer's clean-up joins a space with the next token's punctuation). What
is left is a prefix of every longer decoding, so a verdict settled on it holds for the
stored (early-stopped) text and for the text generation would have run on to.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["TAIL_CHARS", "SettledStop", "can_stop_early", "early_stop_identity"]

#: Characters at the end of a decoded prefix that the judge is not shown (see above).
TAIL_CHARS = 8


def can_stop_early(judge: Any) -> bool:
    """Whether ``judge`` can say when its verdict is settled (it has ``settled(text)``).

    Examples
    --------
    >>> from aqi.behaviour import RefusalJudge
    >>> can_stop_early(RefusalJudge()), can_stop_early(lambda text: True)
    (True, False)
    """
    return callable(getattr(judge, "settled", None))


def check_stop_judge(judge: Any) -> None:
    """Refuse a ``stop_when_settled`` that cannot say when its verdict is settled."""
    if not can_stop_early(judge):
        raise TypeError(
            f"stop_when_settled={judge!r} has no settled(text) method; only a judge that can "
            "tell when more tokens cannot change its verdict (aqi.behaviour.RefusalJudge) can "
            "stop generation early; pass None to generate every response to max_new_tokens"
        )


def early_stop_identity(judge: Any) -> dict[str, Any] | None:
    """How a responses file records the early stop: the judge's identity (``None``: none).

    Examples
    --------
    >>> from aqi.behaviour import RefusalJudge
    >>> early_stop_identity(RefusalJudge(prefix_chars=120))
    {'name': 'rules', 'kind': 'rules', 'version': '2', 'prefix_chars': 120, 'tail_chars': 8}
    >>> early_stop_identity(None) is None
    True
    """
    if judge is None:
        return None
    from .judges import judge_identity

    ident = judge_identity(judge)
    prefix = getattr(judge, "prefix_chars", None)
    if isinstance(prefix, int):
        ident["prefix_chars"] = prefix
    ident["tail_chars"] = TAIL_CHARS
    return ident


class SettledStop:
    """Finish each row whose decoded text the judge calls settled (a ``StoppingCriteria``).

    Parameters
    ----------
    judge : object with ``settled(text) -> bool``
    tokenizer : the model's tokenizer (decodes the new tokens, special tokens skipped)
    prompt_length : int
        Columns of the (left-padded) prompt batch: new tokens start there.
    eos_ids : iterable of int
        End-of-sequence ids: a row that produced one is finished already.

    Attributes
    ----------
    stopped_at : dict of int to int
        Row -> new tokens it had when it was stopped (rows stopped by this criterion only).
    seconds : float
        Time spent in this criterion (decoding and judging), for benchmarks.
    """

    def __init__(self, judge: Any, tokenizer: Any, prompt_length: int,
                 eos_ids: Iterable[int]) -> None:  # fmt: skip
        check_stop_judge(judge)
        self.judge, self.tokenizer = judge, tokenizer
        self.prompt_length = prompt_length
        self.eos_ids = frozenset(int(i) for i in eos_ids)
        self.stopped_at: dict[int, int] = {}
        self.seconds = 0.0
        self._finished: list[bool] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: Any,
                 **kwargs: Any) -> torch.BoolTensor:  # fmt: skip
        t0 = time.perf_counter()
        new = input_ids[:, self.prompt_length :]
        n_new = new.shape[1]
        if self._finished is None:
            self._finished = [False] * new.shape[0]
        finished = self._finished
        for row, token in enumerate(new[:, -1].tolist()):
            if token in self.eos_ids:  # finished by the end-of-sequence criterion
                finished[row] = True
        stop = [False] * len(finished)
        running = [row for row, done in enumerate(finished) if not done]
        if running:
            texts = self.tokenizer.batch_decode(new[running].tolist(), skip_special_tokens=True)
            for row, text in zip(running, texts, strict=True):
                if len(text) > TAIL_CHARS and self.judge.settled(text[: len(text) - TAIL_CHARS]):
                    finished[row] = stop[row] = True
                    self.stopped_at[row] = n_new
        self.seconds += time.perf_counter() - t0
        return torch.tensor(stop, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]
