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

from .._progress import step_bar
from ..jobs.interrupted import JobInterrupted
from ..jobs.provenance import (
    config_hash,
    library_versions,
    tokenizer_hash,
    utc_now,
    weights_fingerprint,
)
from ..model_info import default_max_length, input_device
from ..prompts.encoding import (
    MAX_PROMPT_TOKENS,
    PromptEncoder,
    check_prompt_tokens,
    pad_batch,
    plan_batches,
    span_masks,
)
from ..prompts.prompt_set import PromptSet, load_prompts
from ..prompts.spans import DEFAULT_ONSET_TOKENS, DEFAULT_SPANS, check_spans
from ._format import LayerInfo, stream_of
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
DEFAULT_MAX_TOKENS_PER_BATCH = 8192


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


def capture(
    model: nn.Module,
    tokenizer: Any,
    prompts: Any,
    path: str | os.PathLike[str],
    *,
    layers: LayerSpec = "blocks",
    pooling: str | Sequence[str] = ("mean", "last"),
    spans: str | Sequence[str] = DEFAULT_SPANS,
    span: str | Sequence[str] | None = None,
    onset_tokens: int = DEFAULT_ONSET_TOKENS,
    batch_size: int = 16,
    max_tokens_per_batch: int | None = DEFAULT_MAX_TOKENS_PER_BATCH,
    chat: bool | None = None,
    system_prompt: str | None = None,
    include_response: bool = False,
    max_length: int | None = None,
    max_prompt_tokens: int | None = MAX_PROMPT_TOKENS,
    padding_side: str | None = None,
    commit_rows: int | None = None,
    compression: str | None = "lzf",
    overwrite: bool = False,
    progress: bool | None = None,
) -> ActivationStore:
    """Capture layer-wise, token-pooled activations into an HDF5 store.

    Prompts are rendered (chat template when the tokenizer has one),
    tokenized, sorted by length within windows of ``commit_rows`` rows, run in
    batches with forward hooks that pool on each layer's device, and committed
    window by window. Re-running the same call
    after a crash continues where it stopped; a finished store is returned
    as it is. Under ``torchrun`` / ``accelerate launch`` (an initialised
    ``torch.distributed`` group) each rank captures a contiguous shard into
    its own file and rank 0 merges them (:func:`merge_shards`).

    Parameters
    ----------
    model : transformers.PreTrainedModel, nn.Module, TransformerLens or nnsight model
        Called as ``model(input_ids=..., attention_mask=...)``; eval mode is not changed,
        call ``model.eval()`` yourself (a warning is given in training mode). A
        TransformerLens ``HookedTransformer`` / ``TransformerBridge`` is read at its hook
        points and an nnsight model through the module it wraps (extras
        ``aqi[transformerlens]``, ``aqi[nnsight]``; see :mod:`aqi.activations.adapters`).
    tokenizer : transformers tokenizer or None
        The model's tokenizer (a fast one for every span but ``"all"``). ``None``: a
        TransformerLens or nnsight model's own ``model.tokenizer``.
    prompts : PromptSet or anything :func:`aqi.load_prompts` accepts
        The labelled prompts.
    path : path-like
        The store file to write (``.h5``).
    layers : str, int or sequence, default "blocks"
        Which modules (TransformerLens: hook points) to read; see
        :func:`aqi.activations.resolve_layers`.
    pooling : str or sequence of str, default ("mean", "last")
        ``"mean"``, ``"last"``, ``"first"``, ``"max"``.
    spans : str or sequence of str, default ("instruction", "post_instruction")
        Where the tokens pooled are (:mod:`aqi.prompts.spans`): ``"instruction"``
        (the user's text; ``"user"`` is the older name), ``"post_instruction"`` (the
        template tokens between the user's text and the response — the decision point),
        ``"response_onset"`` (the response's first ``onset_tokens`` tokens),
        ``"response"``, ``"all"``. Every span is pooled from the same forward pass and
        stored as its own dimension; readers select one with ``span=``
        (:meth:`ActivationStore.with_span`).
    span : str or sequence of str, optional
        The same as ``spans`` (the older spelling); give one of the two.
    onset_tokens : int, default 5
        Tokens of the ``"response_onset"`` span.
    batch_size : int, default 16
        Most prompts per forward pass.
    max_tokens_per_batch : int or None, default 8192
        Most padded tokens (rows x longest row) per forward pass; batches of
        long prompts hold fewer rows, and a prompt longer than this runs alone.
        Bounds memory and time per batch whatever the inputs. ``None``: no bound
        (batches of ``batch_size``). Results do not depend on it.
    chat : bool, optional
        Render with the chat template (default: when the tokenizer has one).
    system_prompt : str, optional
        System message for chat rendering.
    include_response : bool, default False
        Append each prompt's response (needs responses in the prompt set).
    max_length : int, optional
        Longer inputs are truncated (each row on its own, before batching),
        flagged and warned about. Default: the tokenizer's / model's limit.
    max_prompt_tokens : int or None, default MAX_PROMPT_TOKENS (4096)
        The per-prompt token limit (the user's text, without the template), the same in
        :func:`aqi.generate_responses` and :func:`aqi.audit_models`: a longer prompt is
        refused, naming it and the limit, before any forward pass (unless ``max_length``,
        given at or below it, truncates it). ``None``: no limit.
    padding_side : {"left", "right"}, optional
        Default: the tokenizer's. Results do not depend on it.
    commit_rows : int, optional
        Rows per committed window (default 2048): the unit of length sorting and of
        the work a crash can lose. Memory does not grow with it: pooled rows go to
        the window's part file batch by batch.
    compression : {"lzf", "gzip", None}, default "lzf"
        Compression of the final store's datasets.
    overwrite : bool, default False
        Replace an existing store (finished or not) at ``path`` instead of resuming it.
        Only an aqi store (and its ``.partial`` folder) is replaced; any other file is
        refused, as is a ``path`` that is the prompt file being read.
    progress : bool, optional
        Show a progress bar (default: :func:`aqi.progress_bars`, else only on a terminal
        outside CI).

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
    >>> store = aqi.capture(model, tok, aqi.bundled_prompts()[:8], path,
    ...                     layers=[0, -1], pooling="mean", spans="all", progress=False)
    >>> store.layers, store.spans
    (('encoder.layer.0', 'encoder.layer.5'), ('all',))
    >>> store.activations("encoder.layer.5").shape
    (8, 384)
    """
    if span is not None and spans != DEFAULT_SPANS:
        raise ValueError(
            f"give spans= or span=, not both (spans={spans!r}, span={span!r}); "
            "span= is the older spelling of spans="
        )
    spans = check_spans(spans if span is None else span, name="spans" if span is None else "span")
    module = as_module(model)  # an nnsight model: the module it wraps
    tokenizer = model_tokenizer(model, tokenizer)
    family = model_family(model)
    model = module
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}; expected a positive int")
    if max_tokens_per_batch is not None and (
        isinstance(max_tokens_per_batch, bool)
        or not isinstance(max_tokens_per_batch, int)
        or max_tokens_per_batch < 1
    ):
        raise ValueError(
            f"max_tokens_per_batch={max_tokens_per_batch!r}; expected a positive int or None"
        )
    if commit_rows is not None and (
        isinstance(commit_rows, bool) or not isinstance(commit_rows, int) or commit_rows < 1
    ):
        raise ValueError(f"commit_rows={commit_rows!r}; expected a positive int or None")
    check_not_input(path, [prompts])
    prompt_set: PromptSet = load_prompts(prompts)
    check_prompt_tokens(tokenizer, prompt_set, max_prompt_tokens, max_length=max_length)
    side = padding_side or getattr(tokenizer, "padding_side", "right")
    if side not in ("left", "right"):
        raise ValueError(f"padding_side={side!r}; expected 'left' or 'right'")
    if model.training:
        warnings.warn(
            "model is in training mode (dropout active); call model.eval() for reproducible "
            "activations",
            stacklevel=2,
        )
    if max_length is None:
        max_length = default_max_length(tokenizer, model)
    encoder = PromptEncoder(
        tokenizer,
        span=spans,
        onset_tokens=onset_tokens,
        chat=chat,
        system_prompt=system_prompt,
        include_response=include_response,
        max_length=max_length,
    )
    hooks = ActivationHooks(model, layers, pooling, early_exit=True)  # resolves names now
    rank, world = current_shard()
    final_path = Path(path)
    rows = prompt_set
    offset = 0
    if world > 1:
        bounds = np.linspace(0, len(prompt_set), world + 1).round().astype(int)
        offset, stop = int(bounds[rank]), int(bounds[rank + 1])
        if stop <= offset:
            raise ValueError(f"{len(prompt_set)} prompts cannot be split over {world} ranks")
        rows = prompt_set[offset:stop]
        path = shard_path(final_path, rank, world)

    layer_info = [LayerInfo(r.name, r.role, r.block, stream_of(r.role)) for r in hooks.layers]
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    provenance = _provenance(
        model,
        tokenizer,
        encoder,
        hooks,
        layer_info,
        rows,
        prompt_set.name,
        shard=(rank, world, offset),
        family=family,
        batch_size=batch_size,
        max_tokens_per_batch=max_tokens_per_batch,
        padding_side=side,
    )
    writer = StoreWriter(
        path,
        rows,
        provenance,
        layer_info,
        hooks.poolings,
        spans=encoder.spans,
        overwrite=overwrite,
        compression=compression,
    )
    with writer:  # holds the store's lock until finalized, or released on any error
        todo = writer.pending()
        if todo:
            _run(
                model,
                hooks,
                encoder,
                rows,
                writer,
                todo,
                batch_size,
                max_tokens_per_batch,
                pad_id,
                side,
                commit_rows,
                progress,
            )
        store = writer.finalize()
    if world > 1:
        store.close()
        return merge_shards(
            [shard_path(final_path, r, world) for r in range(world)], final_path, distributed=True
        )
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


def _run(
    model: nn.Module,
    hooks: ActivationHooks,
    encoder: PromptEncoder,
    rows: PromptSet,
    writer: StoreWriter,
    todo: list[tuple[int, int]],
    batch_size: int,
    max_tokens: int | None,
    pad_id: int,
    side: str,
    commit_rows: int | None,
    progress: bool | None,
) -> None:
    feed = _forward_inputs(model)
    spans = encoder.spans
    order = [(r.name, sp, p) for r in hooks.layers for sp in spans for p in hooks.poolings]
    window = commit_rows or DEFAULT_COMMIT_ROWS
    total = sum(b - a for a, b in todo)
    bar = step_bar(total=len(rows), initial=len(rows) - total, unit="prompt",
                   desc="aqi capture", progress=progress)  # fmt: skip
    tokens = 0
    done = len(rows) - total  # rows committed before this run
    t0 = time.perf_counter()
    try:
        with hooks:
            for a, b in todo:
                for start in range(a, b, window):
                    stop = min(b, start + window)
                    chunk = [rows[i] for i in range(start, stop)]
                    encoded = encoder.encode(chunk)  # truncated row by row, before batching
                    # Longest first: an out-of-memory batch fails at once, not at the end.
                    lengths = [len(e.input_ids) for e in encoded]
                    with writer.part(start, stop) as part:
                        for sel in plan_batches(lengths, batch_size, max_tokens):
                            batch = [encoded[i] for i in sel]
                            ids, attn, _ = pad_batch(batch, pad_id, side)
                            masks = dict(zip(spans, span_masks(batch, side), strict=True))
                            args, kwargs = feed(ids, attn)
                            pooled = hooks.run_spans(*args, spans=masks, **kwargs)
                            arrays = dict(
                                zip(order, (t.numpy() for t in to_cpu(pooled, order)), strict=True)
                            )
                            _check_finite(
                                arrays, [chunk[i].id for i in sel], [start + i for i in sel]
                            )
                            part.write(np.asarray(sel), arrays)
                            tokens += int(attn.sum())
                            bar.update(len(sel))
                            elapsed = time.perf_counter() - t0
                            bar.set_postfix(
                                tok_s=f"{tokens / max(elapsed, 1e-9):,.0f}", refresh=False
                            )
                        part.commit(
                            token_count=np.array(lengths),
                            span_tokens=np.array(
                                [[b - a for a, b in e.span_ranges] for e in encoded]
                            ),
                            truncated=np.array([e.truncated for e in encoded]),
                        )
                    done += stop - start
    except KeyboardInterrupt:
        bar.close()
        with contextlib.suppress(OSError):  # what is on disk, should Ctrl-C hit a commit
            done = len(rows) - sum(b - a for a, b in writer.pending())
        raise CaptureInterrupted(done, len(rows)) from None
    bar.close()


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
