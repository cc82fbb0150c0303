"""One model loader: any checkpoint the way its users load it, with errors that say what to do.

:func:`load_model` is what the CLI, the demo, the notebooks and the generation commands
use. It takes a local folder or a hub id (with ``revision``), a GGUF file (dequantised
once and cached as an ordinary checkpoint), a dtype (``"auto"``: the checkpoint's own on
an accelerator, float32 on the CPU), a device or ``device_map="auto"`` (accelerate), 8-bit
or 4-bit weights through bitsandbytes (the ``aqi[quant]`` extra), remote code only when
asked, and an attention implementation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ._errors import NAME_ONLY, ArgumentError, MissingPackageError
from ._progress import transformers_bars

__all__ = ["DTYPES", "cache_dir", "check_hub_model", "check_model_source", "dtype_name",
           "gguf_checkpoint", "load_model", "resolve_dtype"]

#: dtype names accepted by :func:`load_model` (and ``--dtype``).
DTYPES = ("auto", "float32", "bfloat16", "float16")
_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16",
            "float": "float32"}


def cache_dir() -> Path:
    """Where aqi caches converted checkpoints (``$AQI_CACHE_DIR`` or ``~/.cache/aqi``)."""
    return Path(os.environ.get("AQI_CACHE_DIR", Path.home() / ".cache" / "aqi"))


def dtype_name(dtype: Any) -> Any:
    """A dtype's canonical name (``"bf16"`` → ``"bfloat16"``); other values as they are.

    >>> dtype_name("fp16"), dtype_name("auto")
    ('float16', 'auto')
    """
    return _ALIASES.get(dtype, dtype) if isinstance(dtype, str) else dtype


def resolve_dtype(dtype: Any, device: str, config_dtype: Any = None) -> Any:
    """The torch dtype to load with.

    ``"auto"``: the checkpoint's dtype (``config_dtype``) on an accelerator, float32 on
    the CPU (half precision on a CPU is slow and, for float16, inexact).

    Examples
    --------
    >>> import torch
    >>> resolve_dtype("auto", "cpu", torch.bfloat16), resolve_dtype("bf16", "cpu")
    (torch.float32, torch.bfloat16)
    >>> resolve_dtype("float8", "cpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: dtype='float8' is not supported; expected one of auto, float32, ...
    """
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    name = _ALIASES.get(str(dtype), str(dtype))
    if name not in DTYPES:
        raise ArgumentError(f"{{dtype}} is not supported; expected one of {', '.join(DTYPES)}",
                            dtype=dtype)
    if name == "auto":
        if device.startswith("cpu"):
            return torch.float32
        if isinstance(config_dtype, str):
            config_dtype = getattr(torch, config_dtype, None)
        return config_dtype if isinstance(config_dtype, torch.dtype) else torch.float32
    return getattr(torch, name)


def _check_device(device: str) -> str:
    import torch

    kind = device.split(":")[0]
    if kind == "cpu":
        return device
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError("{device} but no CUDA device is available; use 'cpu'",
                                device=device)
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ArgumentError(f"{{device}} but only {torch.cuda.device_count()} CUDA "
                                "device(s) are available", device=device)
        return device
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ArgumentError("{device} but MPS is not available; use 'cpu'", device=device)
        return device
    raise ArgumentError("{device} is not supported; expected 'cpu', 'cuda', 'cuda:N' or 'mps'",
                        device=device)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def gguf_checkpoint(folder: Path, gguf_file: str, cache: Path | None = None) -> Path:
    """Dequantise ``folder/gguf_file`` once into a float32 checkpoint; return its folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = folder / gguf_file
    if not src.is_file():
        raise FileNotFoundError(f"GGUF file {str(src)!r} not found")
    with src.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ValueError(f"{str(src)!r} is not a GGUF file (it does not start with 'GGUF')")
    st = src.stat()
    key = hashlib.sha256(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    stem = gguf_file.removesuffix(".gguf").lower()
    target = (cache or cache_dir()) / f"{stem}-f32-{key[:12]}"
    if (target / "config.json").is_file():
        return target
    _check_gguf(src)  # once, before the conversion: a cut file is one clear line
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file,
                                                     dtype=torch.float32)
    except ImportError as e:
        raise ImportError(f"loading {gguf_file!r} needs the 'gguf' package: pip install "
                          f"'aqi[demo]' ({e})") from None
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    # The dequantised weights are plain float32: drop the GGUF quantizer so that
    # save_pretrained writes an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)  # atomic: a half-written cache is never used
    return target


def _quantization(load_in_8bit: bool, load_in_4bit: bool, device: str) -> Any:
    if not (load_in_8bit or load_in_4bit):
        return None
    if load_in_8bit and load_in_4bit:
        raise ArgumentError("choose one of {load_in_8bit} and {load_in_4bit}, not both",
                            load_in_8bit=True, load_in_4bit=True)
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ImportError("8-bit/4-bit loading needs bitsandbytes: pip install 'aqi[quant]' "
                          "(or load without quantisation)")
    if device.startswith("cpu"):
        flag = {"load_in_8bit" if load_in_8bit else "load_in_4bit": True}
        raise ArgumentError(f"{{{next(iter(flag))}}} (bitsandbytes) needs a CUDA device; on the "
                            "CPU load in float32 (or bfloat16)", **flag)
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit)


def _check_attention(attn_implementation: str | None) -> None:
    """Refuse an attention kernel whose package is missing before anything loads."""
    if attn_implementation is None:
        return
    if not isinstance(attn_implementation, str):
        raise TypeError(f"attn_implementation must be a str, got {attn_implementation!r}")
    import importlib.util

    package = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}
    needed = package.get(attn_implementation)
    if needed is not None and importlib.util.find_spec(needed) is None:
        raise MissingPackageError(
            f"{{attn_implementation}} needs the {needed!r} package, which is not installed "
            "(pip install flash-attn, CUDA only); use 'sdpa' or 'eager'",
            attn_implementation=attn_implementation,
        )


def _check_gguf(src: Path) -> None:
    """Read the GGUF header and tensor table: a cut or damaged file is one clear error."""
    try:
        from gguf import GGUFReader
    except ImportError:  # transformers will say that gguf is needed
        return
    try:
        GGUFReader(src)
    except Exception as e:  # any failure to parse it means a damaged file
        reason = " ".join(str(e).split()) or type(e).__name__
        raise ValueError(
            f"GGUF file {str(src)!r} is truncated or damaged and cannot be read ({reason[:120]}); "
            "download or copy it again"
        ) from None


def _is_causal(config: Any) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in (config.architectures or [])):
        return True
    return getattr(config, "model_type", None) in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and not any(
        a.endswith(("Model", "ForMaskedLM", "ForSequenceClassification"))
        for a in (config.architectures or [])
    )


#: Files any one of which gives AutoTokenizer something to load (fast, sentencepiece, BPE,
#: WordPiece); tokenizers that need none (bytes, characters) are named by their class.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                    "sentencepiece.bpe.model")
_FILELESS_TOKENIZERS = ("ByT5Tokenizer", "CanineTokenizer")
_PATH_LIKE = (".jsonl", ".json", ".csv", ".h5", ".hdf5", ".html", ".txt", ".gguf", ".safetensors",
              ".bin", ".pt")


def _safetensors_problem(path: Path) -> str | None:
    """Why the safetensors file at ``path`` cannot be whole (``None``: its size is right).

    Reads only its header: 8 bytes of header length, the JSON header, and compares the
    end of the last tensor with the file's size.
    """
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or n <= 0 or 8 + n > size:
                return f"its header is cut ({size} bytes)"
            header = json.loads(f.read(n))
    except (OSError, ValueError) as e:
        return f"its header is not readable ({e})"
    ends = [v["data_offsets"][1] for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v]  # fmt: skip
    need = 8 + n + max(ends, default=0)
    if size < need:
        return f"it is truncated: {size} bytes, its header needs {need}"
    return None


def _has_tokenizer(folder: Path) -> bool:
    if any((folder / f).is_file() for f in _TOKENIZER_FILES) or any(folder.glob("*.tiktoken")):
        return True
    try:
        tc = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(tc, dict) and tc.get("tokenizer_class") in _FILELESS_TOKENIZERS


def check_model_source(
    name_or_path: str | os.PathLike[str], *, gguf_file: str | None = None,
    argument: str = "name_or_path",
) -> None:  # fmt: skip
    """Refuse, without loading anything (no transformers, well under a second), a model
    source that cannot load: a file or a missing path where a folder is meant, a folder
    without ``config.json``, a config without ``model_type``, no tokenizer files, a cut
    safetensors file. A hub id that is not a path passes (the loader finds it).

    Parameters
    ----------
    name_or_path : str or path
        What :func:`load_model` would be given.
    gguf_file : str, optional
        A GGUF file in the folder: checked by :func:`gguf_checkpoint` instead (it holds
        the config and the tokenizer).
    argument : str, default "name_or_path"
        The argument's name in messages (the CLI spells it as its flag: ``--model``).

    Examples
    --------
    >>> check_model_source("meta-llama/Llama-3.1-8B-Instruct")  # a hub id: the loader's job
    >>> check_model_source("./nope/model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: model './nope/model' is not a local folder (no such path) and not a ...
    """
    name = os.fspath(name_or_path)
    p = Path(name).expanduser()
    if gguf_file is not None:  # the GGUF file holds config and tokenizer: gguf_checkpoint's
        return
    if not p.exists():
        looks_like_path = (name.startswith((".", "/", "~")) or name.count("/") > 1
                           or name.lower().endswith(_PATH_LIKE) or "\\" in name)  # fmt: skip
        if looks_like_path:
            raise FileNotFoundError(
                f"model {name!r} is not a local folder (no such path) and not a hub id "
                "(org/name); pass the folder holding config.json and the weights"
            )
        return
    if not p.is_dir():
        raise ArgumentError(
            f"{{{argument}}} is a file, not a model folder; pass the folder holding "
            "config.json, the tokenizer and the weights (for a GGUF file: its folder, and the "
            "file's name as {gguf_file})", **{argument: name}, gguf_file=NAME_ONLY,
        )  # fmt: skip
    config = p / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"model folder {name!r} has no config.json; it is not a Hugging "
                                "Face model folder (save one with model.save_pretrained(folder))")
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{str(config)!r} is not valid JSON ({e}); restore the model's "
                         "config.json") from None  # fmt: skip
    if not isinstance(cfg, dict) or not cfg.get("model_type"):
        raise ValueError(f"{str(config)!r} has no 'model_type' key, so transformers cannot tell "
                         "the architecture; restore the model's config.json (it names "
                         "model_type, e.g. \"llama\")")  # fmt: skip
    if "auto_map" in cfg:  # its own code (trust_remote_code): it may bring its own tokenizer
        return
    if not _has_tokenizer(p):
        raise FileNotFoundError(
            f"model folder {name!r} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:4])}, "
            "…); copy the tokenizer into it (tokenizer.save_pretrained(folder))"
        )
    for st in sorted(p.glob("*.safetensors")):
        problem = _safetensors_problem(st)
        if problem is not None:
            raise ValueError(f"weights file {str(st)!r} is damaged: {problem}; download or "
                             "save the model again")  # fmt: skip


def _friendly(e: Exception, name: str, revision: str | None) -> Exception:
    """Re-word the hub's errors: no network, remote code, unknown repository."""
    msg = str(e)
    if "trust_remote_code" in msg:
        return ValueError(f"{name!r} ships its own model code; pass trust_remote_code=True "
                          "(CLI: --trust-remote-code) if you trust it")
    offline = ("offline" in msg.lower() or "couldn't connect" in msg.lower()
               or "cannot find the requested files" in msg.lower()
               or "does not appear to have a file named" in msg.lower()
               or isinstance(e, OSError))
    if offline and not Path(name).exists():
        where = f" at revision {revision!r}" if revision else ""
        return FileNotFoundError(
            f"model {name!r}{where} is not a local folder and not in the local Hugging Face "
            "cache, and it cannot be downloaded here (no network or HF_HUB_OFFLINE=1); "
            "download it on a connected machine or pass a local folder"
        )
    return e


def check_hub_model(name: str, *, revision: str | None = None,
                    trust_remote_code: bool = False) -> None:
    """Read a hub id's config (from the cache or the hub) without loading the model: what
    :func:`load_model` would say about an unknown, unreachable or remote-code id, said
    before other work starts (``aqi audit`` checks its baseline so)."""
    from transformers import AutoConfig

    hub = {"revision": revision, "trust_remote_code": trust_remote_code}
    try:
        AutoConfig.from_pretrained(name, **{k: v for k, v in hub.items() if v is not None})
    except (OSError, ValueError) as e:
        raise _friendly(e, name, revision) from None


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    gguf_file: str | None = None,
    dtype: Any = "auto",
    device: str | None = None,
    device_map: str | dict[str, Any] | None = None,
    load_in_8bit: bool = False,
    load_in_4bit: bool = False,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    cache: Path | None = None,
) -> tuple[Any, Any]:
    """Load a Hugging Face model (causal LM, or an encoder) and its tokenizer, in eval mode.

    Parameters
    ----------
    name_or_path : str or path
        A local folder or a hub id (``"meta-llama/Llama-3.1-8B-Instruct"``). Without a
        network, a hub id must already be in the local Hugging Face cache.
    revision : str, optional
        Branch, tag or commit of a hub id.
    gguf_file : str, optional
        A GGUF file inside ``name_or_path``: dequantised once and cached (float32
        safetensors under ``$AQI_CACHE_DIR``), reloaded from there in about a second.
    dtype : {"auto", "float32", "bfloat16", "float16"} or torch.dtype
        ``"auto"``: the checkpoint's dtype on an accelerator, float32 on the CPU.
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``; default CUDA when available.
        Ignored with ``device_map``.
    device_map : "auto" or dict, optional
        Spread the layers over every visible device (needs ``accelerate``); capture
        pools each layer on its own device.
    load_in_8bit, load_in_4bit : bool
        Quantised weights through bitsandbytes (``pip install 'aqi[quant]'``, CUDA only).
    trust_remote_code : bool
        Run model code shipped with the checkpoint; off unless asked.
    attn_implementation : str, optional
        ``"eager"``, ``"sdpa"``, ``"flash_attention_2"``, … as transformers takes it.

    Returns
    -------
    model, tokenizer

    Examples
    --------
    >>> from aqi import load_model
    >>> load_model("/nonexistent/model")
    Traceback (most recent call last):
    ...
    FileNotFoundError: model '/nonexistent/model' is not a local folder (no such path) and not ...
    """
    import torch

    name = os.fspath(name_or_path)
    if not isinstance(trust_remote_code, bool):
        raise TypeError(f"trust_remote_code must be a bool, got {trust_remote_code!r}")
    if device_map is not None:
        import importlib.util

        if importlib.util.find_spec("accelerate") is None:
            raise ImportError("device_map needs accelerate: pip install 'aqi[accelerate]'")
        if device is not None:
            raise ValueError("pass device or device_map, not both")
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        dev = _check_device(device or _default_device())
    quant = _quantization(load_in_8bit, load_in_4bit, dev)
    if revision is not None and Path(name).exists():
        raise ArgumentError("{revision} names a branch, tag or commit of a hub id, but "
                            "{name_or_path} is a local folder (its files are what loads); "
                            "leave the revision out", revision=revision, name_or_path=name)
    _check_attention(attn_implementation)
    check_model_source(name, gguf_file=gguf_file)
    with transformers_bars():
        return _load(name, revision, gguf_file, dtype, dev, device_map, quant, trust_remote_code,
                     attn_implementation, cache)


def _load(
    name: str, revision: str | None, gguf_file: str | None, dtype: Any, dev: str,
    device_map: Any, quant: Any, trust_remote_code: bool, attn_implementation: str | None,
    cache: Path | None,
) -> tuple[Any, Any]:  # fmt: skip
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    source = None  # what the user named, recorded instead of the conversion cache's folder
    if gguf_file is not None:
        if not Path(name).is_dir():
            raise FileNotFoundError(f"gguf_file needs a local folder holding it; {name!r} is not "
                                    "a folder (CLI: --model)")
        source = str(Path(name) / gguf_file)
        name = str(gguf_checkpoint(Path(name), gguf_file, cache))
        revision = None
    hub = {"revision": revision, "trust_remote_code": trust_remote_code}
    hub = {k: v for k, v in hub.items() if v is not None}
    try:
        config = AutoConfig.from_pretrained(name, **hub)
        kwargs: dict[str, Any] = {
            "dtype": resolve_dtype(dtype, dev, getattr(config, "dtype", None)
                                   or getattr(config, "torch_dtype", None)),
            **hub,
        }
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        if quant is not None:
            kwargs["quantization_config"] = quant
        if device_map is not None:
            kwargs["device_map"] = device_map
        cls = AutoModelForCausalLM if _is_causal(config) else AutoModel
        model = cls.from_pretrained(name, **kwargs)
        tok = AutoTokenizer.from_pretrained(name, **hub)
    except (OSError, ValueError) as e:
        raise _friendly(e, name, revision) from None
    if device_map is None and quant is None:
        model = model.to(dev)
    if source is not None:  # provenance names the GGUF file (the config's volatile name field)
        model.config._name_or_path = source
    return model.eval(), tok
