"""Benchmark: generation that stops each response once the judge's verdict is settled.

    python benchmarks/speed/early_stop.py                          # bundled prompts, 3 models
    python benchmarks/speed/early_stop.py --pairs 8 --models base  # a 16-prompt check (~2-5 min)

Generates the prompts with ``JUDGE_NEW_TOKENS`` (64) greedy tokens, with and without
``stop_when_settled=RefusalJudge()``, on SmolLM2-135M-Instruct as shipped (``plain``:
:func:`aqi.demo.load_demo_model`), the demo's safety-tuned base (``base``: the shipped
adapter merged, as ``aqi demo`` audits it) and its eroded fine-tune (``eroded``), on the
CPU in float32. For each model it prints and writes (``--out``, default
``benchmarks/out/early_stop.json``):

* tokens generated with and without early stop and the share saved (the issue's target:
  >= 30 % fewer tokens with identical labels);
* whether every judged label is identical, and whether every stopped response is a
  prefix of its full-length one;
* decoding positions computed (rows x steps of every one-token forward pass): a batch
  runs until its last row finishes, so finished rows still cost compute; this, not the
  token count, is what the wall time follows;
* the wall time of each generation, its ratio to the full-length one, and the time spent
  deciding (decoding the new tokens and asking ``settled`` after every step).

``--pairs N`` uses the demo's seeded draw of N matched pairs instead of the whole
bundled set (294 prompts). On an idle 16-core CPU the whole set takes about 2 minutes
per generation and model; on a busy 2-core machine about 10 times longer.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("plain", "base", "eroded")


def _load(name: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name == "plain":
        from aqi.demo import load_demo_model

        return load_demo_model()
    from aqi.demo.assets import demo_models

    found = demo_models()
    folder = found.base if name == "base" else found.finetunes[name]
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


class _Positions:
    """Counts the rows x tokens of every forward pass of a model (prefill and decoding)."""

    def __init__(self, model: Any) -> None:
        self.prefill = self.decode = 0
        self.handle = model.get_input_embeddings().register_forward_pre_hook(self)

    def __call__(self, module: Any, args: tuple[Any, ...]) -> None:
        ids = args[0]
        if ids.shape[1] == 1:
            self.decode += ids.shape[0]
        else:
            self.prefill += ids.shape[0] * ids.shape[1]


class _Criteria(list):  # type: ignore[type-arg]
    """Every SettledStop generate_responses makes (for the time they spend)."""

    def install(self) -> None:
        import aqi.behaviour.generate as gen
        from aqi.behaviour import SettledStop

        criteria = self

        class Timed(SettledStop):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                criteria.append(self)

        gen.SettledStop = Timed  # type: ignore[misc]

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self)


CRITERIA = _Criteria()


def _generate(model: Any, tok: Any, prompts: Any, batch_size: int,
              judge: Any) -> tuple[Any, float, _Positions]:  # fmt: skip
    from aqi.behaviour import JUDGE_NEW_TOKENS, Decoding, generate_responses
    from aqi.jobs import Writing

    CRITERIA.clear()
    count = _Positions(model)
    try:
        t0 = time.perf_counter()
        rs = generate_responses(model, tok, prompts,
                                decoding=Decoding(max_new_tokens=JUDGE_NEW_TOKENS),
                                writing=Writing(batch_size=batch_size, progress=False),
                                stop_when_settled=judge)  # fmt: skip
        seconds = time.perf_counter() - t0
    finally:
        count.handle.remove()
    return rs, seconds, count


def measure(name: str, prompts: Any, batch_size: int) -> dict[str, Any]:
    """Both generations of one model, and what they say."""
    from aqi.behaviour import RefusalJudge, judge_labels

    model, tok = _load(name)
    judge = RefusalJudge()
    full, t_full, p_full = _generate(model, tok, prompts, batch_size, None)
    early, t_early, p_early = _generate(model, tok, prompts, batch_size, judge)
    labels_full, labels_early = judge_labels(full, judge), judge_labels(early, judge)
    differ = [r.prompt_id for r, a, b in zip(full, labels_full, labels_early, strict=True)
              if a != b]  # fmt: skip
    use, most = early.token_use(), full.token_use()
    return {
        "model": name,
        "prompts": len(prompts),
        "batch_size": batch_size,
        "refusals": labels_full.count("refusal"),
        "tokens_full": most.generated,
        "tokens_early": use.generated,
        "tokens_maximum": most.maximum,
        "tokens_saved": 1 - use.generated / most.generated,
        "stopped_early": use.stopped_early,
        "labels_identical": not differ,
        "labels_differ": differ,
        "stopped_are_prefixes": all(a.text.startswith(b.text)
                                    for a, b in zip(full, early, strict=True)),
        "others_identical": all(a == b for a, b in zip(full, early, strict=True)
                                if b.finish_reason != "settled"),
        "decode_positions_full": p_full.decode,
        "decode_positions_early": p_early.decode,
        "decode_positions_saved": 1 - p_early.decode / p_full.decode,
        "seconds_full": t_full,
        "seconds_early": t_early,
        "seconds_deciding": CRITERIA.seconds,
        "time_ratio": t_early / t_full,
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--pairs", type=int, default=None,
                        help="the demo's seeded draw of this many matched pairs (default: all "
                             "bundled prompts)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "early_stop.json")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"--models {args.models!r}: unknown {unknown}; expected {', '.join(MODELS)}")

    from aqi.activations import bundled_prompts
    from aqi.demo.assets import demo_prompts

    CRITERIA.install()
    prompts = bundled_prompts() if args.pairs is None else demo_prompts(args.pairs)
    print(f"early stop: {len(prompts)} prompts ({prompts.name}), batch {args.batch_size}, "
          f"{torch.get_num_threads()} CPU threads")
    rows = []
    for name in names:
        row = measure(name, prompts, args.batch_size)
        rows.append(row)
        print(f"{name:>7}: tokens {row['tokens_early']:>6,} / {row['tokens_full']:>6,} "
              f"({row['tokens_saved']:.1%} saved, {row['stopped_early']} of {row['prompts']} "
              f"stopped, {row['refusals']} refusals); labels identical: "
              f"{row['labels_identical']}; decode positions {row['decode_positions_saved']:.1%} "
              f"saved; {row['seconds_early']:.1f} s / {row['seconds_full']:.1f} s "
              f"(ratio {row['time_ratio']:.2f}; {row['seconds_deciding']:.1f} s deciding)")
    made = sum(r["tokens_early"] for r in rows)
    full = sum(r["tokens_full"] for r in rows)
    print(f"   all: tokens {made:,} / {full:,} ({1 - made / full:.1%} saved; target >= 30 % "
          f"with identical labels: {all(r['labels_identical'] for r in rows)})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"prompts": prompts.name, "models": rows}, indent=2) + "\n")
    print(f"written: {args.out}")
    return 0 if all(r["labels_identical"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
