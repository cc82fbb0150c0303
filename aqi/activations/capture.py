"""Capture pooled layer activations of a Hugging Face, TransformerLens or nnsight model into
a resumable store."""

from __future__ import annotations

import contextlib
import inspect
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._settings import moved_keywords, settings_value
from ..jobs.interrupted import JobInterrupted
from ..jobs.provenance import (
    config_hash,
    library_versions,
    tokenizer_hash,
    utc_now,
    weights_fingerprint,
)
from ..jobs.skeleton import Job, Window, run_job
from ..jobs.writing import DEFAULT_MAX_TOKENS_PER_BATCH, Writing  # noqa: F401 - the old home
from ..model_info import default_max_length, input_device
from ..prompts.batching import pad_batch, plan_batches, span_masks
from ..prompts.encoding import PromptEncoder, check_prompt_tokens
from ..prompts.prompt_set import PromptSet, load_prompts
from ..prompts.rendering import Rendering
from ..prompts.spans import DEFAULT_SPANS, check_spans
from ._format import LayerInfo, stream_of
from ._phases import current_timer
from .adapters import (
    ForwardInputs,
    as_module,
    extra_versions,
    model_family,
    model_tokenizer,
    transformerlens_identity,
    transformerlens_inputs,
)
from .distributed import current_shard, merge_shards, shard_path
from .hooks import ActivationHooks, to_cpu
from .layers import LayerSpec, find_architecture
from .store import ActivationStore
from .writer import StoreWriter, check_not_input

__all__ = ["CaptureInterrupted", "capture", "default_max_length", "input_device"]

# Families that derive position ids from the padding themselves (with an offset):
# passing arange-style position ids would be wrong for them.
_OWN_POSITION_IDS = {"roberta", "xlm-roberta", "camembert", "longformer", "esm", "mpnet"}
DEFAULT_COMMIT_ROWS = 2048


class CaptureInterrupted(JobInterrupted):
    """Ctrl-C during :func:`capture`, with the rows committed so far (a re-run resumes there).

    Attributes
    ----------
    rows_done : int
        Rows committed to the store (they survive; a re-run does not redo them).
    rows_total : int
        Rows this capture writes.
    """

    unit = "rows"


def _n_blocks(model: nn.Module) -> int | None:
    """The model's block count (recorded so that stores resolve negative block indices)."""
    if model_family(model) == "transformerlens":
        return transformerlens_identity(model)["n_blocks"]
    try:
        return len(find_architecture(model).blocks)
    except ValueError:
        return None


def _forward_kwargs(model: nn.Module) -> set[str]:
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - exotic forwards
        return set()
    return set(params)


_MOVED = {
    "rendering": (Rendering, ("chat", "system_prompt", "include_response", "max_length",
                              "max_prompt_tokens", "onset_tokens")),
    "writing": (Writing, ("batch_size", "max_tokens_per_batch", "padding_side", "commit_rows",
                          "compression", "overwrite", "progress")),
}  # fmt: skip


@moved_keywords(_MOVED, renamed={"span": "spans"})
def capture(
    model: nn.Module, tokenizer: Any, prompts: Any, path: str | os.PathLike[str], *,
    layers: LayerSpec = "blocks", pooling: str | Sequence[str] = ("mean", "last"),
    spans: str | Sequence[str] = DEFAULT_SPANS, rendering: Rendering | None = None,
    writing: Writing | None = None,
) -> ActivationStore:  # fmt: skip
    """Capture layer-wise, token-pooled activations into an HDF5 store.

    Prompts are rendered (:class:`aqi.Rendering`: the chat template when the tokenizer
    has one), tokenized, sorted by length within windows of ``commit_rows`` rows, run in
    batches with forward hooks that pool on each layer's device, and committed window by
    window (:class:`aqi.Writing`). Re-running the same call after a crash continues where
    it stopped; a finished store is returned as it is. Under ``torchrun`` / ``accelerate
    launch`` each rank captures a contiguous shard and rank 0 merges them
    (:func:`merge_shards`).

    Parameters
    ----------
    model : transformers.PreTrainedModel, nn.Module, TransformerLens or nnsight model
        Called as ``model(input_ids=..., attention_mask=...)``; call ``model.eval()``
        yourself (a warning is given in training mode). A TransformerLens model is read at
        its hook points, an nnsight model through the module it wraps
        (:mod:`aqi.activations.adapters`).
    tokenizer : transformers tokenizer or None
        The model's (a fast one for every span but ``"all"``); ``None``: a TransformerLens
        or nnsight model's own ``model.tokenizer``.
    prompts : PromptSet or anything :func:`aqi.load_prompts` accepts
        The labelled prompts.
    path : path-like
        The store file to write (``.h5``).
    layers : str, int or sequence, default "blocks"
        Which modules (TransformerLens: hook points) to read (:func:`aqi.resolve_layers`).
    pooling : str or sequence of str, default ("mean", "last")
        ``"mean"``, ``"last"``, ``"first"``, ``"max"``.
    spans : str or sequence of str, default ("instruction", "post_instruction")
        Where the pooled tokens are (:mod:`aqi.prompts.spans`): ``"instruction"`` (the
        user's text), ``"post_instruction"`` (the template tokens between it and the
        response: the decision point), ``"response_onset"``, ``"response"`` (these two
        need ``Rendering(include_response=True)``), ``"all"``. Every span is pooled from
        the same forward pass and stored as its own dimension (readers select one with
        ``span=``). ``span=`` is the older spelling (deprecated).
    rendering : Rendering, optional
        How prompts become tokens (:class:`aqi.Rendering`: chat template, system prompt,
        the response appended, ``max_length``, ``max_prompt_tokens``, ``onset_tokens``).
    writing : Writing, optional
        How the store is written (:class:`aqi.Writing`: batches, ``overwrite`` —
        only an aqi store is ever replaced, never the prompt file —, progress bar).
        The keyword arguments that are now fields of these two still work, with a
        ``DeprecationWarning``, until v0.4.

    Returns
    -------
    ActivationStore
        The finished store, opened for reading.

    Examples
    --------
    >>> import aqi, os, tempfile
    >>> from aqi.demo import load_minilm
    >>> model, tok = load_minilm()
    >>> path = os.path.join(tempfile.mkdtemp(), "acts.h5")
    >>> store = aqi.capture(model, tok, aqi.bundled_prompts()[:8], path, layers=[0, -1],
    ...                     pooling="mean", spans="all", writing=aqi.Writing(progress=False))
    >>> store.layers, store.spans
    (('encoder.layer.0', 'encoder.layer.5'), ('all',))
    >>> store.activations("encoder.layer.5").shape
    (8, 384)
    """
    rendering = settings_value("rendering", rendering, Rendering)
    writing = settings_value("writing", writing, Writing)
    job = _CaptureJob(model, tokenizer, prompts, path, layers, pooling, spans, rendering,
                      writing)  # fmt: skip
    store = run_job(job, progress=writing.progress)
    if job.world > 1:
        store.close()
        return merge_shards([shard_path(job.final_path, r, job.world) for r in range(job.world)],
                            job.final_path, distributed=True)  # fmt: skip
    return store


def _provenance(
    model: nn.Module,
    tokenizer: Any,
    encoder: PromptEncoder,
    hooks: ActivationHooks,
    layer_info: list[LayerInfo],
    rows: PromptSet,
    prompts_name: str,
    *,
    shard: tuple[int, int, int],
    family: str,
    batch_size: int,
    max_tokens_per_batch: int | None,
    padding_side: str,
) -> dict[str, Any]:
    """What produced the store; ``identity`` decides whether a capture may be resumed.

    ``family`` is where the model passed to :func:`capture` came from
    (:func:`~aqi.activations.adapters.model_family`); an nnsight model's store is its
    module's, with the wrapper's library version added.
    """
    config = getattr(model, "config", None)
    tl = transformerlens_identity(model) if family == "transformerlens" else None
    identity = {
        "model_config_sha256": config_hash(model) if tl is None else tl["config_sha256"],
        "weights_fingerprint": weights_fingerprint(model),
        "model_class": type(model).__name__,
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "tokenizer_sha256": tokenizer_hash(tokenizer),
        "chat_template_sha256": (PromptEncoder.template_hash(tokenizer) if encoder.chat else None),
        "layers": [li.name for li in layer_info],
        "poolings": list(hooks.poolings),
        "spans": list(encoder.spans),
        "onset_tokens": encoder.onset_tokens if "response_onset" in encoder.spans else None,
        "chat": encoder.chat,
        "system_prompt": encoder.system_prompt,
        "include_response": encoder.include_response,
        "max_length": encoder.max_length,
        "prompts_sha256": rows.fingerprint(),
        "shard": list(shard),
    }
    return {
        "identity": identity,
        "model": {
            "name": getattr(config, "_name_or_path", "") or type(model).__name__,
            "model_type": getattr(config, "model_type", None),
        }
        if tl is None
        else {"name": tl["name"], "model_type": tl["architecture"], "family": family},
        "tokenizer": {
            "name": getattr(tokenizer, "name_or_path", ""),
            "class": type(tokenizer).__name__,
        },
        "capture": {
            "spans": list(encoder.spans),
            "onset_tokens": encoder.onset_tokens,
            "poolings": list(hooks.poolings),
            "layers": [li.to_dict() for li in layer_info],
            "n_blocks": _n_blocks(model),
            "stream": "residual stream after each block, unless a layer says otherwise",
            "pooling_dtype": "float32",
            "batch_size": batch_size,
            "max_tokens_per_batch": max_tokens_per_batch,
            "padding_side": padding_side,
        },
        "prompts": {
            "name": prompts_name,
            "n": len(rows),
            "offset": shard[2],
            **({"source": rows.source} if rows.source else {}),
        },
        "versions": {**library_versions(), **extra_versions(family)},
        "created_utc": utc_now(),
    }


def _forward_inputs(model: nn.Module) -> ForwardInputs:
    """How one padded batch (ids, attention mask) is passed to ``model``: args and kwargs."""
    device = input_device(model)
    if model_family(model) == "transformerlens":
        return transformerlens_inputs(device)
    accepted = _forward_kwargs(model)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    pass_positions = "position_ids" in accepted and model_type not in _OWN_POSITION_IDS
    extra = {"use_cache": False} if "use_cache" in accepted else {}

    def inputs(ids: torch.Tensor, attn: torch.Tensor) -> tuple[tuple[Any, ...], dict[str, Any]]:
        kwargs: dict[str, Any] = dict(extra)
        if pass_positions:
            kwargs["position_ids"] = (attn.cumsum(-1) - 1).clamp(min=0).to(device)
        return (), {"input_ids": ids.to(device), "attention_mask": attn.to(device), **kwargs}

    return inputs


class _CaptureJob(Job[list[int], ActivationStore]):
    """A capture as a job: its batches are forward passes over a window of prompts, its
    rows pooled activations, committed window by window as part files of the store."""

    desc, unit, interrupted = "aqi capture", "prompt", CaptureInterrupted

    def __init__(
        self, model: nn.Module, tokenizer: Any, prompts: Any, path: str | os.PathLike[str],
        layers: LayerSpec, pooling: str | Sequence[str], spans: str | Sequence[str],
        rendering: Rendering, writing: Writing,
    ) -> None:  # fmt: skip
        spans = check_spans(spans, name="spans")
        module = as_module(model)  # an nnsight model: the module it wraps
        self.tokenizer = model_tokenizer(model, tokenizer)
        self.family = model_family(model)
        self.model = model = module
        self.writing = writing
        check_not_input(path, [prompts])
        prompt_set: PromptSet = load_prompts(prompts)
        check_prompt_tokens(self.tokenizer, prompt_set, rendering.max_prompt_tokens,
                            max_length=rendering.max_length)  # fmt: skip
        self.side = writing.padding_side or getattr(self.tokenizer, "padding_side", "right")
        if self.side not in ("left", "right"):
            raise ValueError(f"padding_side={self.side!r}; expected 'left' or 'right'")
        if model.training:
            warnings.warn("model is in training mode (dropout active); call model.eval() for "
                          "reproducible activations", stacklevel=4)  # fmt: skip
        self.encoder = _encoder(self.tokenizer, model, spans, rendering)
        self.hooks = ActivationHooks(model, layers, pooling, early_exit=True)  # resolves names
        self._shard(prompt_set, Path(path))
        self.layer_info = [LayerInfo(r.name, r.role, r.block, stream_of(r.role))
                           for r in self.hooks.layers]  # fmt: skip
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            eos = self.tokenizer.eos_token_id
            pad_id = eos if eos is not None else 0
        self.pad_id = pad_id
        self.total, self.done, self.tokens, self.t0 = len(self.rows), 0, 0, time.perf_counter()
        self.timer = current_timer()  # the speed benchmark's phases; else does nothing

    def _shard(self, prompt_set: PromptSet, final_path: Path) -> None:
        """This rank's rows and shard file (the whole set and ``path`` on one process)."""
        rank, world = current_shard()
        self.final_path, self.path, self.world = final_path, final_path, world
        self.rows, offset = prompt_set, 0
        if world > 1:
            bounds = np.linspace(0, len(prompt_set), world + 1).round().astype(int)
            offset, stop = int(bounds[rank]), int(bounds[rank + 1])
            if stop <= offset:
                raise ValueError(f"{len(prompt_set)} prompts cannot be split over {world} ranks")
            self.rows = prompt_set[offset:stop]
            self.path = shard_path(final_path, rank, world)
        self.prompts_name, self.shard = prompt_set.name, (rank, world, offset)

    def open(self) -> StoreWriter:
        """The store's writer: refuses a file that is not an aqi store, takes the lock,
        and resumes a compatible unfinished store (or returns a finished one)."""
        with self.timer.phase("setup"):
            provenance = _provenance(
                self.model, self.tokenizer, self.encoder, self.hooks, self.layer_info,
                self.rows, self.prompts_name, shard=self.shard, family=self.family,
                batch_size=self.writing.batch_size,
                max_tokens_per_batch=self.writing.max_tokens_per_batch, padding_side=self.side,
            )  # fmt: skip
            self.writer = StoreWriter(self.path, self.rows, provenance, self.layer_info,
                                      self.hooks.poolings, spans=self.encoder.spans,
                                      overwrite=self.writing.overwrite,
                                      compression=self.writing.compression)  # fmt: skip
        return self.writer

    def pending(self) -> list[_CaptureWindow]:
        todo = self.writer.pending()
        self.done = len(self.rows) - sum(b - a for a, b in todo)
        size = self.writing.commit_rows or DEFAULT_COMMIT_ROWS
        return [_CaptureWindow(self, start, min(b, start + size))
                for a, b in todo for start in range(a, b, size)]  # fmt: skip

    def rows_done(self) -> int:
        with contextlib.suppress(OSError):  # what is on disk, should Ctrl-C hit a commit
            self.done = len(self.rows) - sum(b - a for a, b in self.writer.pending())
        return self.done

    def running(self) -> ActivationHooks:
        self.feed = _forward_inputs(self.model)
        self.order = [(r.name, sp, p) for r in self.hooks.layers for sp in self.encoder.spans
                      for p in self.hooks.poolings]  # fmt: skip
        self.t0 = time.perf_counter()
        return self.hooks

    def postfix(self) -> dict[str, str]:
        return {"tok_s": f"{self.tokens / max(time.perf_counter() - self.t0, 1e-9):,.0f}"}

    def finish(self) -> ActivationStore:
        with self.timer.phase("consolidation"):
            return self.writer.finalize()


class _CaptureWindow(Window[list[int]]):
    """Rows ``[start, stop)``: encoded (truncated row by row) when opened, run longest
    first in batches that fit the token budget, written to one part file, committed."""

    def __init__(self, job: _CaptureJob, start: int, stop: int) -> None:
        self.job, self.start, self.stop = job, start, stop

    def __enter__(self) -> _CaptureWindow:
        job, w = self.job, self.job.writing
        self.chunk = [job.rows[i] for i in range(self.start, self.stop)]
        with job.timer.phase("tokenise"):
            self.encoded = job.encoder.encode(self.chunk)  # truncated row by row, then batched
            # Longest first: an out-of-memory batch fails at once, not at the end.
            self.lengths = [len(e.input_ids) for e in self.encoded]
            self.batches = plan_batches(self.lengths, w.batch_size, w.max_tokens_per_batch)
        with job.timer.phase("hdf5 write"):
            self.part = job.writer.part(self.start, self.stop)
        return self

    def __exit__(self, et: object, e: object, tb: object) -> None:
        self.part.__exit__(et, e, tb)  # discards a part not committed

    def run(self, sel: list[int]) -> int:
        job, timer = self.job, self.job.timer
        batch = [self.encoded[i] for i in sel]
        with timer.phase("batching"):
            ids, attn, _ = pad_batch(batch, job.pad_id, job.side)
            masks = dict(zip(job.encoder.spans, span_masks(batch, job.side), strict=True))
            args, kwargs = job.feed(ids, attn)
        with timer.phase("forward"):  # the hooks' pooling is its own phase
            pooled = job.hooks.run_spans(*args, spans=masks, **kwargs)
        with timer.phase("device copy"):
            host = [t.numpy() for t in to_cpu(pooled, job.order)]
        arrays = dict(zip(job.order, host, strict=True))
        _check_finite(arrays, [self.chunk[i].id for i in sel], [self.start + i for i in sel])
        with timer.phase("hdf5 write"):
            self.part.write(np.asarray(sel), arrays)
        job.tokens += int(attn.sum())
        return len(sel)

    def commit(self) -> None:
        with self.job.timer.phase("commit"):
            self.part.commit(
                token_count=np.array(self.lengths),
                span_tokens=np.array([[b - a for a, b in e.span_ranges] for e in self.encoded]),
                truncated=np.array([e.truncated for e in self.encoded]),
            )
        self.job.done += self.stop - self.start


def _encoder(
    tokenizer: Any, model: nn.Module, spans: tuple[str, ...], rendering: Rendering
) -> PromptEncoder:
    """The prompt encoder of a capture (``max_length`` defaults to the model's limit)."""
    max_length = rendering.max_length
    if max_length is None:
        max_length = default_max_length(tokenizer, model)
    return PromptEncoder(tokenizer, span=spans, onset_tokens=rendering.onset_tokens,
                         chat=rendering.chat, system_prompt=rendering.system_prompt,
                         include_response=rendering.include_response,
                         max_length=max_length)  # fmt: skip


def _check_finite(
    arrays: dict[tuple[str, str, str], np.ndarray], ids: list[str], rows: list[int]
) -> None:
    for (layer, span, pooling), arr in arrays.items():
        if not np.isfinite(arr).all():
            bad = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise FloatingPointError(
                f"non-finite activation at layer {layer!r} ({span} span, {pooling} pooling) "
                f"for prompt "
                f"{ids[bad]!r} (row {rows[bad] + 1}); check the model's weights and dtype"
            )
