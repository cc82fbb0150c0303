"""Benchmark: ``aqi audit --latent-only`` against the full audit of the same fine-tune.

    python benchmarks/speed/audit_latent.py      # the demo's base and fine-tunes (~15 min, CPU)

The demo's safety-tuned base (SmolLM2-135M-Instruct + its base adapter) and its two
fine-tunes (``eroded``, ``benign``: :mod:`aqi.demo.assets`), on the demo's 96 prompts.
One work folder is warmed with the base's work (a latent audit of ``eroded``: the base is
generated, captured and judged once); then, for each fine-tune, two copies of it with
every trace of the fine-tunes removed, and in each copy one timed run in a fresh process:
``aqi audit`` (full: the fine-tune generates, is captured and judged) and ``aqi audit
--latent-only`` (one forward pass per prompt). Prints both wall times, their ratio
(issue 27's target: latent ≤ 0.25 × full) and whether the verdicts agree; writes
``benchmarks/out/audit_latent.json``. Needs a quiet machine (run it alone).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "benchmarks" / "out" / "audit_latent.json"


def _prompts(root: Path) -> Path:
    from aqi.demo.assets import demo_prompts

    path = root / "prompts.jsonl"
    path.write_text("".join(json.dumps({"id": p.id, "text": p.text, "label": p.label,
                                        "category": p.category, "pair_id": p.pair_id}) + "\n"
                            for p in demo_prompts()))  # fmt: skip
    return path


def _audit(model: Path, base: Path, work: Path, prompts: Path, latent: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "aqi", "audit", "--model", str(model), "--baseline-model",
           str(base), "--workdir", str(work), "--prompts", str(prompts), "--quiet", "--json",
           "--device", "cpu", *(["--latent-only"] if latent else [])]  # fmt: skip
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode not in (0, 1):
        raise SystemExit(f"aqi audit exited {done.returncode}: {done.stderr}")
    doc = json.loads(done.stdout)
    run = json.loads((work / "runs.jsonl").read_text().splitlines()[-1])
    pred = doc.get("predicted_refusal") or {}
    return {"wall_seconds": wall, "verdict": doc["verdict"], "mode": doc["mode"],
            "predicted_refusal": (pred.get("refusal") or {}).get("value"),
            "predicted_change": (pred.get("change") or {}).get("value"),
            "phases": run["phases"]}


def _clean_copy(src: Path, dst: Path, keep: str) -> Path:
    """A copy of the warmed work folder holding only the baseline's model folder."""
    shutil.copytree(src, dst)
    for d in (dst / "models").iterdir():
        if d.name != keep:
            shutil.rmtree(d)
    shutil.rmtree(dst / "reports", ignore_errors=True)
    return dst


def main() -> None:
    from aqi.demo.assets import demo_models

    dm = demo_models()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prompts = _prompts(root)
        warm = root / "warm"
        t = time.perf_counter()
        _audit(dm.finetunes["eroded"], dm.base, warm, prompts, latent=True)
        print(f"warm-up (the base generated, captured, judged): {time.perf_counter() - t:.0f} s",
              flush=True)
        base_key = next(d.name for d in (warm / "models").iterdir()
                        if d.name.startswith("base"))  # fmt: skip
        for name in ("eroded", "benign"):
            row = {}
            for mode in ("full", "latent"):
                work = _clean_copy(warm, root / f"{name}-{mode}", base_key)
                row[mode] = _audit(dm.finetunes[name], dm.base, work, prompts,
                                   latent=mode == "latent")  # fmt: skip
            row["ratio"] = row["latent"]["wall_seconds"] / row["full"]["wall_seconds"]
            row["verdicts_agree"] = row["latent"]["verdict"] == row["full"]["verdict"]
            results[name] = row
            print(f"{name}: full {row['full']['wall_seconds']:.1f} s ({row['full']['verdict']}), "
                  f"latent {row['latent']['wall_seconds']:.1f} s ({row['latent']['verdict']}, "
                  f"predicted refusal {row['latent']['predicted_refusal']:.2f}): ratio "
                  f"{row['ratio']:.3f} (target <= 0.25); verdicts agree: "
                  f"{row['verdicts_agree']}", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"what": "demo base vs its fine-tunes, 96 prompts, CPU",
                               "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    # no options: --help only says what it runs
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    main()
