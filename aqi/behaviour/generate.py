"""Generate a model's responses to a prompt set: batched, left-padded, resumable."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .._errors import ArgumentError
from .._progress import step_bar
from ..jobs.guard import check_not_input
from ..jobs.interrupted import JobInterrupted
from ..jobs.provenance import (
    config_hash,
    library_versions,
    tokenizer_hash,
    utc_now,
    weights_fingerprint,
)
from ..model_info import default_max_length, input_device
from ..prompts.encoding import MAX_PROMPT_TOKENS, PromptEncoder, check_prompt_tokens, pad_batch
from ..prompts.prompt_set import Prompt, PromptSet, load_prompts
from .early_stop import SettledStop, check_stop_judge, early_stop_identity
from .response_writer import ResponseWriter, check_responses_target
from .responses import Response, Responses

__all__ = ["GenerationInterrupted", "check_finite_weights", "generate_responses"]


class GenerationInterrupted(JobInterrupted):
    """Ctrl-C during :func:`generate_responses`, with the responses written so far.

    Attributes
    ----------
    rows_done : int
        Responses in the file (they survive; a re-run does not redo them).
    rows_total : int
        Responses this call writes (prompts × samples).
    unit : str
        ``"responses"`` (what the rows are, for messages).
    """

    unit = "responses"


def check_finite_weights(model: Any) -> None:
    """Raise ``ValueError`` naming the first parameter that holds a NaN or an infinity.

    Examples
    --------
    >>> import torch
    >>> lin = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     lin.weight[0, 0] = float("nan")
    >>> check_finite_weights(lin)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model weights are not finite: parameter 'weight' holds 1 NaN/inf value(s); ...
    """
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.device.type == "meta" or not p.is_floating_point():
                continue
            bad = int((~torch.isfinite(p)).sum())
            if bad:
                raise ValueError(
                    f"model weights are not finite: parameter {name!r} holds {bad} NaN/inf "
                    "value(s); refusing to use this model"
                )


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(f"{{{name}}}; expected a positive int", **{name: value})
    return value


def generate_responses(
    model: Any,
    tokenizer: Any,
    prompts: Any,
    out: str | os.PathLike[str] | None = None,
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int | None = None,
    n: int = 1,
    seed: int = 0,
    chat: bool | None = None,
    system_prompt: str | None = None,
    max_length: int | None = None,
    max_prompt_tokens: int | None = MAX_PROMPT_TOKENS,
    overwrite: bool = False,
    progress: bool | None = None,
    stop_when_settled: Any = None,
) -> Responses:
    """Generate the model's responses to each prompt (greedy by default).

    Prompts are rendered by the same code as :func:`aqi.capture`
    (:class:`~aqi.prompts.encoding.PromptEncoder`: the chat template with a
    generation prompt when the tokenizer has one), sorted by length, left-padded
    and decoded in batches with the KV cache. With ``out`` the responses are
    appended to a JSONL file batch by batch (flush + fsync); calling again with
    the same settings skips what is there and generates the rest, and a file
    made with other settings is refused.

    Parameters
    ----------
    model : transformers causal LM
        Anything with ``generate`` (and ``named_parameters``). Weights holding
        NaN or inf are refused before generating.
    tokenizer : transformers tokenizer
        The model's tokenizer. Without a pad token its eos token pads (a warning says so).
    prompts : PromptSet or anything :func:`aqi.load_prompts` accepts
    out : path-like, optional
        The responses file (``aqi-responses`` JSONL, see ``docs/format.md``).
    max_new_tokens : int, default 64
        Generated tokens per response at most.
    batch_size : int, default 16
        Prompts per ``generate`` call (each yields ``n`` sequences).
    do_sample : bool, default False
        Sample instead of greedy decoding.
    temperature, top_p, top_k : sampling settings
        Used only with ``do_sample``; ``top_k=None`` disables top-k.
    n : int, default 1
        Samples per prompt (``n > 1`` needs ``do_sample=True``).
    seed : int, default 0
        Sampling seed. Batch ``b`` (of the length-sorted order) is seeded from
        ``(seed, b)``, so a resumed run draws what an uninterrupted one would;
        the global RNG is left as it was.
    chat, system_prompt :
        As in :func:`aqi.capture`.
    max_length : int, optional
        Context length (prompt + ``max_new_tokens``). Default: the tokenizer's /
        model's limit. A longer prompt has its **user text cut on the left**
        (the template and the end of the request are kept), with one warning;
        the response records it as ``truncated``.
    max_prompt_tokens : int or None, default MAX_PROMPT_TOKENS (4096)
        The per-prompt token limit, as in :func:`aqi.capture`: a longer prompt is
        refused, naming it and the limit, before the model runs (unless ``max_length``,
        given at or below it, truncates it). ``None``: no limit.
    overwrite : bool, default False
        Replace an existing ``out`` instead of resuming it. Only an aqi responses
        file is ever replaced (a prompt file, another JSONL or an activation store
        is refused), and never the prompt file of the same call. While it runs,
        ``<out>.lock`` keeps a second writer off the file.
    progress : bool, optional
        Progress bar (default: only on a terminal).
    stop_when_settled : judge, optional
        Stop each response as soon as this judge's verdict on it can no longer change
        (its ``settled(text)``, e.g. :meth:`RefusalJudge.settled`): the row is finished
        as if it had produced an end-of-sequence token (``finish_reason="settled"``), and
        a batch ends when all its rows are finished. The judge's labels of the stored
        responses are the labels it gives the responses generated to ``max_new_tokens``;
        other judges, and the activations captured over the responses, see shorter
        texts. Recorded in the file's identity (``stop_when_settled``), so a file made
        without it is not resumed with it. :meth:`Responses.token_use` says how many
        tokens were generated against ``max_new_tokens`` per response.

    Returns
    -------
    Responses
        One record per (prompt, sample), in prompt order; empty generations are kept.

    Raises
    ------
    TypeError
        ``model`` has no ``generate`` method, or ``stop_when_settled`` has no ``settled`` method.
    ValueError
        Bad settings, non-finite weights, a tokenizer with neither pad nor eos
        token, a prompt whose template alone exceeds the context, an ``out``
        file made with other settings, ``out`` that is not an aqi responses file
        or is the prompt file.
    aqi.activations.StoreLockedError
        Another live process is writing ``out``.
    GenerationInterrupted
        Ctrl-C; the responses written so far stay and a re-run resumes.

    Examples
    --------
    >>> import aqi, transformers as tf
    >>> from aqi.demo import load_demo_model
    >>> _, tok = load_demo_model()
    >>> _ = torch.manual_seed(0)
    >>> model = tf.LlamaForCausalLM(tf.LlamaConfig(vocab_size=len(tok), hidden_size=16,
    ...     intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)).eval()
    >>> rs = generate_responses(model, tok, aqi.bundled_prompts()[:4], max_new_tokens=5)
    >>> len(rs), rs[0].prompt_id, rs[0].n_new_tokens <= 5
    (4, 'civ-01-safe', True)
    """
    if not callable(getattr(model, "generate", None)):
        raise TypeError(
            f"model ({type(model).__name__}) has no generate method; load a causal LM "
            "(e.g. AutoModelForCausalLM), not a bare encoder/decoder"
        )
    _positive_int("max_new_tokens", max_new_tokens)
    _positive_int("batch_size", batch_size)
    _positive_int("n", n)
    if n > 1 and not do_sample:
        raise ArgumentError("{n} samples per prompt needs {do_sample} (greedy gives one)", n=n,
                            do_sample=True)
    if not do_sample:  # greedy decoding reads none of the sampling settings
        for k, v, default in (("temperature", temperature, 1.0), ("top_p", top_p, 1.0),
                              ("top_k", top_k, None)):  # fmt: skip
            if v != default:
                raise ArgumentError(f"{{{k}}} has no effect on greedy decoding; add {{do_sample}} "
                                    "to sample, or leave it out", **{k: v, "do_sample": True})
    if do_sample:
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ArgumentError("{temperature}; expected a number > 0", temperature=temperature)
        if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ArgumentError("{top_p}; expected a number in (0, 1]", top_p=top_p)
        if top_k is not None:
            _positive_int("top_k", top_k)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed={seed!r}; expected an int")
    if stop_when_settled is not None:
        check_stop_judge(stop_when_settled)
    if out is not None:
        check_not_input(out, [prompts])
        check_responses_target(out)  # early; the writer checks again under its lock
    check_finite_weights(model)
    if getattr(model, "training", False):
        warnings.warn("model is in training mode (dropout active); call model.eval()",
                      stacklevel=2)  # fmt: skip
    prompt_set: PromptSet = load_prompts(prompts)
    check_prompt_tokens(tokenizer, prompt_set, max_prompt_tokens, max_length=max_length)
    encoder = PromptEncoder(tokenizer, span="all", chat=chat, system_prompt=system_prompt)
    pad_id = _pad_id(tokenizer)
    context = max_length if max_length is not None else default_max_length(tokenizer, model)
    if context is not None:
        _positive_int("max_length", context)
        if context <= max_new_tokens:
            raise ValueError(
                f"max_length={context} leaves no room for a prompt with "
                f"max_new_tokens={max_new_tokens}"
            )
    limit = None if context is None else context - max_new_tokens
    encoded = _encode(encoder, prompt_set, limit)

    gen_config = copy.deepcopy(model.generation_config)
    gen_config.update(
        max_new_tokens=max_new_tokens, do_sample=do_sample, num_return_sequences=n,
        pad_token_id=pad_id, use_cache=True, max_length=None,
        temperature=float(temperature) if do_sample else 1.0,
        top_p=float(top_p) if do_sample else 1.0,
        top_k=(top_k or 0) if do_sample else 50,
    )  # fmt: skip
    if gen_config.eos_token_id is None:
        gen_config.eos_token_id = tokenizer.eos_token_id
    eos = gen_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}

    identity = {
        "model_config_sha256": config_hash(model),
        "weights_fingerprint": weights_fingerprint(model),
        "model_class": type(model).__name__,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "tokenizer_sha256": tokenizer_hash(tokenizer),
        "chat": encoder.chat,
        "chat_template_sha256": PromptEncoder.template_hash(tokenizer) if encoder.chat else None,
        "system_prompt": system_prompt,
        "prompts_sha256": prompt_set.fingerprint(),
        "max_new_tokens": max_new_tokens,
        "do_sample": bool(do_sample),
        "temperature": gen_config.temperature,
        "top_p": gen_config.top_p,
        "top_k": top_k if do_sample else None,
        "n": n,
        "seed": seed,
        "batch_size": batch_size,
        "max_length": context,
        "pad_token_id": pad_id,
        "generation_config": json.loads(json.dumps(gen_config.to_diff_dict(), default=str)),
        "stop_when_settled": early_stop_identity(stop_when_settled),
    }
    config = getattr(model, "config", None)
    header = {
        "identity": identity,
        "provenance": {
            "model": getattr(config, "_name_or_path", "") or type(model).__name__,
            "tokenizer": getattr(tokenizer, "name_or_path", ""),
            "prompts": prompt_set.name,
            "n_prompts": len(prompt_set),
            "created": utc_now(),
            "versions": library_versions(),
        },
    }
    writer = None if out is None else ResponseWriter(out, header, overwrite=overwrite)
    done = {r.key: r for r in (writer.done if writer else [])}

    order = sorted(range(len(prompt_set)), key=lambda i: -len(encoded[i][0]))
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    device = input_device(model)
    total = len(prompt_set) * n
    resumed = sum(1 for p in prompt_set for s in range(n) if (p.id, s) in done)
    bar = step_bar(total=total, initial=resumed, desc="generate", unit="response",
                   progress=progress)  # fmt: skip
    try:
        for b, idx in enumerate(batches):
            keys = [(prompt_set[i].id, s) for i in idx for s in range(n)]
            if all(k in done for k in keys):
                continue
            rows = [prompt_set[i] for i in idx]
            new = _generate_batch(model, tokenizer, gen_config, [encoded[i] for i in idx],
                                  rows, pad_id, eos_ids, device, _batch_seed(seed, b),
                                  n, stop_when_settled)  # fmt: skip
            fresh = [r for r in new if r.key not in done]
            if writer is not None:
                writer.append(fresh)
            done.update((r.key, r) for r in fresh)
            bar.update(len(fresh))
    except KeyboardInterrupt:
        raise GenerationInterrupted(len(done), len(prompt_set) * n) from None
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    records = tuple(done[(p.id, s)] for p in prompt_set for s in range(n))
    # The file they were written to, as load_responses(out) would say: the same evidence
    # whether a run generated its responses or resumed them.
    return Responses(records=records, header=header,
                     source="" if out is None else str(Path(out)))  # fmt: skip


def _pad_id(tokenizer: Any) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    if tokenizer.eos_token_id is None:
        raise ValueError(
            f"{type(tokenizer).__name__} has neither a pad token nor an eos token; set "
            "tokenizer.pad_token before generating"
        )
    warnings.warn(
        f"tokenizer has no pad token; padding with its eos token {tokenizer.eos_token!r} "
        f"(id {tokenizer.eos_token_id}); the attention mask hides it",
        stacklevel=3,
    )
    return int(tokenizer.eos_token_id)


def _encode(
    encoder: PromptEncoder, prompts: PromptSet, limit: int | None
) -> list[tuple[list[int], bool]]:
    """Token ids of each rendered prompt; over-long ones have their user text cut on the left."""
    out = [(list(e.input_ids), False) for e in encoder.encode(list(prompts))]
    if limit is None:
        return out
    n_cut = 0
    for i, (ids, _) in enumerate(out):
        if len(ids) > limit:
            out[i] = (_cut_left(encoder, prompts[i], len(ids), limit), True)
            n_cut += 1
    if n_cut:
        warnings.warn(
            f"{n_cut} prompt(s) longer than the context allows ({limit} tokens + max_new_tokens) "
            "had their user text cut on the left; their responses are flagged 'truncated'",
            stacklevel=3,
        )
    return out


def _cut_left(encoder: PromptEncoder, prompt: Prompt, n_ids: int, limit: int) -> list[int]:
    tok = encoder.tokenizer
    if not getattr(tok, "is_fast", False):
        raise ValueError(
            f"prompt {prompt.id!r} ({n_ids} tokens) exceeds the context ({limit} tokens); "
            "cutting it needs token offsets (a fast tokenizer) or a larger max_length"
        )
    text = prompt.text
    for _ in range(8):  # re-rendering can merge tokens at the cut; converges in 1-2 rounds
        offsets = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        over = n_ids - limit
        if over >= len(offsets):
            raise ValueError(
                f"prompt {prompt.id!r}: the template alone takes more than the {limit} tokens "
                "the context leaves; raise max_length or lower max_new_tokens"
            )
        text = text[offsets[over][0] :]
        ids = list(encoder.encode([replace(prompt, text=text)])[0].input_ids)
        if len(ids) <= limit:
            return ids
        n_ids = len(ids)
    raise ValueError(f"prompt {prompt.id!r}: cannot be cut to {limit} tokens")  # pragma: no cover


def _batch_seed(seed: int, batch: int) -> int:
    digest = hashlib.sha256(f"aqi-generate:{seed}:{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def _generate_batch(
    model: Any,
    tokenizer: Any,
    gen_config: Any,
    encoded: Sequence[tuple[list[int], bool]],
    rows: Sequence[Prompt],
    pad_id: int,
    eos_ids: set[int],
    device: torch.device,
    batch_seed: int,
    n: int,
    judge: Any = None,
) -> list[Response]:
    from ..prompts.encoding import EncodedPrompt

    enc = [EncodedPrompt(ids, 0, len(ids), t) for ids, t in encoded]
    ids, attn, _ = pad_batch(enc, pad_id, "left")
    devices = [device] if device.type == "cuda" else []
    extra: dict[str, Any] = {}
    settled: dict[int, int] = {}
    if judge is not None:
        from transformers import StoppingCriteriaList

        criterion = SettledStop(judge, tokenizer, ids.shape[1], eos_ids)
        extra["stopping_criteria"] = StoppingCriteriaList([criterion])
        settled = criterion.stopped_at
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(batch_seed)
        seqs = model.generate(input_ids=ids.to(device), attention_mask=attn.to(device),
                              generation_config=gen_config, **extra)  # fmt: skip
    new_tokens = seqs[:, ids.shape[1] :].tolist()
    out = []
    for j, toks in enumerate(new_tokens):
        prompt, (prompt_ids, truncated) = rows[j // n], encoded[j // n]
        stop = next((k for k, t in enumerate(toks) if t in eos_ids), None)
        kept = toks if stop is None else toks[:stop]
        reason = "length" if stop is None else "eos"
        if j in settled and (stop is None or stop >= settled[j]):
            kept, reason = toks[: settled[j]], "settled"
        out.append(
            Response(
                prompt_id=prompt.id,
                sample=j % n,
                text=tokenizer.decode(kept, skip_special_tokens=True),
                label=prompt.label,
                category=prompt.category,
                pair_id=prompt.pair_id,
                finish_reason=reason,
                n_prompt_tokens=len(prompt_ids),
                n_new_tokens=len(kept),
                truncated=truncated,
                prompt_text=prompt.text,
            )
        )
    return out
