"""Forward hooks that pool layer outputs where they are computed.

:class:`ActivationHooks` works on any ``nn.Module`` — decoders, encoders,
reward models, non-HF models. Each hook pools its layer's output on that
layer's device as soon as it is produced, so at most one layer's
``[batch, seq, dim]`` is alive at a time beyond what the model itself holds.
Hooks are removed in ``finally``: after success, after an exception in
forward, and when registration fails half-way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import torch
from torch import nn

from ._phases import current_timer
from .adapters import as_module
from .layers import LayerRef, LayerSpec, resolve_layers
from .pooling import POOLINGS, SpanMask, pool

__all__ = ["ActivationHooks", "check_poolings"]


_ALL = ""  # the key of the one unnamed span of run() / run_with_output()


class _StopForward(Exception):
    """Raised by the last hook to skip the layers after the deepest requested one."""


def check_poolings(pooling: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a pooling name or list of names; returns a tuple without duplicates."""
    items = [pooling] if isinstance(pooling, str) else list(pooling)
    if not items:
        raise ValueError(f"pooling is empty; pass one or more of {', '.join(POOLINGS)}")
    for p in items:
        if p not in POOLINGS:
            raise ValueError(f"pooling={p!r}; expected one of {', '.join(map(repr, POOLINGS))}")
    return tuple(dict.fromkeys(items))


def _first_tensor(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "to_tuple"):  # transformers ModelOutput
        output = output.to_tuple()
    if isinstance(output, (tuple, list)) and output:
        return output[0]
    return output


class ActivationHooks:
    """Capture pooled layer outputs of a module through forward hooks.

    Parameters
    ----------
    model : torch.nn.Module or nnsight model
        Any module, a TransformerLens model (layers are hook points, called as
        ``hooks.run(tokens, attention_mask=mask)``) or an nnsight model (its module is hooked).
    layers : str, int or sequence, default "blocks"
        Layer spec, see :func:`aqi.activations.resolve_layers`.
    pooling : str or sequence of str, default "mean"
        One or more of ``"mean"``, ``"last"``, ``"first"``, ``"max"``.
        Outputs without a sequence axis (``[batch, dim]``) are kept as they are.
    early_exit : bool, default False
        Stop the forward pass once every requested layer has run (the
        model's remaining layers and head are skipped). Use :meth:`run`,
        which handles the stop.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> with ActivationHooks(net, ["0", "2"], pooling="mean") as hooks:
    ...     out = hooks.run(torch.randn(3, 5, 4))
    >>> sorted(out), tuple(out["0"]["mean"].shape)
    (['0', '2'], (3, 8))
    >>> net[0]._forward_hooks
    OrderedDict()
    """

    def __init__(
        self,
        model: nn.Module | Any,
        layers: LayerSpec = "blocks",
        pooling: str | Sequence[str] = "mean",
        *,
        early_exit: bool = False,
    ) -> None:
        self.model = as_module(model)  # an nnsight model: the module it wraps
        self.layers: list[LayerRef] = resolve_layers(self.model, layers)
        self.poolings = check_poolings(pooling)
        self.early_exit = bool(early_exit)
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._spans: dict[str, SpanMask] | None = None  # None: every position
        self._out: dict[str, dict[str, dict[str, torch.Tensor]]] = {}
        self._timer = current_timer()  # the speed benchmark's phases; else does nothing

    @property
    def layer_names(self) -> list[str]:
        return [r.name for r in self.layers]

    # -- registration ------------------------------------------------------
    def __enter__(self) -> ActivationHooks:
        if self._handles:
            raise RuntimeError("ActivationHooks is already active; it is not re-entrant")
        try:
            for ref in self.layers:
                self._handles.append(ref.module.register_forward_hook(self._hook(ref.name)))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this object added (idempotent)."""
        while self._handles:
            self._handles.pop().remove()
        self._spans = None

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            h = _first_tensor(output)
            if not isinstance(h, torch.Tensor):
                raise TypeError(
                    f"layer {name!r} returned {type(output).__name__}; expected a tensor "
                    "or a tuple whose first element is a tensor"
                )
            if name in self._out:
                raise RuntimeError(
                    f"layer {name!r} ran twice in one forward pass; its pooled output "
                    "would be ambiguous (is the module shared?)"
                )
            if h.ndim not in (2, 3):
                raise ValueError(
                    f"layer {name!r} output has shape {tuple(h.shape)}; expected "
                    "[batch, seq, dim] or [batch, dim]"
                )
            with self._timer.phase("pooling"):
                self._out[name] = self._pool(h)
            if self.early_exit and len(self._out) == len(self.layers):
                raise _StopForward

        return hook

    def _pool(self, h: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        """``{span: {pooling: [batch, dim]}}`` of one layer's ``[batch, seq, dim]`` output
        (a ``[batch, dim]`` output is kept as it is, for every span and pooling)."""
        spans = self._spans
        if h.ndim == 2:
            keys = list(spans) if spans is not None else [_ALL]
            flat = h.detach().float()
            return {k: {p: flat for p in self.poolings} for k in keys}
        if spans is None:
            spans = {_ALL: SpanMask.full(h.shape[0], h.shape[1], h.device)}
        # Every span is pooled from this one hook call: one forward serves them all.
        return {k: {p: pool(h.detach(), p, m) for p in self.poolings} for k, m in spans.items()}

    # -- running -------------------------------------------------------------
    def set_span(self, span: SpanMask | torch.Tensor | None) -> None:
        """Set the tokens to pool for the next forward (a mask, a SpanMask or None = all)."""
        self._spans = None if span is None else {_ALL: _as_span_mask(span)}

    def set_spans(self, spans: Mapping[str, SpanMask | torch.Tensor]) -> None:
        """Set several named spans to pool from the next forward (each a mask or SpanMask)."""
        if not spans:
            raise ValueError("spans is empty; pass {name: [batch, seq] bool mask}")
        self._spans = {str(k): _as_span_mask(v) for k, v in spans.items()}

    def pop(self) -> dict[str, dict[str, torch.Tensor]]:
        """Return and clear what the hooks collected: ``{layer: {pooling: [batch, dim]}}``."""
        return {layer: by_span[_ALL] for layer, by_span in self._pop_spans().items()}

    def _pop_spans(self) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
        out, self._out = self._out, {}
        return out

    def run(
        self, *args: Any, span: SpanMask | torch.Tensor | None = None, **kwargs: Any
    ) -> dict[str, dict[str, torch.Tensor]]:
        """Call the model under ``torch.inference_mode`` and return the pooled outputs.

        ``span`` (a ``[batch, seq]`` bool mask) selects the tokens to pool, e.g.
        an attention mask; ``None`` pools every position.
        """
        return self.run_with_output(*args, span=span, **kwargs)[1]

    def run_spans(
        self, *args: Any, spans: Mapping[str, SpanMask | torch.Tensor], **kwargs: Any
    ) -> dict[str, dict[str, dict[str, torch.Tensor]]]:
        """Like :meth:`run`, pooling several named spans from the same forward pass.

        Returns ``{layer: {span: {pooling: [batch, dim]}}}``.

        Examples
        --------
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(2, 3))
        >>> x = torch.ones(1, 4, 2)
        >>> spans = {"head": torch.tensor([[True, True, False, False]]),
        ...          "tail": torch.tensor([[False, False, False, True]])}
        >>> with ActivationHooks(net, ["0"], pooling="mean") as hooks:
        ...     out = hooks.run_spans(x, spans=spans)
        >>> sorted(out["0"]), tuple(out["0"]["tail"]["mean"].shape)
        (['head', 'tail'], (1, 3))
        """
        self.set_spans(spans)
        self._forward(args, kwargs)
        return self._pop_spans()

    def run_with_output(
        self, *args: Any, span: SpanMask | torch.Tensor | None = None, **kwargs: Any
    ) -> tuple[Any, dict[str, dict[str, torch.Tensor]]]:
        """Like :meth:`run`, and also return what the model returned (``None`` when
        ``early_exit`` stopped the forward pass), e.g. a reward model's logits."""
        self.set_span(span)
        output = self._forward(args, kwargs)
        return output, self.pop()

    def _forward(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """One forward pass under the spans set; the model's output (``None`` on early exit)."""
        if not self._handles:
            self._spans = None
            raise RuntimeError("hooks are not registered; use `with ActivationHooks(...) as h:`")
        self._out = {}
        output = None
        try:
            with torch.inference_mode():
                output = self.model(*args, **kwargs)
        except _StopForward:
            pass
        except BaseException:
            self._out = {}
            raise
        finally:
            self._spans = None
        missing = [r.name for r in self.layers if r.name not in self._out]
        if missing:
            self._out = {}
            raise RuntimeError(
                f"layers {missing} did not run during the forward pass; are they used by "
                f"{type(self.model).__name__}.forward?"
            )
        return output


def _as_span_mask(span: SpanMask | torch.Tensor) -> SpanMask:
    return span if isinstance(span, SpanMask) else SpanMask(span.to(torch.bool))


def to_cpu(
    pooled: Mapping[str, Mapping[str, Any]], order: Sequence[tuple[str, ...]]
) -> list[torch.Tensor]:
    """Copy pooled tensors to the CPU with one transfer per device.

    Tensors are concatenated on their device along the feature axis, moved once,
    and split again, returned in ``order``: ``(layer, pooling)`` keys into
    ``{layer: {pooling: t}}``, or ``(layer, span, pooling)`` keys into the
    ``{layer: {span: {pooling: t}}}`` of :meth:`ActivationHooks.run_spans`.
    """
    by_device: dict[torch.device, list[tuple[int, torch.Tensor]]] = {}
    for i, key in enumerate(order):
        t: Any = pooled
        for k in key:
            t = t[k]
        by_device.setdefault(t.device, []).append((i, t))
    result: list[torch.Tensor | None] = [None] * len(order)
    for device, items in by_device.items():
        if device.type == "cpu":
            for i, t in items:
                result[i] = t
            continue
        cat = torch.cat([t for _, t in items], dim=1).cpu()
        for (i, _), part in zip(
            items, cat.split([t.shape[1] for _, t in items], dim=1), strict=True
        ):
            result[i] = part
    return result  # type: ignore[return-value]
