"""Reward scores of preference pairs: score them with a reward model, or read score dumps.

:func:`score_pairs` encodes ``(prompt, response)`` through the capture's
:class:`~aqi.activations.PromptEncoder` and reads embeddings through
:class:`~aqi.activations.ActivationHooks` in the same forward passes;
:func:`load_reward_scores` reads the paper's CSVs and RewardBench dumps;
:func:`reward_ood_scores` turns rewards into label-free OOD scores. The shift
analysis built on them is :func:`aqi.probes.reward_shift`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit, logsumexp

from ..activations.hooks import ActivationHooks
from ..activations.layers import resolve_layers
from ..prompts.batching import pad_batch, pad_token_type_ids
from ..prompts.encoding import PromptEncoder
from ..prompts.prompt_set import Prompt
from .calibration import reward_margins

__all__ = ["PairScores", "load_reward_scores", "reward_ood_scores", "score_pairs"]


@dataclass(frozen=True)
class PairScores:
    """Rewards of preference pairs, row-aligned, with optional lengths and embeddings.

    Attributes
    ----------
    chosen, rejected : ndarray of shape (n,)
    name : str
    response_length : ndarray, optional
        Characters of the chosen + rejected responses per pair (a content-free control).
    embeddings : dict
        ``{"prompt": (n, d), "prompt_response": (n, d)}`` reward-model embeddings,
        where captured.
    groups : ndarray, optional
        A subset / source label per pair (e.g. RewardBench's ``subset``).
    """

    chosen: np.ndarray
    rejected: np.ndarray
    name: str = ""
    response_length: np.ndarray | None = None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = reward_margins(self.chosen, self.rejected)
        object.__setattr__(self, "chosen", np.asarray(self.chosen, dtype=np.float64))
        object.__setattr__(self, "rejected", np.asarray(self.rejected, dtype=np.float64))
        n = len(m)
        for key, arr in [("response_length", self.response_length), ("groups", self.groups)]:
            if arr is not None and len(arr) != n:
                raise ValueError(f"{key} has {len(arr)} rows but there are {n} pairs")
        for key, arr in self.embeddings.items():
            if np.asarray(arr).ndim != 2 or len(arr) != n:
                raise ValueError(
                    f"embeddings[{key!r}] must have shape ({n}, d), got {np.shape(arr)}"
                )

    @property
    def margins(self) -> np.ndarray:
        return self.chosen - self.rejected

    def __len__(self) -> int:
        return len(self.chosen)

    def subset(self, rows: np.ndarray) -> PairScores:
        """The pairs at ``rows`` (lengths, embeddings and groups follow)."""
        return PairScores(
            chosen=self.chosen[rows],
            rejected=self.rejected[rows],
            name=self.name,
            response_length=None if self.response_length is None else self.response_length[rows],
            embeddings={k: np.asarray(v)[rows] for k, v in self.embeddings.items()},
            groups=None if self.groups is None else self.groups[rows],
        )

    def __repr__(self) -> str:
        extra = f", embeddings={sorted(self.embeddings)}" if self.embeddings else ""
        return f"PairScores({self.name!r}, n={len(self)}{extra})"


_CHOSEN_KEYS = ("chosen", "scores_chosen", "score_chosen", "chosen_score", "reward_chosen")
_REJECTED_KEYS = ("rejected", "scores_rejected", "score_rejected", "rejected_score",
                  "reward_rejected")  # fmt: skip


def _scalar(v: Any, where: str) -> float:
    if isinstance(v, list):
        if len(v) != 1:
            raise ValueError(f"{where}: expected one score, got a list of {len(v)}")
        v = v[0]
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {v!r} is not a number") from None


def _pick(keys: Sequence[str], options: Sequence[str], path: Path) -> str:
    for k in options:
        if k in keys:
            return k
    raise ValueError(
        f"{path}: no reward column; expected one of {list(options)}, found {list(keys)}"
    )


def load_reward_scores(path: str | os.PathLike[str], *, name: str | None = None) -> PairScores:
    """Read reward scores of preference pairs from a CSV, JSON or JSONL file.

    Accepted layouts: the paper's CSVs (columns ``chosen,rejected``); RewardBench
    score dumps — JSONL records or a JSON list of records with ``scores_chosen`` /
    ``scores_rejected`` (scalars or one-element lists) and optionally ``subset``, or
    a JSON object of columns with those keys.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = p.write_text("chosen,rejected\\n1.5,0.2\\n-0.3,0.4\\n")
    >>> load_reward_scores(p).margins.round(2).tolist()
    [1.3, -0.7]
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"reward score file not found: {p}")
    records = _read_records(p)
    if not records:
        raise ValueError(f"{p} holds no pairs")
    kc, kr = _pick(list(records[0]), _CHOSEN_KEYS, p), _pick(list(records[0]), _REJECTED_KEYS, p)

    def column(key: str) -> np.ndarray:
        out = []
        for i, r in enumerate(records):
            if key not in r:
                raise ValueError(f"{p} row {i}: no {key!r} field (row 0 has one)")
            out.append(_scalar(r[key], f"{p} row {i}"))
        return np.array(out)

    groups = (
        np.array([str(r.get("subset", "")) for r in records]) if "subset" in records[0] else None
    )
    return PairScores(chosen=column(kc), rejected=column(kr), name=name or p.stem, groups=groups)


def _read_records(p: Path) -> list[dict[str, Any]]:
    """Rows of a CSV, JSONL, JSON list of records or JSON object of columns, as dicts."""
    suffix = p.suffix.lower()
    if suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    if suffix == ".jsonl":
        lines = p.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    if suffix != ".json":
        raise ValueError(f"{p}: unsupported extension {suffix!r}; use .csv, .json or .jsonl")
    data = json.loads(p.read_text(encoding="utf-8"))
    if isinstance(data, list):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a JSON list of records or an object of columns")
    lengths = {k: len(v) for k, v in data.items() if isinstance(v, list)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"{p}: columns have different lengths {lengths}")
    n = next(iter(lengths.values()), 0)
    return [{k: data[k][i] for k in lengths} for i in range(n)]


def _reward_of(logits: torch.Tensor, reward_index: int | None) -> torch.Tensor:
    if logits.shape[-1] == 1:
        return logits[:, 0]
    if reward_index is None:
        raise ValueError(
            f"the model returns {logits.shape[-1]} logits per input; pass reward_index= "
            "to say which one is the reward"
        )
    return logits[:, reward_index]


def score_pairs(
    reward_model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    chosen: Sequence[str],
    rejected: Sequence[str],
    *,
    name: str = "",
    batch_size: int = 16,
    max_length: int | None = None,
    embedding_layer: str | int | None = -1,
    pooling: str = "mean",
    reward_index: int | None = None,
    progress: bool = False,
) -> PairScores:
    """Reward every ``(prompt, chosen)`` and ``(prompt, rejected)`` pair, batched.

    Parameters
    ----------
    reward_model : transformers sequence-classification model or callable
        A model whose logits hold the reward (one logit, or ``reward_index``), or any
        ``callable(prompts, responses) -> rewards``.
    tokenizer
        The model's tokenizer (ignored for a callable). Prompt and response are
        encoded as a text pair, or through the chat template when it has one.
    embedding_layer : layer spec or None
        Layer whose pooled output is captured through :class:`aqi.ActivationHooks`
        in the same forward passes (``"prompt_response"``: the prompt with the
        chosen response), plus one extra pass over the prompts alone
        (``"prompt"``). Default: the last block (``-1``); ``"final_norm"`` or any
        spec of :func:`aqi.resolve_layers`; ``None`` skips embeddings.

    Returns
    -------
    PairScores
        With ``response_length`` (characters of both responses) and ``embeddings``.
    """
    _check_pairs(prompts, chosen, rejected, batch_size)
    lengths = np.array([len(c) + len(r) for c, r in zip(chosen, rejected, strict=True)])
    if not isinstance(reward_model, torch.nn.Module):
        if not callable(reward_model):
            raise TypeError(
                "reward_model must be a torch module or a callable(prompts, responses), "
                f"got {type(reward_model).__name__}"
            )
        rc = np.asarray(reward_model(list(prompts), list(chosen)), dtype=np.float64)
        rr = np.asarray(reward_model(list(prompts), list(rejected)), dtype=np.float64)
        return PairScores(chosen=rc, rejected=rr, name=name, response_length=lengths)
    model = reward_model.eval()
    layer = None if embedding_layer is None else resolve_layers(model, embedding_layer)[0].name
    with_response, prompt_only = _encoders(tokenizer, max_length)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    runner = _RewardRunner(model=model, device=next(model.parameters()).device, layer=layer,
                           pooling=pooling, prompts=prompts, batch_size=batch_size,
                           pad_id=pad_id, side=getattr(tokenizer, "padding_side", "right"),
                           progress=progress, name=name, reward_index=reward_index)  # fmt: skip
    rc, e_pr = runner.run(with_response, chosen, capture=True)
    rr, _ = runner.run(with_response, rejected, capture=False)
    embeddings: dict[str, np.ndarray] = {}
    if layer:
        embeddings["prompt_response"] = e_pr  # type: ignore[assignment]
        _, e_p = runner.run(prompt_only, None, capture=True)
        embeddings["prompt"] = e_p  # type: ignore[assignment]
    return PairScores(
        chosen=rc, rejected=rr, name=name, response_length=lengths, embeddings=embeddings
    )


def _check_pairs(prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str],
                 batch_size: Any) -> None:  # fmt: skip
    """Refuse lists that are not row-aligned, no pairs, or a batch size that is not one."""
    n = len(prompts)
    if not (len(chosen) == len(rejected) == n):
        raise ValueError(
            f"prompts, chosen and rejected must be row-aligned; got {n}, {len(chosen)}, "
            f"{len(rejected)}"
        )
    if n == 0:
        raise ValueError("no pairs to score")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _encoders(tokenizer: Any, max_length: int | None) -> tuple[PromptEncoder, PromptEncoder]:
    """The capture's encoders of a prompt with its response, and of the prompt alone: the
    chat template when the tokenizer has one, else the tokenizer's text pair (prompt,
    response) — how sequence-pair reward models are trained."""
    chat = bool(getattr(tokenizer, "chat_template", None))
    with_response = PromptEncoder(
        tokenizer,
        span="all",
        chat=chat,
        include_response=True,
        text_pair=not chat,
        max_length=max_length,
    )
    return with_response, PromptEncoder(tokenizer, span="all", chat=chat, max_length=max_length)


@dataclass
class _RewardRunner:
    """A reward model run over the prompts in batches: its reward per row and, when asked,
    the pooled embedding at ``layer``."""

    model: Any
    device: Any
    layer: str | None
    pooling: str
    prompts: Sequence[str]
    batch_size: int
    pad_id: int
    side: str
    progress: bool
    name: str
    reward_index: Any

    def batch(self, encoder: PromptEncoder, responses: Sequence[str] | None,
              a: int) -> dict[str, Any]:  # fmt: skip
        """The model's keyword arguments for the batch of rows starting at ``a``."""
        rows = [
            Prompt(
                id=str(i),
                text=self.prompts[i],
                label="safe",  # required by Prompt, unused by the encoder
                response=None if responses is None else responses[i],
            )
            for i in range(a, min(a + self.batch_size, len(self.prompts)))
        ]
        encoded = encoder.encode(rows)
        ids, attn, _ = pad_batch(encoded, self.pad_id, self.side)
        kw = {"input_ids": ids.to(self.device), "attention_mask": attn.to(self.device)}
        types = pad_token_type_ids(encoded, self.side)
        if types is not None:
            kw["token_type_ids"] = types.to(self.device)
        return kw

    def run(
        self, encoder: PromptEncoder, responses: Sequence[str] | None, capture: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Every row's reward, and its pooled embedding when ``capture`` (else ``None``)."""
        layer, pooling = self.layer, self.pooling
        rewards, embs = [], []
        it: Any = range(0, len(self.prompts), self.batch_size)
        if self.progress:
            from tqdm.auto import tqdm

            it = tqdm(it, desc=self.name or "reward", unit="batch")
        with contextlib.ExitStack() as stack:
            hooks = (
                stack.enter_context(ActivationHooks(self.model, [layer], pooling))
                if capture and layer
                else None
            )
            for a in it:
                kw = self.batch(encoder, responses, a)
                if hooks is None:
                    with torch.inference_mode():
                        out = self.model(**kw)
                else:
                    out, pooled = hooks.run_with_output(span=kw["attention_mask"].bool(), **kw)
                    embs.append(pooled[layer][pooling].float().cpu().numpy())
                rewards.append(_reward_of(out.logits.float(), self.reward_index).cpu().numpy())
        return np.concatenate(rewards), (np.concatenate(embs) if embs else None)


def reward_ood_scores(pairs: PairScores) -> dict[str, np.ndarray]:
    """Label-free OOD scores of each pair from its rewards (higher = more OOD).

    * ``energy``: ``−logsumexp([r_chosen, r_rejected])`` (the paper's score);
    * ``max_softmax``: ``−σ(|r_chosen − r_rejected|)``, the top-label confidence;
    * ``neg_max_reward``: ``−max(r_chosen, r_rejected)`` — a content-free control:
      when energy does no better than this, it only reads the reward's magnitude;
    * ``response_length``: characters of both responses (where known), a second
      content-free control.

    Examples
    --------
    >>> s = reward_ood_scores(PairScores(np.array([0.0]), np.array([0.0])))
    >>> round(float(s["energy"][0]), 4), float(s["max_softmax"][0])
    (-0.6931, -0.5)
    """
    both = np.stack([pairs.chosen, pairs.rejected], axis=1)
    out = {
        "energy": -logsumexp(both, axis=1),
        "max_softmax": -expit(np.abs(pairs.margins)),
        "neg_max_reward": -both.max(axis=1),
    }
    if pairs.response_length is not None:
        out["response_length"] = np.asarray(pairs.response_length, dtype=np.float64)
    return out
