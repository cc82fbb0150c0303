"""Which model: :class:`ModelSpec` (a source and :func:`aqi.load_model`'s options), what
identifies its weights without loading them, and loading it for one role of the audit."""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import SMOLLM2_GGUF, SMOLLM2_PACKAGE, package_dir
from ..viz.style import display_name

__all__ = ["ModelSpec", "load_options", "normalised_options"]

_MODEL_SPECIFIC = ("revision", "gguf_file")  # options that name one checkpoint, not a setting


def load_options() -> tuple[str, ...]:
    """The keyword arguments of :func:`aqi.load_model` a :class:`ModelSpec` may carry."""
    from ..loading import load_model

    return tuple(k for k in inspect.signature(load_model).parameters
                 if k not in ("name_or_path", "cache"))  # fmt: skip


def _load_defaults() -> dict[str, Any]:
    """:func:`aqi.load_model`'s defaults of the options a :class:`ModelSpec` may carry."""
    from ..loading import load_model

    params = inspect.signature(load_model).parameters
    return {k: params[k].default for k in load_options()}


def normalised_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Loading options as compared and recorded: defaults left out, dtype names canonical.

    ``{"dtype": "auto"}`` (what the command line passes) and ``{}`` (a Python call) load
    the same model, so they are the same options.

    Examples
    --------
    >>> normalised_options({"dtype": "auto", "device": None}), normalised_options({"dtype": "bf16"})
    ({}, {'dtype': 'bfloat16'})
    """
    from ..loading import dtype_name

    defaults = _load_defaults()
    out = {}
    for k, v in options.items():
        v = dtype_name(v) if k == "dtype" else v
        if k not in defaults or v != defaults[k]:
            out[k] = v
    return out


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """A model to load: its source and :func:`aqi.load_model`'s keyword arguments.

    ``source`` is a local folder, a hub id or ``"demo"`` (SmolLM2-135M-Instruct, the
    bundled GGUF file).

    Examples
    --------
    >>> ModelSpec("./ft", {"dtype": "bfloat16"}).options["dtype"]
    'bfloat16'
    >>> ModelSpec("./ft", {"dtipe": "bfloat16"})
    Traceback (most recent call last):
    ...
    ValueError: model option 'dtipe' is not an argument of aqi.load_model; expected one of ...
    """

    source: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise TypeError(f"a model source must be a non-empty str, got {self.source!r}")
        known = load_options()
        for k in self.options:
            if k not in known:
                raise ValueError(f"model option {k!r} is not an argument of aqi.load_model; "
                                 f"expected one of {', '.join(known)}")  # fmt: skip
        object.__setattr__(self, "options", normalised_options(self.options))

    def resolved(self) -> ModelSpec:
        """``"demo"`` as the folder and GGUF file it stands for; others as they are."""
        if self.source != "demo":
            return self
        opts = {"dtype": "float32", "device": "cpu", **self.options, "gguf_file": SMOLLM2_GGUF}
        return ModelSpec(str(package_dir(SMOLLM2_PACKAGE)), opts)

    def load(self) -> tuple[Any, Any]:
        from ..loading import load_model

        spec = self.resolved()
        return load_model(spec.source, **spec.options)

    @property
    def name(self) -> str:
        """The name people read: the GGUF file, the folder's name or the hub id's."""
        spec = self.resolved()
        gguf = spec.options.get("gguf_file")
        return display_name(str(Path(spec.source) / gguf) if gguf else spec.source)

    def identity(self) -> dict[str, Any]:
        """What identifies the weights without loading them (see the module docstring)."""
        spec = self.resolved()
        opts = {k: v for k, v in sorted(spec.options.items()) if v not in (None, False)}
        p = Path(spec.source)
        if p.exists():
            if p.is_dir():
                files = [f for f in sorted(p.rglob("*")) if f.is_file()
                         and not any(s.startswith(".") or s == "__pycache__"
                                     for s in f.relative_to(p).parts)]  # fmt: skip
            else:
                files = [p]
            stats = [(str(f.relative_to(p) if p.is_dir() else f.name), f.stat().st_size,
                      f.stat().st_mtime_ns) for f in files]  # fmt: skip
            return {"path": str(p.resolve()), "files_sha256": _sha(stats), "options": opts}
        return {"hub_id": spec.source, "commit": _cached_commit(spec), "options": opts}

    def key(self) -> str:
        """The model's folder name in the work folder: its name and a fingerprint."""
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name)[:48]
        return f"{slug}-{_sha(self.identity())[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "options": dict(self.options), "name": self.name}


def _cached_commit(spec: ModelSpec) -> str | None:
    """A hub id's commit in the local cache (``None`` when it is not there)."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(spec.source, revision=spec.options.get("revision"),
                                 local_files_only=True)  # fmt: skip
    except Exception:  # not cached, not a hub id: the load will say why
        return None
    return Path(path).name



def _same_source(a: ModelSpec, b: ModelSpec) -> bool:
    ra, rb = a.resolved(), b.resolved()
    pa, pb = Path(ra.source), Path(rb.source)
    same = pa.resolve() == pb.resolve() if pa.exists() and pb.exists() else ra.source == rb.source
    return same and all(ra.options.get(k) == rb.options.get(k) for k in _MODEL_SPECIFIC)



def _load(spec: ModelSpec, role: str) -> tuple[Any, Any]:
    try:
        return spec.load()
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise type(e)(f"loading the {role} model {spec.source!r}: {e}") from None
