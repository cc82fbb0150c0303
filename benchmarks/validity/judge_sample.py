"""A new, blind sample to measure the refusal judge on: draw, label by reading, score.

    python -m benchmarks.validity judge-sample draw RESPONSES_DIR --n 200   # a sheet in /tmp
    # read every response in SHEET (sheet.jsonl), set "refusal" to true / false by the rule
    # in tests/data/README.md, *before* running any judge on them; then
    python -m benchmarks.validity judge-sample labels SHEET \
        --out tests/data/variant_sample_labels.json
    python -m benchmarks.validity judge-sample score tests/data/variant_sample_labels.json \
        RESPONSES_DIR

``RESPONSES_DIR`` is a folder of ``aqi-responses`` JSONL files, one per model variant (the
bench writes ``<variant>.jsonl`` to its work folder; ``-T1`` sampled and ``-jb`` jailbreak
files are left out unless ``--pattern`` asks for them). The sample is stratified by
variant x prompt label, proportionally (largest remainder) with every non-empty stratum
represented when ``n`` allows. The sheet holds ids, SHA-256 hashes and texts and is written
outside the repository (texts are never committed); the sheet carries no judge verdict, so
labels are given blind. The committed labels file keeps ids + hashes + labels only. Scoring
re-reads the responses, checks every hash, runs the judge and reports agreement, Cohen's κ
and both error directions (false refusals: the judge says refusal, the reader compliance;
missed refusals: the other way) with Wilson intervals, per variant too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aqi._stats import wilson_interval
from aqi.behaviour import RefusalJudge, judge_agreement, load_responses
from benchmarks.validity import ROOT as REPO

LABELS_SCHEMA = "aqi-judge-sample-labels"
SKIP_SUFFIXES = ("-T1", "-jb")


def sha256(text: str) -> str:
    """SHA-256 of a response text (UTF-8), as the label files store it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _responses(folder: Path, pattern: str) -> dict[str, Any]:
    if not folder.is_dir():
        raise ValueError(f"responses folder {str(folder)!r} is not a directory")
    files = sorted(p for p in folder.glob(pattern)
                   if pattern != "*.jsonl" or not p.stem.endswith(SKIP_SUFFIXES))  # fmt: skip
    if not files:
        raise ValueError(f"no responses files matching {pattern!r} in {str(folder)!r}")
    return {p.stem: load_responses(p) for p in files}


def _allocate(sizes: Sequence[int], n: int) -> list[int]:
    """Split ``n`` over strata in proportion to ``sizes`` (largest remainder, capped)."""
    total = sum(sizes)
    quota = np.array(sizes, dtype=float) * n / total
    take = np.minimum(np.floor(quota).astype(int), sizes)
    if n >= len(sizes):  # every non-empty stratum represented
        take = np.maximum(take, np.minimum(1, sizes))
    order = np.argsort(-(quota - np.floor(quota)), kind="stable")
    while take.sum() < n:
        for i in order:
            if take.sum() < n and take[i] < sizes[i]:
                take[i] += 1
    while take.sum() > n:  # the minimum of one overshot: trim where it exceeds its quota most
        i = int(np.argmax(np.where(take > 1, take - quota, -np.inf)))
        take[i] -= 1
    return [int(t) for t in take]


def draw_sample(folder: str | Path, n: int, *, seed: int = 0,
                pattern: str = "*.jsonl") -> list[dict[str, Any]]:  # fmt: skip
    """A stratified sample of ``n`` responses (variant x prompt label), in shuffled order.

    Each item: ``id`` (``s001`` ...), ``variant``, ``prompt_id``, ``sample``,
    ``prompt_label``, ``sha256``, ``text`` and ``refusal: None`` for the reader.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; expected a positive int")
    by_variant = _responses(Path(folder), pattern)
    strata: dict[tuple[str, str], list[Any]] = {}
    for variant, rs in by_variant.items():
        for r in rs:
            strata.setdefault((variant, r.label), []).append(r)
    available = sum(len(v) for v in strata.values())
    if n > available:
        raise ValueError(f"n={n} but the folder holds only {available} responses")
    keys = sorted(strata)
    rng = np.random.default_rng(seed)
    picked = []
    for key, k in zip(keys, _allocate([len(strata[s]) for s in keys], n), strict=True):
        rows = strata[key]
        picked += [(key[0], rows[i]) for i in sorted(rng.choice(len(rows), k, replace=False))]
    picked = [picked[i] for i in rng.permutation(len(picked))]  # the reader sees no strata
    return [{"id": f"s{j + 1:03d}", "variant": v, "prompt_id": r.prompt_id, "sample": r.sample,
             "prompt_label": r.label, "sha256": sha256(r.text), "text": r.text, "refusal": None}
            for j, (v, r) in enumerate(picked)]  # fmt: skip


def write_sheet(items: Sequence[dict[str, Any]], folder: str | Path | None = None) -> Path:
    """Write the labelling sheet (``sheet.jsonl``, one item a line) outside the repository."""
    out = Path(tempfile.mkdtemp(prefix="aqi-judge-sample-") if folder is None else folder)
    if out.resolve().is_relative_to(REPO):
        raise ValueError(f"sheet folder {str(out)!r} is inside the repository {str(REPO)!r}; "
                         "the sheet holds response texts, which are never committed")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    sheet = out / "sheet.jsonl"
    with sheet.open("w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    return sheet


def labels_from_sheet(sheet: str | Path, *, label_rule: str = "tests/data/README.md",
                      note: str = "") -> dict[str, Any]:  # fmt: skip
    """The committed labels document from a filled sheet: ids + hashes + labels, no text."""
    rows = [json.loads(line) for line in Path(sheet).read_text(encoding="utf-8").splitlines()
            if line.strip()]  # fmt: skip
    open_ = [r["id"] for r in rows if not isinstance(r.get("refusal"), bool)]
    if open_:
        raise ValueError(f"{len(open_)} sheet rows have no true/false 'refusal' label "
                         f"(e.g. {open_[:5]}); label every row before exporting")  # fmt: skip
    keep = ("id", "variant", "prompt_id", "sample", "prompt_label", "sha256", "refusal")
    return {"schema": LABELS_SCHEMA, "version": 1, "label_rule": label_rule, "note": note,
            "labels": [{k: r[k] for k in keep} for r in rows]}  # fmt: skip


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """The labels of a committed labels file, checked (schema, fields, no response text)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    if doc.get("schema") != LABELS_SCHEMA:
        raise ValueError(f"{str(path)!r} is not an {LABELS_SCHEMA} file "
                         f"(schema={doc.get('schema')!r})")  # fmt: skip
    rows = doc["labels"]
    for r in rows:
        if "text" in r or not isinstance(r.get("refusal"), bool) or len(r.get("sha256", "")) != 64:
            raise ValueError(f"label {r.get('id')!r} in {str(path)!r}: needs a bool 'refusal' "
                             "and a sha256, and never the text")  # fmt: skip
    ids = [r["id"] for r in rows]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{str(path)!r} repeats sample ids")
    return rows


@dataclass(frozen=True)
class Share:
    """``k`` of ``n`` with a Wilson interval."""

    k: int
    n: int
    rate: float
    ci_low: float
    ci_high: float

    def __repr__(self) -> str:
        return f"{self.k}/{self.n} = {self.rate:.1%} [{self.ci_low:.1%}, {self.ci_high:.1%}]"


def _share(k: int, n: int, confidence: float) -> Share:
    e = wilson_interval(k, n, confidence)
    return Share(k=k, n=n, rate=e.value, ci_low=e.ci_low, ci_high=e.ci_high)


@dataclass(frozen=True)
class SampleScore:
    """The judge against the reader on one labelled sample."""

    agreement: Share
    kappa: float
    false_refusals: Share  # among responses the reader called compliance
    missed_refusals: Share  # among responses the reader called refusals
    by_variant: dict[str, Share]
    disagreements: list[dict[str, Any]] = field(repr=False)
    judge: str = ""

    def to_dict(self) -> dict[str, Any]:
        def d(s: Share) -> dict[str, Any]:
            return dict(s.__dict__)

        return {"agreement": d(self.agreement), "kappa": self.kappa,
                "false_refusals": d(self.false_refusals),
                "missed_refusals": d(self.missed_refusals),
                "by_variant": {k: d(v) for k, v in self.by_variant.items()},
                "disagreements": self.disagreements, "judge": self.judge}  # fmt: skip


def score_sample(labels: Sequence[dict[str, Any]], folder: str | Path,
                 judge: Callable[[str], bool] | None = None, *, pattern: str = "*.jsonl",
                 confidence: float = 0.95) -> SampleScore:  # fmt: skip
    """Re-read the labelled responses (hash-checked), judge them, compare with the labels."""
    judge = RefusalJudge() if judge is None else judge
    by_variant = _responses(Path(folder), pattern)
    texts, wrong = [], []
    for lab in labels:
        rs = by_variant.get(lab["variant"])
        r = None if rs is None else rs.by_key().get((lab["prompt_id"], lab["sample"]))
        if r is None:
            raise ValueError(f"label {lab['id']}: no response of variant {lab['variant']!r} to "
                             f"{lab['prompt_id']!r} (sample {lab['sample']}) in "
                             f"{str(folder)!r}")  # fmt: skip
        if sha256(r.text) != lab["sha256"]:
            wrong.append(lab["id"])
        texts.append(r.text)
    if wrong:
        raise ValueError(f"{len(wrong)} of {len(labels)} responses differ from the labelled ones "
                         f"(hash mismatch, e.g. {wrong[:5]}): the labels do not describe them")
    judged = [bool(judge(t)) for t in texts]
    ref = [lab["refusal"] for lab in labels]
    a = judge_agreement(judged, ref)
    explain = getattr(judge, "explain", None)
    dis = [{"id": lab["id"], "variant": lab["variant"], "prompt_id": lab["prompt_id"],
            "reader": r, "judge": j, "why": repr(explain(t)) if explain else None}
           for lab, t, j, r in zip(labels, texts, judged, ref, strict=True) if j != r]  # fmt: skip
    per: dict[str, list[bool]] = {}
    for lab, j, r in zip(labels, judged, ref, strict=True):
        per.setdefault(lab["variant"], []).append(j == r)
    return SampleScore(
        agreement=_share(a.both + a.neither, a.n, confidence),
        kappa=a.kappa,
        false_refusals=_share(a.judge_only, a.judge_only + a.neither, confidence),
        missed_refusals=_share(a.reference_only, a.reference_only + a.both, confidence),
        by_variant={v: _share(sum(x), len(x), confidence) for v, x in sorted(per.items())},
        disagreements=dis,
        judge=repr(judge),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.validity judge-sample",
                                 description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw", help="draw a stratified sample and write the labelling sheet")
    d.add_argument("responses")
    d.add_argument("--n", type=int, default=200)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--pattern", default="*.jsonl")
    d.add_argument("--out", default=None, help="sheet folder (default: a new temp folder)")
    lb = sub.add_parser("labels", help="export a filled sheet as ids + hashes + labels")
    lb.add_argument("sheet")
    lb.add_argument("--out", required=True)
    lb.add_argument("--note", default="")
    sc = sub.add_parser("score", help="judge the labelled responses and report agreement")
    sc.add_argument("labels")
    sc.add_argument("responses")
    sc.add_argument("--pattern", default="*.jsonl")
    sc.add_argument("--out", default=None,
                    help="also write the score as JSON (it outlives the responses it needs)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "draw":
            sheet = write_sheet(draw_sample(args.responses, args.n, seed=args.seed,
                                            pattern=args.pattern), args.out)  # fmt: skip
            print(f"sheet: {sheet} (label every row's 'refusal' by reading, before judging)")
        elif args.cmd == "labels":
            doc = labels_from_sheet(args.sheet, note=args.note)
            Path(args.out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
            print(f"{len(doc['labels'])} labels (no texts) -> {args.out}")
        else:
            s = score_sample(read_labels(args.labels), args.responses, pattern=args.pattern)
            if args.out:
                doc = {"schema": "aqi-judge-sample-score", "labels": args.labels,
                       "responses": str(args.responses), **s.to_dict()}  # fmt: skip
                Path(args.out).write_text(json.dumps(doc, indent=1, default=str) + "\n",
                                          encoding="utf-8")  # fmt: skip
            print(f"agreement {s.agreement!r}, kappa {s.kappa:.3f}")
            print(f"false refusals {s.false_refusals!r}; missed refusals {s.missed_refusals!r}")
            for v, share in s.by_variant.items():
                print(f"  {v}: {share!r}")
            for x in s.disagreements:
                print(f"  {x['id']} {x['variant']}/{x['prompt_id']}: reader "
                      f"{'refusal' if x['reader'] else 'compliance'}, {x['why']}")  # fmt: skip
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

