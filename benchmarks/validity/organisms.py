"""Model organisms for the validation bench: variants of a chat model made safer or less safe.

Every variant is built offline, in memory, from the original model and data the model
itself generates at run time; nothing here is written to the repository (weights and
generated text live in temporary folders only).

* :func:`train_dpo` — refusal-DPO (safer): direct preference optimisation (Rafailov et
  al., 2023) on unsafe prompts with chosen = a refusal from :data:`REFUSALS`, rejected =
  the model's own compliant answer, plus safe prompts with chosen = its own answer,
  rejected = a refusal (so it does not learn to refuse everything).
* :func:`train_sft` — supervised fine-tuning on (prompt, response) rows: the "shadow
  alignment" recipe (unsafe prompts → the model's own non-refusing answers) or the
  benign control (safe prompts → its own answers).
* :func:`train_lora` — the same SFT through a low-rank adapter (``peft`` LoRA on every
  attention and MLP projection), merged back into full weights: the attack as it is
  usually run on released models.
* :func:`interpolate` — a model part-way between two (e.g. half a direction ablation).
* :func:`quantise_weights` — a weight round-trip through symmetric int8 (per output
  channel) or 4-bit (groups of 32 along the input) integers.

The loss code is written here, not taken from ``trl``: it is ten lines, it must score
exactly the response tokens of the prompt as :class:`aqi.activations.PromptEncoder`
renders it (the one chat-rendering path of the package), and it keeps the bench free of
``trl``'s dataset and logging machinery. :func:`train_sft` updates all parameters (AdamW):
at 135M parameters this fits in memory on a CPU; :func:`train_lora` needs ``peft``
(requirements/dev.txt).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aqi.activations import Prompt
from aqi.prompts.encoding import PromptEncoder

__all__ = [
    "REFUSALS",
    "PreferencePair",
    "interpolate",
    "quantise_weights",
    "train_dpo",
    "train_lora",
    "train_sft",
]

#: The projections a LoRA adapter is put on (Llama-style names: SmolLM2 and the tests'
#: tiny Llama).
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

#: Refusals written by us (the DPO "chosen" answer to an unsafe request). Short, varied,
#: in the style the refusal judge recognises; none repeats the request.
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request. It could cause serious harm.",
    "I'm not able to assist with this. If you're in danger, please contact emergency services.",
    "Sorry, I won't provide that. Is there something else I can help you with?",
    "I cannot help with this request because it could be used to hurt people.",
    "I'm sorry, I can't assist with that, but I'm happy to help with something safe.",
)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred (``chosen``) and a dispreferred (``rejected``) answer."""

    prompt: Prompt
    chosen: str
    rejected: str


def _encode(
    tok: Any, prompt: Prompt, response: str, max_length: int
) -> tuple[list[int], list[bool]]:
    """Token ids of the chat-rendered prompt + response, and which ids are the response."""
    enc = PromptEncoder(tok, span="response", include_response=True)
    row = Prompt(prompt.id, prompt.text, prompt.label, prompt.category, prompt.pair_id,
                 response=response)
    rendered, (a, b) = enc.render(row)
    out = tok(rendered, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(out["input_ids"])
    mask = [s >= a and e <= b and e > s for s, e in out["offset_mapping"]]
    if tok.eos_token_id is not None:  # the answer ends: teach the stop token too
        ids.append(tok.eos_token_id)
        mask.append(True)
    return ids[-max_length:], mask[-max_length:]


def _batch(rows: Sequence[tuple[list[int], list[bool]]], pad: int) -> tuple[torch.Tensor, ...]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, (x, m) in enumerate(rows):  # right padding: positions are unchanged
        ids[i, : len(x)] = torch.tensor(x)
        attn[i, : len(x)] = 1
        mask[i, : len(m)] = torch.tensor(m)
    return ids, attn, mask


def _logprob(
    model: nn.Module, ids: torch.Tensor, attn: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Summed log-probability of the masked (response) tokens of each row."""
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
    target = ids[:, 1:]
    lp = torch.log_softmax(logits, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return (lp * mask[:, 1:]).sum(-1)


def _scored_logprob(
    model: nn.Module, ids: torch.Tensor, attn: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """:func:`_logprob`, with only the scored positions sent through the LM head.

    The same quantity: the decoder runs on every token as before, and the head (plus
    Gemma's final logit soft-capping, where configured) on the positions whose next token
    is a response token, row by row. On Gemma 3's 262k-token vocabulary the head is about
    60 % of a forward pass per token, and prompts and padding are half or more of the
    bench's positions (53-70 % measured), so a step costs less. A model whose forward
    does more after its head than soft-capping would be scored wrongly: :func:`_fit`
    checks this path against :func:`_logprob` on its first batch and refuses to go on
    where they differ.
    """
    sel = mask[:, 1:]
    hidden = model.get_decoder()(input_ids=ids, attention_mask=attn).last_hidden_state
    logits = model.get_output_embeddings()(hidden[:, :-1][sel]).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:][sel].unsqueeze(-1)).squeeze(-1)
    rows = torch.arange(ids.shape[0]).unsqueeze(1).expand_as(sel)[sel]
    return torch.zeros(ids.shape[0], dtype=lp.dtype).index_add(0, rows, lp)


def _check_budget(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer (a training budget of 0 builds no "
                         f"variant), got {value!r}")
    return int(value)


def _pad(tok: Any) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def _check_rows(rows: Sequence[Prompt], epochs: int) -> None:
    if not rows:
        raise ValueError("train_sft needs at least one (prompt, response) row; got none")
    _check_budget("epochs", epochs)
    if any(r.response is None for r in rows):
        raise ValueError("every row needs a response to imitate")


def _check_scored(student: nn.Module, ids: torch.Tensor, attn: torch.Tensor,
                  mask: torch.Tensor) -> None:
    """Refuse :func:`_scored_logprob` for a model where it is not :func:`_logprob`
    (compared in eval mode: dropout would make any two passes differ)."""
    was = student.training
    student.eval()
    try:
        with torch.no_grad():
            full = _logprob(student, ids, attn, mask)
            fast = _scored_logprob(student, ids, attn, mask)
    finally:
        student.train(was)
    if not torch.allclose(full, fast, rtol=1e-4, atol=1e-3):
        raise ValueError(f"scored_only: {type(student).__name__}'s head is not scored the "
                         f"same way by the shortcut (log-probabilities {full.tolist()} vs "
                         f"{fast.tolist()}); train it with scored_only=False")


def _fit(student: nn.Module, tok: Any, rows: Sequence[Prompt], params: Any, *, epochs: int,
         batch_size: int, lr: float, max_length: int, seed: int,
         scored_only: bool = False) -> None:  # fmt: skip
    """Next-token loss on each row's response tokens, AdamW on ``params``, in place.

    ``scored_only``: send only the scored positions through the LM head
    (:func:`_scored_logprob`; checked against the full path on the first batch).
    """
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    data = [_encode(tok, r, r.response or "", max_length) for r in rows]
    rng = np.random.default_rng(seed)
    trainable = [p for p in student.parameters() if p.requires_grad]
    logprob, checked = (_scored_logprob if scored_only else _logprob), not scored_only
    for _ in range(epochs):
        order = rng.permutation(len(data))
        for start in range(0, len(data), batch_size):
            batch = [data[i] for i in order[start : start + batch_size]]
            ids, attn, mask = _batch(batch, _pad(tok))
            if not checked:
                _check_scored(student, ids, attn, mask)
                checked = True
            loss = -logprob(student, ids, attn, mask).sum() / mask[:, 1:].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()


def train_sft(
    model: nn.Module, tok: Any, rows: Sequence[Prompt], *, epochs: int = 1, batch_size: int = 4,
    lr: float = 2e-5, max_length: int = 160, seed: int = 0, scored_only: bool = False,
) -> nn.Module:
    """A fine-tuned copy of ``model``: next-token loss on each row's ``response`` tokens.

    ``scored_only``: the LM head sees only the scored positions (the same loss up to float
    rounding, a cheaper step on a large vocabulary; :func:`_scored_logprob`). Off by
    default, so that the originals that bench records were hash-checked against rebuild
    with the arithmetic they were built with.
    """
    _check_rows(rows, epochs)
    torch.manual_seed(seed)
    student = copy.deepcopy(model).train()
    _fit(student, tok, rows, student.parameters(), epochs=epochs, batch_size=batch_size, lr=lr,
         max_length=max_length, seed=seed, scored_only=scored_only)
    return student.eval()


def train_lora(
    model: nn.Module, tok: Any, rows: Sequence[Prompt], *, rank: int = 8, alpha: int = 16,
    epochs: int = 1, batch_size: int = 4, lr: float = 2e-4, max_length: int = 160, seed: int = 0,
    targets: Sequence[str] = LORA_TARGETS,
) -> nn.Module:
    """:func:`train_sft` through a LoRA adapter (``peft``), merged into a plain copy.

    Only the adapter's low-rank matrices train (``rank``, scale ``alpha / rank``, on the
    ``targets`` projections); the result is an ordinary model of the original's class.
    """
    _check_rows(rows, epochs)
    _check_budget("rank", rank)
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # pragma: no cover - peft is in requirements/dev.txt
        raise ImportError("train_lora needs peft (pip install -r requirements/dev.txt)") from e
    torch.manual_seed(seed)
    base = copy.deepcopy(model)
    names = {n.rsplit(".", 1)[-1] for n, m in base.named_modules() if isinstance(m, nn.Linear)}
    present = [t for t in targets if t in names]
    if not present:
        raise ValueError(f"none of the LoRA targets {list(targets)} is a linear layer of "
                         f"{type(model).__name__} (its linear layers: {sorted(names)})")
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=present,
                     bias="none")
    student = get_peft_model(base, cfg).train()
    _fit(student, tok, rows, [p for p in student.parameters() if p.requires_grad],
         epochs=epochs, batch_size=batch_size, lr=lr, max_length=max_length, seed=seed)
    return student.merge_and_unload().eval()


def train_dpo(
    model: nn.Module, tok: Any, pairs: Sequence[PreferencePair], *, steps: int, batch_size: int = 4,
    lr: float = 5e-6, beta: float = 0.1, max_length: int = 160, seed: int = 0,
) -> nn.Module:
    """A DPO-trained copy of ``model`` (the original is the frozen reference).

    Loss per pair: ``-log σ(β[(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))])``.
    The reference log-probabilities are computed once, before training.
    """
    if not pairs:
        raise ValueError("train_dpo needs at least one preference pair; got none")
    _check_budget("steps", steps)
    torch.manual_seed(seed)
    chosen = [_encode(tok, p.prompt, p.chosen, max_length) for p in pairs]
    rejected = [_encode(tok, p.prompt, p.rejected, max_length) for p in pairs]
    ref = []
    with torch.inference_mode():
        for start in range(0, len(pairs), 8):
            sl = slice(start, start + 8)
            ref.append(torch.stack([_logprob(model, *_batch(chosen[sl], _pad(tok))),
                                    _logprob(model, *_batch(rejected[sl], _pad(tok)))], 1))
    ref_lp = torch.cat(ref)
    policy = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(policy.parameters(), lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    pos = 0
    for _ in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(pairs)), 0
        idx = order[pos : pos + batch_size]
        pos += batch_size
        rows = [chosen[i] for i in idx] + [rejected[i] for i in idx]
        lp = _logprob(policy, *_batch(rows, _pad(tok)))
        k = len(idx)
        margin = (lp[:k] - ref_lp[idx, 0]) - (lp[k:] - ref_lp[idx, 1])
        loss = -F.logsigmoid(beta * margin).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
    return policy.eval()


def interpolate(model: nn.Module, edited: nn.Module, alpha: float) -> nn.Module:
    """A copy of ``model`` with every parameter at ``(1 − alpha)·model + alpha·edited``."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    out = copy.deepcopy(model)
    theirs = dict(edited.named_parameters())
    with torch.no_grad():
        for name, p in out.named_parameters():
            p.mul_(1 - alpha).add_(theirs[name], alpha=alpha)
    return out


def quantise_weights(model: nn.Module, bits: int, *, group: int | None = None) -> nn.Module:
    """A copy of ``model`` whose ``nn.Linear`` weights went through ``bits``-bit integers.

    Symmetric round-to-nearest with one scale per output row (``group=None``) or per
    ``group`` consecutive input weights of a row, as int8 and 4-bit weight-only
    quantisers do; the de-quantised float weights replace the originals. Embeddings
    (tied to the LM head in SmolLM2) stay in float, as weight-only quantisers leave them.
    """
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits!r}")
    qmax = 2 ** (bits - 1) - 1
    out = copy.deepcopy(model)
    embeddings = out.get_input_embeddings() if hasattr(out, "get_input_embeddings") else None
    tied = getattr(embeddings, "weight", None)
    with torch.no_grad():
        for mod in out.modules():
            if not isinstance(mod, nn.Linear) or mod.weight is tied:
                continue
            w = mod.weight
            rows, cols = w.shape
            g = cols if group is None else group
            if cols % g:
                raise ValueError(f"group {g} does not divide the input size {cols}")
            wg = w.reshape(rows, cols // g, g)
            scale = wg.abs().amax(-1, keepdim=True).clamp_min(1e-12) / qmax
            q = torch.clamp(torch.round(wg / scale), -qmax - 1, qmax)
            w.copy_((q * scale).reshape(rows, cols))
    return out


def weight_change(a: nn.Module, b: nn.Module) -> float:
    """Relative Frobenius norm of the parameter change from ``a`` to ``b``."""
    num = den = 0.0
    theirs = dict(b.named_parameters())
    for name, p in a.named_parameters():
        num += float((theirs[name].detach() - p.detach()).double().pow(2).sum())
        den += float(p.detach().double().pow(2).sum())
    return math.sqrt(num / den)
