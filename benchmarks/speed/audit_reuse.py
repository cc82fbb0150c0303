"""Benchmark: ``aqi audit`` of a second fine-tune against the same base reuses the base's work.

    python benchmarks/speed/audit_reuse.py                 # tiny llama models (~1 min)
    python benchmarks/speed/audit_reuse.py --demo --n 64   # SmolLM2-135M vs perturbed copies (CPU)

Builds a base and two "fine-tunes" (tiny: random llamas of three seeds; ``--demo``: the
demo checkpoint and two copies with every weight perturbed by 1% Gaussian noise), then
times, each in a fresh process, ``aqi audit --model FT1 --baseline-model BASE`` (all
work) and ``aqi audit --model FT2 --baseline-model BASE`` (the base's responses and store
reused) in one work folder. Prints both times and their ratio (target <= 0.55).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _tiny(root: Path) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT))
    from transformers import AutoTokenizer

    from aqi.demo import demo_checkpoint
    from tests.conftest import build_tiny

    tok = AutoTokenizer.from_pretrained(demo_checkpoint())
    out = {}
    for name, seed in (("base", 0), ("ft1", 1), ("ft2", 2)):
        build_tiny("llama", len(tok), seed=seed).save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    return out


def _demo(root: Path) -> dict[str, Path]:
    import torch

    from aqi.demo import load_demo_model

    out = {}
    for name, seed in (("base", None), ("ft1", 1), ("ft2", 2)):
        model, tok = load_demo_model()
        if seed is not None:
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1 + 0.01 * torch.randn(p.shape, generator=g))
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    return out


def _prompts(root: Path, n: int) -> Path:
    import aqi

    ps = aqi.bundled_prompts()[:n]
    path = root / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "text": p.text, "label": p.label,
                                        "category": p.category, "pair_id": p.pair_id}) + "\n"
                            for p in ps))  # fmt: skip
    return path


def _run(models: dict[str, Path], ft: str, work: Path, prompts: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "aqi", "audit", "--model", str(models[ft]), "--baseline-model",
           str(models["base"]), "--workdir", str(work), "--prompts", str(prompts), "--quiet",
           "--device", "cpu", *extra]  # fmt: skip
    t = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
    if rc not in (0, 1):
        raise SystemExit(f"aqi audit exited {rc}: {' '.join(cmd)}")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", action="store_true", help="SmolLM2-135M instead of tiny models")
    ap.add_argument("--n", type=int, default=294, help="bundled prompts to use (default all)")
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    extra = [] if args.max_new_tokens is None else ["--max-new-tokens", str(args.max_new_tokens)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = (_demo if args.demo else _tiny)(root)
        prompts = _prompts(root, args.n)
        first = _run(models, "ft1", root / "work", prompts, extra)
        second = _run(models, "ft2", root / "work", prompts, extra)
        log = (root / "work" / "runs.jsonl").read_text().splitlines()
        runs = [json.loads(line) for line in log]
    what = "SmolLM2-135M-Instruct vs 1%-perturbed copies" if args.demo else "tiny llamas"
    print(f"aqi audit, {what}, {args.n} prompts (CPU): first {first:.1f} s (all work), "
          f"second fine-tune {second:.1f} s (base reused): ratio {second / first:.2f} "
          "(target <= 0.55)")
    # Where the time went (the work folder's run log): each phase, and the process's own
    # start (interpreter, imports, argument checks) = wall time - the run's seconds.
    for label, wall, run in (("first", first, runs[0]), ("second", second, runs[1])):
        parts = ", ".join(f"{ph['phase']} {ph['role']} {ph['seconds']:.1f}"
                          + (" (reused)" if ph["status"] == "reused" else "")
                          for ph in run["phases"])  # fmt: skip
        print(f"  {label}: process start {wall - run['seconds']:.1f} s; {parts}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "what": what, "n": args.n, "first_seconds": first, "second_seconds": second,
            "ratio": second / first, "runs": runs}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
