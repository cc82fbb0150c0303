"""Benchmark: the overhead of aqi.integrations.AlignmentCallback on SmolLM2-135M-Instruct,
as a share of training step time, against a baseline training run in this one process, in
both modes: latent (the default: generation at step 0 only) and ``generate=True``.

    python benchmarks/speed/callback.py                  # 8 steps each run, measuring every 4
    python benchmarks/speed/callback.py --steps 4        # shorter
    python benchmarks/speed/callback.py --device cuda    # on a GPU

Every run fine-tunes a fresh copy of the model with ``transformers.Trainer`` (full
fine-tune, AdamW, batch ``--batch-size`` of chat-rendered bundled prompts with a short
answer, ``--max-length`` tokens at most), same seed: the baseline, the latent-watched run,
the generate-watched run, and the baseline again. The watched runs add the callback with
``every=--every`` (default half of ``--steps``: step 0, the middle and the last step).
Prints:

1. the baseline's median step time and each watched run's (the callback must not slow
   the steps themselves: ratio ~1.00), and the baseline's again after them (how much of a
   difference is the runs' order);
2. per mode, the time of the reference measurement (step 0: in latent mode generation of
   every watched prompt — 16 pairs, 32 tokens — judging, capture of every block and the
   choice of the predicted refusal's block) and the median of the later ones (latent: one
   forward pass per prompt at two layers + AQI + refusal shift + predicted refusal with
   200 resamples; generate: the same + greedy generation of 8 unsafe and 4 safe prompts,
   32 tokens, and judging);
3. per mode, the overhead at the default interval (``DEFAULT_EVERY``): one later
   measurement / (interval x step time) (target <= 0.02), the smallest interval that meets
   it, and the reference's one-off cost in training steps;
4. whether the runs' losses are identical (they must be).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch


def _data(tok: Any, n: int, max_length: int) -> list[dict[str, list[int]]]:
    import aqi

    rows = []
    for p in list(aqi.bundled_prompts().filter(label="safe"))[:n]:
        msgs = [{"role": "user", "content": p.text},
                {"role": "assistant", "content": "Sure. Here is a short, helpful answer."}]
        ids = tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"]
        rows.append({"input_ids": list(ids)[:max_length]})
    return rows


def _run(model: Any, tok: Any, out: Path, args: argparse.Namespace,
         watch: bool | None) -> dict:  # fmt: skip
    """One training run; ``watch``: None (no callback), False (latent), True (generate)."""
    from transformers import (
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,  # fmt: skip
    )

    from aqi.integrations import AlignmentCallback

    steps: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a: Any, s: Any, c: Any, **kw: Any) -> None:
            self.t = time.perf_counter()

        def on_step_end(self, a: Any, s: Any, c: Any, **kw: Any) -> None:
            steps.append(time.perf_counter() - self.t)

    targs = TrainingArguments(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=args.batch_size,
        learning_rate=2e-5, logging_steps=1, save_strategy="no", report_to=[], seed=0,
        data_seed=0, use_cpu=args.device == "cpu", disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    trainer = Trainer(model=model, args=targs,
                      train_dataset=_data(tok, args.batch_size * args.steps, args.max_length),
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                      processing_class=tok, callbacks=[Timer()])  # fmt: skip
    cb = (None if watch is None
          else AlignmentCallback(every=args.every, generate=watch).attach(trainer))
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"steps": steps, "total": total, "losses": losses,
            "measurements": [r["seconds"] for r in cb.records] if cb else [],
            "records": cb.records if cb else []}  # fmt: skip


TARGET = 0.02  # issue 27: the callback's overhead at the default interval


def _mode(run: dict, step: float, every: int) -> dict[str, Any]:
    """The figures of one watched run against the baseline's step time ``step``."""
    ref, *later = run["measurements"]
    meas = statistics.median(later) if later else float("nan")
    return {
        "reference_seconds": ref, "measurement_seconds": meas, "measurements": run["measurements"],
        "overhead_at_default": meas / (every * step),
        "min_every_for_target": math.ceil(meas / (TARGET * step)) if later else None,
        "reference_in_steps": ref / step,
        "step_seconds": statistics.median(run["steps"][1:] or run["steps"]),
        "run_seconds": run["total"],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--every", type=int, default=None,
                    help="measurement interval of the watched runs (default: steps // 2)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    args.every = args.every or max(1, args.steps // 2)
    from aqi.demo import load_demo_model
    from aqi.integrations import DEFAULT_EVERY

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model, tok = load_demo_model()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = model.to(args.device)
    runs = {}
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, watch in (("base", None), ("latent", False), ("generate", True),
                            ("again", None)):  # fmt: skip
            # the baseline once more at the end: separates the callback's effect on the
            # steps from the order of the runs (allocator, caches, thermal state)
            runs[name] = _run(copy.deepcopy(model), tok, Path(d) / name, args, watch)
    step_b = statistics.median(runs["base"]["steps"][1:] or runs["base"]["steps"])
    step_a = statistics.median(runs["again"]["steps"][1:] or runs["again"]["steps"])
    modes = {m: _mode(runs[m], step_b, DEFAULT_EVERY) for m in ("latent", "generate")}
    same = {m: runs["base"]["losses"] == runs[m]["losses"] for m in modes}
    figures = {
        "device": args.device, "steps": args.steps, "every": args.every,
        "batch_size": args.batch_size, "max_length": args.max_length,
        "step_seconds_baseline": step_b, "step_seconds_baseline_again": step_a,
        "step_ratio_baseline_again": step_a / step_b, "steps_baseline": runs["base"]["steps"],
        "default_every": DEFAULT_EVERY, "target": TARGET, "modes": modes,
        "losses_identical": same, "run_seconds_baseline": runs["base"]["total"],
    }  # fmt: skip
    print(f"step time: baseline {step_b:.2f} s; baseline again {step_a:.2f} s "
          f"(ratio {step_a / step_b:.2f}: the order's share)")
    for m, f in modes.items():
        print(f"[{m}] step time watched {f['step_seconds']:.2f} s (ratio "
              f"{f['step_seconds'] / step_b:.2f}; target ~1.00)")
        print(f"[{m}] reference (step 0): {f['reference_seconds']:.1f} s = "
              f"{f['reference_in_steps']:.1f} training steps, once")
        print(f"[{m}] one later measurement: {f['measurement_seconds']:.2f} s (median of "
              f"{len(f['measurements']) - 1}) = {f['measurement_seconds'] / step_b:.2f} steps")
        print(f"[{m}] overhead at every={DEFAULT_EVERY}: {f['overhead_at_default']:.2%} of "
              f"training time (target <= {TARGET:.0%}); every >= {f['min_every_for_target']} "
              "meets it")
        print(f"[{m}] losses identical with and without the callback: {same[m]}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
