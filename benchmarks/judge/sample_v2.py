"""The bench-v2 judge sample regenerated: both built-in judges on its 200 labelled responses.

Issue 26's in-distribution bar is measured on ``tests/data/variant_sample_labels.json``:
200 greedy responses of bench v2's original A and its 17 organisms, labelled by reading
before any judge ran. Their texts were not kept. This rebuilds A exactly as bench v2 did
(checked against the 208 response hashes bench v2 recorded), builds every organism in the
sample with bench v2's recipes, regenerates the sampled prompts' responses with bench v2's
settings, checks each against its label's SHA-256, and judges them once with the phrase
rules and the shipped encoder judge (docs/judge.md has the pre-registration).

Each organism's sampled prompts are generated as a batch of their own first; when a
response differs from its hash (a batch of other prompts pads differently), the organism's
whole evaluation set is regenerated as bench v2 did it. Resumable: an organism whose
responses file is already in the work folder and matches every hash is not rebuilt. The
texts stay in the work folder; nothing but counts, ids and hashes is written to the
repository.

    python -m benchmarks.judge.sample_v2             # → docs/data/judge_sample_v2_both.json
    python -m benchmarks.judge.sample_v2 --score-only   # judge what the work folder holds
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aqi
from aqi.activations import PromptSet
from aqi.behaviour import RefusalJudge, generate_responses, judge_labels, load_responses
from aqi.behaviour.encoder_judge import load_encoder_judge
from benchmarks.validity import OUT_V2, ROOT, v2
from benchmarks.validity import recipes as rec
from benchmarks.validity.judge_sample import _share, read_labels, sha256
from benchmarks.validity.v3 import hash_check

LABELS = ROOT / "tests" / "data" / "variant_sample_labels.json"
OUT = ROOT / "docs" / "data" / "judge_sample_v2_both.json"
WORKDIR = Path("/tmp/aqi-judge-sample-v2")


def _matches(path: Path, want: dict[str, str]) -> bool:
    if not path.is_file():
        return False
    got = {r.prompt_id: sha256(r.text) for r in load_responses(path) if r.sample == 0}
    return all(got.get(i) == h for i, h in want.items())


def regenerate(original: str, labels: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    """Rebuild ``original`` and the sampled organisms; write ``<variant>.jsonl`` per model."""
    out = workdir / "responses"
    out.mkdir(parents=True, exist_ok=True)
    want: dict[str, dict[str, str]] = {}
    for lab in labels:
        want.setdefault(lab["variant"], {})[lab["prompt_id"]] = lab["sha256"]
    todo = {v for v, w in want.items() if not _matches(out / f"{v}.jsonl", w)}
    log: dict[str, Any] = {"rebuilt": sorted(todo), "seconds": {}, "full_set": []}
    print(f"[{original}] {len(want) - len(todo)} of {len(want)} models already regenerated",
          flush=True)
    if not todo:
        return log
    recorded = json.loads((OUT_V2 / original / "original.json").read_text())
    scale = v2.SCALES[recorded["scale"]]
    spec = rec.original_spec(original)
    t0 = time.perf_counter()
    check = hash_check(original, recorded["response_sha256"], workdir / original, scale)
    built = v2.rebuild_original(original, scale, workdir, check=check,
                                fresh_direction_store=True)  # fmt: skip
    log["seconds"]["original"] = time.perf_counter() - t0
    print(f"[{original}] original rebuilt, its 208 responses equal to bench v2's "
          f"({log['seconds']['original']:.0f} s)", flush=True)
    ev, tok = built.sets["eval"], built.tok
    name = f"{original}-original"
    if name in todo:  # the hash check wrote the original's whole evaluation set
        (out / f"{name}.jsonl").write_bytes((workdir / original / "original-eval.jsonl")
                                            .read_bytes())  # fmt: skip
    ctx = built.context(spec, scale)
    deps, consumers = v2.shared_variants(scale)
    decoding = aqi.Decoding(max_new_tokens=scale.max_new_tokens)
    writing = aqi.Writing(batch_size=scale.batch_size, progress=False)
    for spec_v in rec.variants(scale, spec):
        vn = spec_v.name
        name = f"{original}-{vn}"
        if name not in todo:
            continue
        t1 = time.perf_counter()
        model = ctx.model(vn) if vn in deps else rec.build(vn, ctx)
        t_build = time.perf_counter() - t1
        path = out / f"{name}.jsonl"
        path.unlink(missing_ok=True)
        subset = PromptSet([p for p in ev if p.id in want[name]], name=ev.name)
        generate_responses(model, tok, subset, path, decoding=decoding, writing=writing)
        equal = _matches(path, want[name])
        if not equal:
            path.unlink()
            generate_responses(model, tok, ev, path, decoding=decoding, writing=writing)
            log["full_set"].append(name)
            equal = _matches(path, want[name])
        log["seconds"][name] = {"build": t_build, "generate": time.perf_counter() - t1 - t_build}
        print(f"[{original}] {vn:<16} built {t_build:.0f} s, responses "
              f"{'equal' if equal else 'DIFFERENT'} "
              f"({'whole set' if name in log['full_set'] else 'sampled prompts'})", flush=True)
        if vn in consumers:
            ctx.forget()
        del model
        gc.collect()
    log["seconds"]["total"] = time.perf_counter() - t0
    return log


def score(labels: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """Rules and encoder judge against the reader, on every response whose hash matches."""
    files = {p.stem: load_responses(p) for p in folder.glob("*.jsonl")}
    rows, differ = [], []
    for lab in labels:
        r = files.get(lab["variant"])
        r = None if r is None else r.by_key().get((lab["prompt_id"], lab["sample"]))
        if r is None or sha256(r.text) != lab["sha256"]:
            differ.append(lab["id"])
        else:
            rows.append((lab, r))
    reader = [lab["refusal"] for lab, _ in rows]
    rules, enc = RefusalJudge(), load_encoder_judge()

    def judged(name: str, said: list[str]) -> dict[str, Any]:
        decided = [(s == "refusal", h) for s, h in zip(said, reader, strict=True) if s != "unsure"]
        fr = sum(j and not h for j, h in decided)
        missed = sum(h and not j for j, h in decided)
        agree = len(decided) - fr - missed
        n_unsure = said.count("unsure")
        wrong = [{"id": lab["id"], "variant": lab["variant"], "prompt_id": lab["prompt_id"],
                  "reader": "refusal" if lab["refusal"] else "compliance", "judge": s}
                 for (lab, _), s in zip(rows, said, strict=True)
                 if s == "unsure" or (s == "refusal") != lab["refusal"]]  # fmt: skip
        return {"judge": name,
                "agreement_of_decided": _share(agree, len(decided), 0.95).__dict__,
                "agreement_unsure_as_error": _share(agree, len(said), 0.95).__dict__,
                "false_refusals": _share(fr, sum(not h for _, h in decided), 0.95).__dict__,
                "missed_refusals": _share(missed, sum(h for _, h in decided), 0.95).__dict__,
                "unsure": n_unsure, "disagreements": wrong}  # fmt: skip

    said = {k: list(judge_labels([r for _, r in rows], j)) for k, j in
            (("rules", rules), ("encoder", enc))}  # the library's reading of any judge's answer
    return {"schema": "aqi-judge-sample-v2-both/1", "labels": str(LABELS.relative_to(ROOT)),
            "n_labels": len(labels), "n_scored": len(rows), "hash_mismatch": differ,
            "reader_refusals": sum(reader),
            "by_variant": dict(Counter(lab["variant"] for lab, _ in rows)),
            "rules": judged(f"rules v{rules.version}", said["rules"]),
            "encoder": judged(f"encoder v{enc.version} ({enc.precision})", said["encoder"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.judge.sample_v2",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=WORKDIR)
    ap.add_argument("--score-only", action="store_true")
    args = ap.parse_args(argv)
    labels = read_labels(LABELS)
    originals = sorted({lab["variant"].split("-", 1)[0] for lab in labels})
    # --score-only keeps the record of how the responses were regenerated
    log: dict[str, Any] = (json.loads(OUT.read_text()).get("regeneration", {})
                           if args.score_only and OUT.is_file() else {})  # fmt: skip
    if not args.score_only:
        for o in originals:
            log[o] = regenerate(o, [lab for lab in labels if lab["variant"].startswith(o + "-")],
                                args.workdir)
    doc = {**score(labels, args.workdir / "responses"), "regeneration": log}
    OUT.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    for k in ("rules", "encoder"):
        d = doc[k]
        a, fr, mr = d["agreement_of_decided"], d["false_refusals"], d["missed_refusals"]
        print(f"{d['judge']}: agreement {a['k']}/{a['n']} = {a['rate']:.1%} "
              f"[{a['ci_low']:.1%}, {a['ci_high']:.1%}]; false refusals {fr['k']}/{fr['n']}, "
              f"missed {mr['k']}/{mr['n']}, unsure {d['unsure']}")
    print(f"{doc['n_scored']} of {doc['n_labels']} scored ({len(doc['hash_mismatch'])} hash "
          f"mismatches); wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
