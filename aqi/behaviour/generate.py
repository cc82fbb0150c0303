"""Generate a model's responses to a prompt set: batched, left-padded, resumable."""

from __future__ import annotations

import contextlib
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

from .._settings import check_positive_int, moved_keywords, only_defaults, settings_value
from ..jobs.guard import check_not_input
from ..jobs.interrupted import JobInterrupted
from ..jobs.provenance import (
    config_hash,
    library_versions,
    tokenizer_hash,
    utc_now,
    weights_fingerprint,
)
from ..jobs.skeleton import Job, Window, run_job
from ..jobs.writing import CAPTURE_ONLY as WRITING_CAPTURE_ONLY
from ..jobs.writing import Writing
from ..model_info import default_max_length, input_device
from ..prompts.batching import EncodedPrompt, pad_batch
from ..prompts.encoding import PromptEncoder, check_prompt_tokens
from ..prompts.prompt_set import Prompt, PromptSet, load_prompts
from ..prompts.rendering import CAPTURE_ONLY as RENDERING_CAPTURE_ONLY
from ..prompts.rendering import Rendering
from .decoding import Decoding
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


_MOVED = {
    "decoding": (Decoding, ("max_new_tokens", "do_sample", "temperature", "top_p", "top_k",
                            "n", "seed")),
    "rendering": (Rendering, ("chat", "system_prompt", "max_length", "max_prompt_tokens")),
    "writing": (Writing, ("batch_size", "overwrite", "progress")),
}  # fmt: skip


@moved_keywords(_MOVED)
def generate_responses(
    model: Any, tokenizer: Any, prompts: Any, out: str | os.PathLike[str] | None = None, *,
    decoding: Decoding | None = None, rendering: Rendering | None = None,
    writing: Writing | None = None, stop_when_settled: Any = None,
) -> Responses:  # fmt: skip
    """Generate the model's responses to each prompt (greedy by default).

    Prompts are rendered by the same code as :func:`aqi.capture` (the chat template with
    a generation prompt when the tokenizer has one), sorted by length, left-padded and
    decoded in batches with the KV cache. With ``out`` the responses are appended to a
    JSONL file batch by batch (flush + fsync); calling again with the same settings skips
    what is there and generates the rest, and a file made with other settings is refused.

    Parameters
    ----------
    model : transformers causal LM
        Anything with ``generate``; weights holding NaN or inf are refused first.
    tokenizer : transformers tokenizer
        The model's tokenizer. Without a pad token its eos token pads (a warning says so).
    prompts : PromptSet or anything :func:`aqi.load_prompts` accepts
    out : path-like, optional
        The responses file (``aqi-responses`` JSONL, see ``docs/format.md``). Only an aqi
        responses file is ever replaced, never the prompt file; ``<out>.lock`` keeps a
        second writer off it.
    decoding : Decoding, optional
        How tokens are picked (:class:`aqi.Decoding`: ``max_new_tokens``, greedy or
        sampled, ``n`` samples per prompt, the seed).
    rendering : Rendering, optional
        How prompts become tokens (:class:`aqi.Rendering`). ``max_length`` is the context
        (prompt + ``max_new_tokens``): a longer prompt has its **user text cut on the
        left**, with one warning, and its responses are flagged ``truncated``.
    writing : Writing, optional
        How the file is written (:class:`aqi.Writing`: ``batch_size``, ``overwrite``,
        ``progress``). The keyword arguments that are now fields of these three values
        still work, with a ``DeprecationWarning``, until v0.4.
    stop_when_settled : judge, optional
        Stop each response once this judge's verdict on it can no longer change (its
        ``settled(text)``, e.g. :meth:`RefusalJudge.settled`; ``finish_reason="settled"``).
        Its labels are those of the full-length responses; other judges, and activations
        over the responses, see shorter texts. Recorded in the file's identity.

    Returns
    -------
    Responses
        One record per (prompt, sample), in prompt order; empty generations are kept.

    Raises
    ------
    TypeError
        ``model`` has no ``generate`` method, or ``stop_when_settled`` no ``settled``.
    ValueError
        Non-finite weights, no pad nor eos token, a template longer than the context, an
        ``out`` made with other settings or not an aqi responses file, a capture-only
        setting given.
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
    >>> rs = generate_responses(model, tok, aqi.bundled_prompts()[:4],
    ...                         decoding=aqi.Decoding(max_new_tokens=5))
    >>> len(rs), rs[0].prompt_id, rs[0].n_new_tokens <= 5
    (4, 'civ-01-safe', True)
    """
    decoding = settings_value("decoding", decoding, Decoding)
    rendering = settings_value("rendering", rendering, Rendering)
    writing = settings_value("writing", writing, Writing)
    job = _GenerationJob(model, tokenizer, prompts, out, decoding, rendering, writing,
                         stop_when_settled)  # fmt: skip
    return run_job(job, progress=writing.progress)


class _GenerationJob(Job[list[int], Responses]):
    """Generation as a job: its batches are ``generate`` calls over length-sorted prompts,
    its rows responses, appended to the file batch by batch."""

    desc, unit, interrupted = "generate", "response", GenerationInterrupted

    def __init__(
        self, model: Any, tokenizer: Any, prompts: Any, out: str | os.PathLike[str] | None,
        decoding: Decoding, rendering: Rendering, writing: Writing, judge: Any,
    ) -> None:  # fmt: skip
        _check_inputs(model, prompts, out, rendering, writing, judge)
        self.model, self.tokenizer, self.out, self.judge = model, tokenizer, out, judge
        self.decoding, self.writing = decoding, writing
        self.prompt_set: PromptSet = load_prompts(prompts)
        check_prompt_tokens(tokenizer, self.prompt_set, rendering.max_prompt_tokens,
                            max_length=rendering.max_length)  # fmt: skip
        encoder = PromptEncoder(tokenizer, span="all", chat=rendering.chat,
                                system_prompt=rendering.system_prompt)  # fmt: skip
        self.pad_id = _pad_id(tokenizer)
        context = _context(rendering.max_length, tokenizer, model, decoding.max_new_tokens)
        limit = None if context is None else context - decoding.max_new_tokens
        self.encoded = _encode(encoder, self.prompt_set, limit)
        self.gen_config = _generation_config(model, tokenizer, decoding, self.pad_id)
        eos = self.gen_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        self.header = _header(self, encoder, rendering, context)
        self.device = input_device(model)
        self.total = len(self.prompt_set) * decoding.n
        self.done: dict[tuple[str, int], Response] = {}

    def open(self) -> contextlib.AbstractContextManager[Any]:
        """The file's writer: refuses a file that is not an aqi responses file, takes the
        lock and reads the responses of a file of the same identity."""
        if self.out is None:
            return contextlib.nullcontext()
        writer = ResponseWriter(self.out, self.header, overwrite=self.writing.overwrite)
        self.writer: ResponseWriter | None = writer
        self.done = {r.key: r for r in writer.done}
        return writer

    def pending(self) -> list[_GenerationBatch]:
        """The batches of the length-sorted order with a response still to generate (the
        index of each in that order seeds it)."""
        n, ps = self.decoding.n, self.prompt_set
        order = sorted(range(len(ps)), key=lambda i: -len(self.encoded[i][0]))
        size = self.writing.batch_size
        batches = [order[s : s + size] for s in range(0, len(order), size)]
        return [_GenerationBatch(self, b, idx) for b, idx in enumerate(batches)
                if not all((ps[i].id, s) in self.done for i in idx for s in range(n))]  # fmt: skip

    def rows_done(self) -> int:
        return len(self.done)

    def finish(self) -> Responses:
        n = self.decoding.n
        records = tuple(self.done[(p.id, s)] for p in self.prompt_set for s in range(n))
        # The file they were written to, as load_responses(out) would say: the same evidence
        # whether a run generated its responses or resumed them.
        return Responses(records=records, header=self.header,
                         source="" if self.out is None else str(Path(self.out)))  # fmt: skip


class _GenerationBatch(Window[list[int]]):
    """One ``generate`` call, committed at once: its new responses appended to the file."""

    def __init__(self, job: _GenerationJob, index: int, rows: list[int]) -> None:
        self.job, self.index, self.batches = job, index, [rows]
        self.fresh: list[Response] = []

    def run(self, idx: list[int]) -> int:
        job = self.job
        new = _generate_batch(job.model, job.tokenizer, job.gen_config,
                              [job.encoded[i] for i in idx], [job.prompt_set[i] for i in idx],
                              job.pad_id, job.eos_ids, job.device,
                              _batch_seed(job.decoding.seed, self.index), job.decoding.n,
                              job.judge)  # fmt: skip
        self.fresh = [r for r in new if r.key not in job.done]
        return len(self.fresh)

    def commit(self) -> None:
        if self.job.out is not None:
            self.job.writer.append(self.fresh)
        self.job.done.update((r.key, r) for r in self.fresh)


def _check_inputs(model: Any, prompts: Any, out: Any, rendering: Rendering, writing: Writing,
                  judge: Any) -> None:  # fmt: skip
    """What generation refuses before it reads the prompts: a model without ``generate``,
    capture-only settings, a judge that cannot settle, an ``out`` that may not be written,
    non-finite weights (and a model in training mode warns)."""
    if not callable(getattr(model, "generate", None)):
        raise TypeError(
            f"model ({type(model).__name__}) has no generate method; load a causal LM "
            "(e.g. AutoModelForCausalLM), not a bare encoder/decoder"
        )
    only_defaults(rendering, RENDERING_CAPTURE_ONLY, where="generation",
                  why="how a capture renders and reads the response")  # fmt: skip
    only_defaults(writing, WRITING_CAPTURE_ONLY, where="generation",
                  why="a capture's forward passes and store")  # fmt: skip
    if judge is not None:
        check_stop_judge(judge)
    if out is not None:
        check_not_input(out, [prompts])
        check_responses_target(out)  # early; the writer checks again under its lock
    check_finite_weights(model)
    if getattr(model, "training", False):
        warnings.warn("model is in training mode (dropout active); call model.eval()",
                      stacklevel=5)  # fmt: skip


def _context(max_length: int | None, tokenizer: Any, model: Any, max_new_tokens: int) -> int | None:
    """The context (prompt + new tokens): ``max_length``, else the model's limit."""
    context = max_length if max_length is not None else default_max_length(tokenizer, model)
    if context is not None:
        check_positive_int("max_length", context)
        if context <= max_new_tokens:
            raise ValueError(
                f"max_length={context} leaves no room for a prompt with "
                f"max_new_tokens={max_new_tokens}"
            )
    return context


def _generation_config(model: Any, tokenizer: Any, decoding: Decoding, pad_id: int) -> Any:
    """The model's generation config with this call's decoding (a copy)."""
    d = decoding
    gen_config = copy.deepcopy(model.generation_config)
    gen_config.update(
        max_new_tokens=d.max_new_tokens, do_sample=d.do_sample, num_return_sequences=d.n,
        pad_token_id=pad_id, use_cache=True, max_length=None,
        temperature=float(d.temperature) if d.do_sample else 1.0,
        top_p=float(d.top_p) if d.do_sample else 1.0,
        top_k=(d.top_k or 0) if d.do_sample else 50,
    )  # fmt: skip
    if gen_config.eos_token_id is None:
        gen_config.eos_token_id = tokenizer.eos_token_id
    return gen_config


def _header(
    job: _GenerationJob, encoder: PromptEncoder, rendering: Rendering, context: int | None
) -> dict[str, Any]:
    """The file's header: its identity (what decides a resume) and provenance."""
    model, tokenizer, d, prompt_set = job.model, job.tokenizer, job.decoding, job.prompt_set
    gen_config = job.gen_config
    identity = {
        "model_config_sha256": config_hash(model),
        "weights_fingerprint": weights_fingerprint(model),
        "model_class": type(model).__name__,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "tokenizer_sha256": tokenizer_hash(tokenizer),
        "chat": encoder.chat,
        "chat_template_sha256": PromptEncoder.template_hash(tokenizer) if encoder.chat else None,
        "system_prompt": rendering.system_prompt,
        "prompts_sha256": prompt_set.fingerprint(),
        "max_new_tokens": d.max_new_tokens,
        "do_sample": bool(d.do_sample),
        "temperature": gen_config.temperature,
        "top_p": gen_config.top_p,
        "top_k": d.top_k if d.do_sample else None,
        "n": d.n,
        "seed": d.seed,
        "batch_size": job.writing.batch_size,
        "max_length": context,
        "pad_token_id": job.pad_id,
        "generation_config": json.loads(json.dumps(gen_config.to_diff_dict(), default=str)),
        "stop_when_settled": early_stop_identity(job.judge),
    }
    config = getattr(model, "config", None)
    return {
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
        stacklevel=5,
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
            stacklevel=5,
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
