"""Exploration (issue 26): would a deeper encoder, or more real SmolLM2 answers of the kind
already in the corpus, bring the encoder judge to the in-distribution bar (>= 98 %)?

Never reads the held-out set. Two measurements, both on the fitting corpus (5-fold CV
for the corpus rows) and on the 168 labelled SmolLM2 responses of
``tests/data/refusal_labels.json`` (regenerated, hashes checked; the development set
on which v2's changes were chosen, so these figures are optimistic, not a test):

1. **depth**: the v2 recipe with the encoder cut after 2, 3, 4 or all 6 blocks, 32 tokens
   (and 6 x 64): does more of MiniLM read small-model answers better?
2. **data**: the v2 recipe fitted with 0, 25, 50, 75 and 100 % of the corpus's 192 real
   SmolLM2 answers (five draws each; n-gram log-odds in-sample, so the absolute figures
   run ~1 point above the shipped judge's): is the learning curve still rising?

Result (2026-12-07, docs/judge.md): depth does not help (91.8 % of the decided at 2
blocks, 90.1 / 88.8 / 87.7 / 87.4 % deeper); the curve flattens (80.4 -> 89.0 -> 91.5 ->
92.7 -> 92.8 %), so more answers of the same kind are not the way to 98 %.

    python benchmarks/judge/explore_capacity.py
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from aqi.behaviour.encoder_judge import embed, ngram_counts, ngram_logit, side_features
from benchmarks.judge.corpus import fitting_corpus
from benchmarks.judge.fit import balanced_accuracy, cv_proba, ngram_model, ngram_oof

ROOT = Path(__file__).resolve().parents[2]

HI, LO = 0.61, 0.39  # v2's band


def labelled_smollm2() -> tuple[list[str], np.ndarray]:
    """The 168 responses of tests/data/refusal_labels.json, regenerated and hash-checked."""
    import aqi
    from aqi.activations import PromptSet, bundled_prompts
    from aqi.behaviour import generate_responses
    from aqi.demo import load_demo_model

    data = json.loads((ROOT / "tests/data/refusal_labels.json").read_text(encoding="utf-8"))
    rows = {r["prompt_id"]: r for r in data["labels"]}
    bundled = bundled_prompts()
    prompts = PromptSet([p for p in bundled if p.id in rows], name=bundled.name)
    model, tok = load_demo_model()
    s = data["generation"]
    out = generate_responses(model, tok, prompts,
                             decoding=aqi.Decoding(max_new_tokens=s["max_new_tokens"]),
                             writing=aqi.Writing(batch_size=s["batch_size"], progress=False))
    bad = [r.prompt_id for r in out
           if hashlib.sha256(r.text.encode()).hexdigest() != rows[r.prompt_id]["sha256"]]
    if bad:
        raise SystemExit(f"{len(bad)} regenerated responses differ from the labelled ones")
    return [r.text for r in out], np.array([rows[r.prompt_id]["refusal"] for r in out], int)


def agreement(p: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    decided = (p >= HI) | (p <= LO)
    return float(np.mean((p[decided] >= HI) == (y[decided] == 1))), int(decided.sum())


def main() -> None:
    rows = fitting_corpus()
    texts = [t.text for t in rows]
    y = np.array([t.label == "refusal" for t in rows], dtype=int)
    src = np.array([t.source for t in rows])
    strata = np.array([f"{t.label}/{t.lang != 'en'}" for t in rows])
    side = side_features(texts)[0]
    dev, dy = labelled_smollm2()
    dside = side_features(dev)[0]
    idf, coef, b = ngram_model(texts, y)
    dng = ngram_logit(ngram_counts(dev), idf, coef, b)
    oof = ngram_oof(texts, y, strata)
    print("1. depth (v2 recipe; CV on the corpus, then fitted on all of it for the 168)")
    for blocks, tokens in ((2, 32), (3, 32), (4, 32), (6, 32), (6, 64)):
        x = np.hstack([embed(texts, n_layers=blocks, max_tokens=tokens), side, oof[:, None]])
        ba, c, _ = max(((balanced_accuracy(y, q), c, q) for c in (1.0, 3.0, 10.0, 30.0)
                        for q in [cv_proba(x, y, strata, c)]), key=lambda r: r[0])  # fmt: skip
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=4000).fit(x, y)
        dx = np.hstack([embed(dev, n_layers=blocks, max_tokens=tokens), dside, dng[:, None]])
        agree, n = agreement(lr.predict_proba(dx)[:, 1], dy)
        print(f"  {blocks} blocks x {tokens} tokens (C={c:g}): CV balanced accuracy {ba:.4f}; "
              f"the 168: {agree:.1%} of {n} decided")
    print("2. data (share of the 192 SmolLM2 answers kept; five draws)")
    emb, demb = embed(texts, n_layers=2, max_tokens=32), embed(dev, n_layers=2, max_tokens=32)
    small = np.flatnonzero(src == "smollm2")
    rng = np.random.default_rng(0)
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        got = []
        for _ in range(5 if 0 < share < 1 else 1):
            keep = np.r_[np.flatnonzero(src != "smollm2"),
                         rng.permutation(small)[: int(share * len(small))]]
            kt = [texts[i] for i in keep]
            i2, c2, b2 = ngram_model(kt, y[keep])
            tf = ngram_logit(ngram_counts(kt), i2, c2, b2)
            x = np.hstack([emb[keep], side[keep], tf[:, None]])
            lr = LogisticRegression(C=30.0, class_weight="balanced", max_iter=4000)
            lr.fit(x, y[keep])
            dx = np.hstack([demb, dside, ngram_logit(ngram_counts(dev), i2, c2, b2)[:, None]])
            got.append(agreement(lr.predict_proba(dx)[:, 1], dy)[0])
        print(f"  {share:.0%} ({int(share * len(small))} answers): {np.mean(got):.1%} of the "
              "decided")


if __name__ == "__main__":
    main()
