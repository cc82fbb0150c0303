"""Provenance of a job: what model, tokenizer and software produced a store or responses file.

Capture and generation both record it; its ``identity`` part decides whether an
unfinished job may be resumed: same architecture config, same weights (sampled
fingerprint), same tokenizer and chat template, and the job's own settings (a
capture's layers, poolings, spans and rendering; a generation's decoding).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

import torch
from torch import nn

__all__ = ["config_hash", "library_versions", "tokenizer_hash", "utc_now", "weights_fingerprint"]

_VOLATILE_CONFIG_KEYS = {
    "_name_or_path",
    "name_or_path",
    "transformers_version",
    "_commit_hash",
    "_attn_implementation_autoset",
    "_attn_implementation",
    "quantization_config",
    "torch_dtype",
    "dtype",
    "use_cache",
}


def _sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def config_hash(model: nn.Module) -> str | None:
    """SHA-256 of the model's architecture config (volatile keys removed); ``None`` without one."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "to_dict"):
        return None
    d = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    return _sha(json.dumps(d, sort_keys=True, default=str))


def weights_fingerprint(model: nn.Module, per_tensor: int = 64) -> str:
    """SHA-256 over every parameter's name, shape and a strided sample of its values.

    Distinguishes fine-tunes of one architecture without reading every weight:
    ``per_tensor`` evenly spaced values of each tensor (as float32) are hashed.
    Parameters on the ``meta`` device (offloaded) contribute name and shape only.
    """
    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            h.update(f"{name}:{tuple(p.shape)}:{p.dtype};".encode())
            if p.device.type == "meta" or p.numel() == 0:
                continue
            flat = p.detach().reshape(-1)
            step = max(1, flat.numel() // per_tensor)
            h.update(flat[::step][:per_tensor].float().cpu().numpy().tobytes())
    return h.hexdigest()


def tokenizer_hash(tokenizer: Any) -> str:
    """SHA-256 of the tokenizer's full definition (fast) or its vocabulary (slow)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        return _sha(backend.to_str())
    vocab = tokenizer.get_vocab()
    return _sha(json.dumps(sorted(vocab.items()), ensure_ascii=False))


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape the numbers."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("aqi", "torch", "transformers", "tokenizers", "h5py", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (when a job's output was created)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
