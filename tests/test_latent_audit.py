"""aqi audit --latent-only / audit_models(generate=False): a verdict without generation."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from aqi.cli import main
from aqi.workflow import audit_models
from tests.conftest import values

from .test_workflow import CLI_FAST, FAST, fast


def hash_judge(text: str) -> bool:
    """A *test* judge (not a refusal judge): refusal when the response's SHA-256 starts with
    an even byte. Tiny random models refuse nothing a real judge would hear; this one gives
    the baseline both outcomes, so the latent rule can be fitted and the plumbing tested."""
    return hashlib.sha256(text.encode()).digest()[0] % 2 == 0


JUDGE = f"{__name__}:hash_judge"


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_latent_audit_generates_nothing_for_the_model_and_says_so(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    run = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work,
                       **fast(generate=False, judge=hash_judge))  # fmt: skip
    phases = {(p.phase, p.role) for p in run.phases}
    assert ("generate", "audited") not in phases and ("generate", "baseline") in phases
    folder = next(d for d in (work / "models").iterdir() if d.name.startswith("ft1-"))
    assert "responses.jsonl" not in _files(folder) and "prompts.h5" in _files(folder)
    r = run.report
    assert r.mode == "latent" and [c.name for c in r.checks] == ["predicted_refusal"]
    assert r.verdict == r.checks[0].verdict and r.predicted is not None
    assert "LATENT" in run.summary() and "latent audit" in r.notes[0]
    doc = json.loads(run.json.read_text())
    schema = json.loads(files("aqi.data").joinpath("audit.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["mode"] == "latent" and doc["predicted_refusal"]["n_fit"] == 16
    log = json.loads((work / "runs.jsonl").read_text().splitlines()[-1])
    assert log["mode"] == "latent"

    # A full audit of the same pair afterwards reuses the baseline and shows the prediction
    full = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work,
                        **fast(judge=hash_judge))  # fmt: skip
    st = {(p.phase, p.role): p.status for p in full.phases}
    assert st[("generate", "baseline")] == "reused" and st[("generate", "audited")] == "ran"
    assert full.report.mode == "full" and full.report.predicted is not None
    assert "predicted refusal (latent, evidence)" in full.summary()
    # ... and decides the hidden_shift check: warn iff the latent rule fails, judged refusal held
    from aqi.checks import predicted_refusal_check

    checks = {c.name: c for c in full.report.checks}
    hs, judged = checks["hidden_shift"], checks["refusal_change"]
    latent = predicted_refusal_check(full.report.predicted, full.report.thresholds).verdict
    assert hs.evidence == {"latent_verdict": latent, "judged_verdict": judged.verdict,
                           "bench": "docs/validation.md, bench v4"}
    assert (hs.verdict == "warn") == (latent == "fail" and judged.verdict != "fail")
    assert hs.verdict in ("pass", "warn")
    jsonschema.validate(json.loads(full.json.read_text()), schema)
    # ... and a latent audit after it reads the full store's prompt spans (nothing captured)
    again = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work,
                         **fast(generate=False, judge=hash_judge))  # fmt: skip
    st = {(p.phase, p.role): p.status for p in again.phases}
    assert st[("capture", "audited")] == "reused"
    assert again.report.predicted.refusal.value == pytest.approx(
        full.report.predicted.refusal.value)


def test_verify_generates_about_k_prompts_and_decides_on_them(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    run = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work,
                       **fast(generate=False, verify=4, judge=hash_judge))  # fmt: skip
    v = run.report.verified
    assert v is not None and v.n_unsafe == 8 and v.n_drawn >= 1
    folder = next(d for d in (work / "models").iterdir() if d.name.startswith("ft1-"))
    rows = (folder / "verify.jsonl").read_text().splitlines()
    assert len([r for r in rows if '"prompt_id"' in r]) == v.n_drawn
    c = run.report["predicted_refusal"]
    assert "generated responses (active inference)" in c.summary
    assert c.value == pytest.approx(v.change.value)


def test_a_baseline_that_refuses_nothing_is_refused_with_its_counts(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"the baseline refused 0 of its 16 judged prompts"):
        audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=tmp_path / "w",
                     **fast(generate=False))  # fmt: skip


@pytest.mark.parametrize(("kw", "match"), [
    ({"verify": 3}, r"verify=3 checks a latent prediction: it needs generate=False"),
    ({"generate": False, "verify": 9}, r"verify=9: the prompt set has 8 unsafe prompts"),
    ({"generate": False, "verify": -1}, r"verify=-1; expected a whole number"),
    ({"generate": "no"}, r"generate='no'; expected True"),
])  # fmt: skip
def test_bad_latent_arguments_are_named_before_any_model_loads(
    models: dict, prompt_file: Path, tmp_path: Path, kw: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=tmp_path / "w",
                     **values("audit_models", **{**FAST, **kw}))  # fmt: skip
    assert not (tmp_path / "w" / "models").exists()


def test_cli_latent_only_and_verify(models: dict, prompt_file: Path, tmp_path: Path,
                                    capsys: Any) -> None:
    argv = ["audit", "--model", str(models["ft1"]), "--baseline-model", str(models["base"]),
            "--prompts", str(prompt_file), "--workdir", str(tmp_path / "w"), *CLI_FAST,
            "--judge", JUDGE, "--latent-only", "--json"]  # fmt: skip
    rc = main(argv)
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "latent" and rc == (1 if doc["verdict"] == "fail" else 0)
    assert main([*argv[:-2], "--verify", "0"]) == 2
    assert "--verify" in capsys.readouterr().err
