"""Benchmark: capture and ``aqi audit`` reuse, before and after a change, in one run.

    git worktree add /tmp/aqi-before c14ced4        # the code before the redesign (issue 29)
    python benchmarks/speed/before_after.py --before /tmp/aqi-before             # ~15 min
    python benchmarks/speed/before_after.py --before /tmp/aqi-before --n 96 --repeats 2

Each measurement runs in a fresh process whose ``aqi`` is one checkout's (``PYTHONPATH``
and working folder), alternating before / after so that drift of a shared machine falls
on both. Prints, per checkout, the median over ``--repeats`` of:

1. **capture** of ``--n`` real prompts on SmolLM2-135M-Instruct (CPU, every block, mean
   and last pooling, batch 16, HDF5 written) and the backbone-only forward over the same
   sorted batches; after / before of the capture time and of capture / forward (the
   machine-independent figure; target: within 3 %);
2. **audit reuse** (``benchmarks/.../audit_reuse.py`` of each checkout, tiny models): the
   first audit (all work) and the second (the base reused); after / before of each
   (target: within 3 %).

Needs a quiet machine: run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: One capture measurement, written for both APIs (the settings values, or before them
#: the keyword arguments); prints one JSON line.
CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
import torch
import aqi
from aqi.activations import PromptEncoder
try:
    from aqi.prompts.encoding import pad_batch
except ImportError:  # before the prompts room
    from aqi.activations.encoding import pad_batch
from aqi.demo import load_demo_model
from benchmarks.real_prompts import real_prompts

n = int(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(int(sys.argv[2]))
model, tok = load_demo_model()
prompts = real_prompts()[:n]
kw = ({"writing": aqi.Writing(batch_size=16, progress=False)} if hasattr(aqi, "Writing")
      else {"batch_size": 16, "progress": False})

def backbone(prompts):
    enc = PromptEncoder(tok, span="user").encode(list(prompts))
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i].input_ids))
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), 16):
            ids, attn, _ = pad_batch([enc[i] for i in order[b:b + 16]], tok.pad_token_id, "right")
            model.model(input_ids=ids, attention_mask=attn,
                        position_ids=(attn.cumsum(-1) - 1).clamp(min=0), use_cache=False)
    return time.perf_counter() - t0

backbone(prompts[:32])  # warm-up
with tempfile.TemporaryDirectory() as d:
    t0 = time.perf_counter()
    aqi.capture(model, tok, prompts, Path(d) / "c.h5", pooling=("mean", "last"), **kw).close()
    t_capture = time.perf_counter() - t0
t_forward = backbone(prompts)
print(json.dumps({"capture_s": t_capture, "forward_s": t_forward, "n": len(prompts)}))
"""


def _env(checkout: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout)}


def _capture(checkout: Path, n: int, threads: int) -> dict[str, float]:
    cmd = [sys.executable, "-c", CHILD, str(n), str(threads)]
    out = subprocess.run(cmd, cwd=checkout, env=_env(checkout), capture_output=True, text=True,
                         check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def _audit_reuse(checkout: Path) -> dict[str, float]:
    script = next(p for p in (checkout / "benchmarks" / "speed" / "audit_reuse.py",
                              checkout / "benchmarks" / "audit_reuse.py") if p.is_file())
    with tempfile.TemporaryDirectory() as d:
        js = Path(d) / "r.json"
        subprocess.run([sys.executable, str(script), "--json", str(js)], cwd=checkout,
                       env=_env(checkout), capture_output=True, text=True, check=True)  # fmt: skip
        return json.loads(js.read_text())


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True, help="a checkout of the old code")
    ap.add_argument("--after", type=Path, default=ROOT, help="default this checkout")
    ap.add_argument("--n", type=int, default=294, help="prompts captured (default 294)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating runs per checkout")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in each child")
    ap.add_argument("--skip-audit", action="store_true", help="only the capture figures")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    for name in ("before", "after"):
        if not (getattr(args, name) / "aqi" / "__init__.py").is_file():
            ap.error(f"--{name} {getattr(args, name)}: no aqi/__init__.py there (expected a "
                     "checkout of this repository, e.g. `git worktree add DIR COMMIT`)")
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    cap: dict[str, list] = {k: [] for k in sides}
    reuse: dict[str, list] = {k: [] for k in sides}
    for r in range(args.repeats):
        for side in (("before", "after") if r % 2 == 0 else ("after", "before")):
            cap[side].append(_capture(sides[side], args.n, args.threads))
            print(f"[{side}] capture {cap[side][-1]['capture_s']:.2f} s, backbone forward "
                  f"{cap[side][-1]['forward_s']:.2f} s", flush=True)  # fmt: skip
            if not args.skip_audit:
                r = _audit_reuse(sides[side])
                reuse[side].append({k: r[k] for k in ("first_seconds", "second_seconds",
                                                      "ratio")})  # fmt: skip
                print(f"[{side}] audit reuse: first {r['first_seconds']:.2f} s, second "
                      f"{r['second_seconds']:.2f} s", flush=True)  # fmt: skip
    res: dict[str, dict[str, float]] = {}
    for side, runs in cap.items():
        res[side] = {"capture_s": _median(runs, "capture_s"),
                     "capture_over_forward": statistics.median(
                         x["capture_s"] / x["forward_s"] for x in runs)}  # fmt: skip
        for key in reuse[side][0] if reuse[side] else ():
            res[side][f"reuse_{key}"] = _median(reuse[side], key)
    print(f"\n{args.repeats} alternating runs per checkout, {args.n} prompts; medians")
    print(f"{'figure':28s} {'before':>10s} {'after':>10s} {'after/before':>13s}")
    ratios = {}
    for key in res["after"]:
        b, a = res["before"].get(key), res["after"][key]
        if b:
            ratios[key] = a / b
            print(f"{key:28s} {b:10.3f} {a:10.3f} {a / b:13.3f}")
    if args.json:
        args.json.write_text(json.dumps({"before": str(sides["before"]), "n": args.n,
                                         "repeats": args.repeats, "medians": res,
                                         "after_over_before": ratios}, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
