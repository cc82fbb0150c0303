"""Integrations with training frameworks: watch alignment while a model trains.

* :class:`AlignmentCallback` — a ``transformers.TrainerCallback`` (also for TRL's SFT and
  DPO trainers) that measures alignment every N steps and logs it with the Trainer;
* :class:`AlignmentWatch` — one measurement (AQI on two spans, refusal predicted from one
  forward pass — judged generations at the reference only, unless ``generate=True`` —
  and the refusal shift against a reference), used by the callback and by ``aqi track``;
* :func:`track_checkpoints` — the same measurements over saved checkpoint folders.

Names are imported on first use, so ``import aqi`` does not import ``transformers``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "AlignmentCallback": "callback",
    "DEFAULT_EVERY": "callback",
    "JSONL_NAME": "callback",
    "AlignmentWatch": "watch",
    "WATCH_NEW_TOKENS": "watch",
    "default_layer": "watch",
    "watch_prompts": "watch",
    "track_checkpoints": "track",
}

if TYPE_CHECKING:  # pragma: no cover
    from .callback import DEFAULT_EVERY, JSONL_NAME, AlignmentCallback
    from .track import track_checkpoints
    from .watch import WATCH_NEW_TOKENS, AlignmentWatch, default_layer, watch_prompts


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aqi.integrations' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "DEFAULT_EVERY",
    "JSONL_NAME",
    "WATCH_NEW_TOKENS",
    "AlignmentCallback",
    "AlignmentWatch",
    "default_layer",
    "track_checkpoints",
    "watch_prompts",
]
