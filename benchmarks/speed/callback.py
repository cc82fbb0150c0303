"""Benchmark: the overhead of aqi.integrations.AlignmentCallback on SmolLM2-135M-Instruct,
as a share of training step time, against a baseline training run in this one process.

    python benchmarks/speed/callback.py                  # 8 steps each run
    python benchmarks/speed/callback.py --steps 4        # shorter (12 min on 2 busy cores)
    python benchmarks/speed/callback.py --device cuda    # on a GPU

Both runs fine-tune a fresh copy of the model with ``transformers.Trainer`` (full
fine-tune, AdamW, batch ``--batch-size`` of chat-rendered bundled prompts with a short
answer, ``--max-length`` tokens at most), same seed. The watched run adds the callback with
``every=--steps`` (so it measures at step 0 and at the last step). Prints:

1. the baseline's median step time and the watched run's (the callback must not slow the
   steps themselves: ratio ~1.00), and the baseline's again after the watched run (how
   much of a difference is the runs' order);
2. the median time of one measurement (capture of 16 pairs at one layer + greedy
   generation of 8 unsafe and 4 safe prompts, 32 tokens + judging + AQI + refusal shift);
3. the overhead at the default interval (``DEFAULT_EVERY``): one measurement / (interval x
   step time) (target <= 0.10), and the smallest interval that meets the target;
4. whether the two runs' losses are identical (they must be).
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


def _run(model: Any, tok: Any, out: Path, args: argparse.Namespace, watch: bool) -> dict:
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
    cb = AlignmentCallback(every=args.steps).attach(trainer) if watch else None
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"steps": steps, "total": total, "losses": losses,
            "measurements": [r["seconds"] for r in cb.records] if cb else [],
            "records": cb.records if cb else []}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    from aqi.demo import load_demo_model
    from aqi.integrations import DEFAULT_EVERY

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model, tok = load_demo_model()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = model.to(args.device)
    with tempfile.TemporaryDirectory() as d, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = _run(copy.deepcopy(model), tok, Path(d) / "base", args, watch=False)
        watched = _run(copy.deepcopy(model), tok, Path(d) / "watched", args, watch=True)
        # The baseline once more, after the watched run: separates the callback's effect
        # on the steps from the order of the runs (allocator, caches, thermal state).
        again = _run(copy.deepcopy(model), tok, Path(d) / "again", args, watch=False)
    step_b = statistics.median(base["steps"][1:] or base["steps"])  # the first one warms up
    step_w = statistics.median(watched["steps"][1:] or watched["steps"])
    step_a = statistics.median(again["steps"][1:] or again["steps"])
    meas = statistics.median(watched["measurements"])
    overhead = meas / (DEFAULT_EVERY * step_b)
    need = math.ceil(meas / (0.10 * step_b))
    same = base["losses"] == watched["losses"]
    figures = {
        "device": args.device, "steps": args.steps, "batch_size": args.batch_size,
        "step_seconds_baseline": step_b, "step_seconds_watched": step_w,
        "step_ratio": step_w / step_b, "step_seconds_baseline_again": step_a,
        "step_ratio_baseline_again": step_a / step_b, "steps_baseline": base["steps"],
        "steps_watched": watched["steps"], "steps_baseline_again": again["steps"],
        "measurement_seconds": meas,
        "measurements": watched["measurements"], "default_every": DEFAULT_EVERY,
        "overhead_at_default": overhead, "min_every_for_10pct": need,
        "losses_identical": same,
        "run_seconds_baseline": base["total"], "run_seconds_watched": watched["total"],
    }  # fmt: skip
    print(f"step time: baseline {step_b:.2f} s, watched {step_w:.2f} s "
          f"(ratio {step_w / step_b:.2f}; target ~1.00), baseline again {step_a:.2f} s "
          f"(ratio {step_a / step_b:.2f}: the order's share)")
    print(f"one measurement: {meas:.1f} s (median of {len(watched['measurements'])}) "
          f"= {meas / step_b:.1f} training steps")
    print(f"overhead at every={DEFAULT_EVERY}: {overhead:.3f} of training time "
          f"(target <= 0.10); every >= {need} meets it")
    print(f"losses identical with and without the callback: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
