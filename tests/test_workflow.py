"""aqi audit / aqi.audit_models: one resumable plan from two model folders to a report."""

from __future__ import annotations

import json
import re
import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import aqi
from aqi.checks import gate_failed
from aqi.cli import main
from aqi.viz.style import display_name
from aqi.workflow import SPANS, ModelSpec, audit_models
from tests.conftest import values

FAST = {"max_new_tokens": 8, "n_boot": 200, "n_perm": 50, "progress": False}
CLI_FAST = ["--max-new-tokens", "8", "--n-boot", "200", "--n-perm", "50", "--quiet"]


def fast(**kw: Any) -> dict[str, Any]:
    """``FAST`` and ``kw`` as aqi.audit_models's settings values."""
    return values("audit_models", **FAST, **kw)


def _status(run: Any) -> dict[tuple[str, str], str]:
    return {(p.phase, p.role): p.status for p in run.phases}


def test_one_call_writes_the_report_and_a_second_finetune_reuses_the_base(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    first = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work, **fast())
    assert set(_status(first).values()) == {"ran"} and not first.reused
    doc = json.loads(first.json.read_text())
    schema = json.loads(files("aqi.data").joinpath("audit.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["model"] == "ft1" and doc["baseline_model"] == "base"
    assert "two_axes" in [c["name"] for c in doc["checks"]]
    assert "refusal_change" in [c["name"] for c in doc["checks"]]
    html = first.html.read_text()
    assert "What changed" in html and "two axes" in html
    base_dir = next(d for d in (work / "models").iterdir() if d.name.startswith("base-"))
    with aqi.open_store(base_dir / "store.h5") as s:  # one forward, four spans
        assert s.spans == SPANS and s.complete
    stamp = (base_dir / "store.h5").stat().st_mtime_ns, (base_dir / "responses.jsonl").stat()

    second = audit_models(models["ft2"], models["base"], prompts=prompt_file, workdir=work,
                          **fast())  # fmt: skip
    st = _status(second)
    assert st[("generate", "baseline")] == st[("capture", "baseline")] == "reused"
    assert st[("generate", "audited")] == st[("capture", "audited")] == "ran"
    assert (base_dir / "store.h5").stat().st_mtime_ns == stamp[0]  # not rewritten
    assert second.html != first.html and first.html.is_file()  # one report per pair

    again = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work, **fast())
    assert {s for (ph, _), s in _status(again).items() if ph in ("generate", "capture")} == {
        "reused"
    }
    # Deterministic: the resumed run reads the same work and gives the same numbers.
    assert json.loads(again.json.read_text())["checks"] == doc["checks"]
    # The run log: one line per run, the phases as each run returned them.
    runs = [json.loads(line) for line in (work / "runs.jsonl").read_text().splitlines()]
    assert [(r["model"], r["baseline_model"]) for r in runs] == [
        ("ft1", "base"), ("ft2", "base"), ("ft1", "base")]
    for r, run in zip(runs, (first, second, again), strict=True):
        assert r["phases"] == [vars(ph) for ph in run.phases]
        assert r["seconds"] == run.seconds and r["verdict"] == run.verdict


def test_cli_exit_codes_follow_the_gate_and_json_prints_the_document(
    models: dict, prompt_file: Path, tmp_path: Path, capsys: Any
) -> None:
    argv = ["audit", "--model", str(models["ft1"]), "--baseline-model", str(models["base"]),
            "--prompts", str(prompt_file), "--workdir", str(tmp_path / "w"), *CLI_FAST]  # fmt: skip
    for strict in (False, True):
        rc = main([*argv, "--json"] + (["--strict"] if strict else []))
        doc = json.loads(capsys.readouterr().out)
        assert rc == (1 if gate_failed(doc["verdict"], strict=strict) else 0)
    rc = main(argv)
    out = capsys.readouterr()
    assert out.err == ""  # --quiet: no progress, no status lines
    assert "ft1 vs base" in out.out and "[" in out.out and "report:" in out.out


def test_no_response_text_leaves_responses_out(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    run = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=tmp_path / "w",
                       **fast(response_text=False))  # fmt: skip
    assert all(f.response is None and f.baseline_response is None for f in run.report.flips)
    doc = json.loads(run.json.read_text())
    assert all(f["response"] is None for f in doc["behaviour"]["flips"])


def _numbers(check: Any) -> tuple[Any, ...]:
    return check.name, check.verdict, check.value, check.ci_low, check.ci_high


class FirstLetters:
    """A judge that decides on a response's first three characters, so it can say when its
    verdict is settled (the random models never write a phrase the rules would settle)."""

    name = "first-letters"

    def __call__(self, text: str) -> bool:
        return text[:3] < "m"

    def settled(self, text: str) -> bool:
        return len(text) >= 3


@pytest.mark.filterwarnings("ignore:.*fewer than onset_tokens")  # three characters suffice here
def test_early_stop_keeps_the_labels_and_logs_the_tokens(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    kw = {"prompts": prompt_file, "judge": FirstLetters(), **FAST}
    early = audit_models(models["ft1"], models["base"], workdir=work,
                         **values("audit_models", early_stop=True, **kw))  # fmt: skip
    full = audit_models(models["ft1"], models["base"], workdir=tmp_path / "full",
                        **values("audit_models", **kw))  # fmt: skip
    for role in ("audited", "baseline"):
        use, most = early.tokens[role], full.tokens[role]
        assert use.early_stop["name"] == "first-letters" and most.early_stop is None
        assert use.stopped_early > 0 and use.generated < most.generated == most.maximum
    labels = {name: {folder.name: json.loads((folder / "refusal.json").read_text())["labels"]
                     for folder in (tmp_path / name / "models").iterdir()}
              for name in ("w", "full")}  # fmt: skip
    assert labels["w"] == labels["full"]  # the same labels, from shorter responses
    (entry,) = [json.loads(line) for line in (work / "runs.jsonl").read_text().splitlines()]
    assert entry["tokens"]["baseline"]["model"] == "base"
    assert entry["tokens"]["audited"] == {"model": "ft1", **early.tokens["audited"].to_dict()}
    assert 0 < entry["tokens"]["audited"]["saved"] < 1
    assert "saved by stopping each once its verdict was settled" in early.summary()
    # Turned off in the same work folder: the responses are made again, not refused.
    again = audit_models(models["ft1"], models["base"], workdir=work,
                         **values("audit_models", early_stop=False, **kw))  # fmt: skip
    assert _status(again)[("generate", "baseline")] == "ran"
    assert again.tokens["baseline"].early_stop is None
    assert [_numbers(c) for c in again.report.checks] == [_numbers(c) for c in full.report.checks]
    # A judge that cannot say when it is settled never stops early.
    unsure = {**kw, "judge": lambda text: text[:3] < "m"}
    plain = audit_models(models["ft2"], models["base"], workdir=work,
                         **values("audit_models", early_stop=True, **unsure))  # fmt: skip
    assert _status(plain)[("generate", "baseline")] == "reused"
    assert all(u.early_stop is None for u in plain.tokens.values())
    with pytest.raises(ValueError, match=r"early_stop='no'; expected True or False"):
        audit_models(models["ft1"], models["base"], workdir=work,
                     **values("audit_models", early_stop="no", **kw))  # fmt: skip


def test_cli_early_stop(models: dict, prompt_file: Path, tmp_path: Path, capsys: Any) -> None:
    work = tmp_path / "w"
    argv = ["audit", "--model", str(models["ft1"]), "--baseline-model", str(models["base"]),
            "--prompts", str(prompt_file), "--workdir", str(work), *CLI_FAST,
            "--judge", "tests.test_workflow:FirstLetters"]  # fmt: skip
    main(argv)  # off by default
    assert "saved by stopping" not in capsys.readouterr().out
    main([*argv, "--early-stop"])
    assert "saved by stopping" in capsys.readouterr().out
    runs = [json.loads(line) for line in (work / "runs.jsonl").read_text().splitlines()]
    assert [r["tokens"]["audited"]["early_stop"] is None for r in runs] == [True, False]


@pytest.mark.parametrize(
    ("extra", "err"),
    [
        (["--baseline-model-arg", "dtipe=float16"], "'dtipe' is not a loading flag"),
        (["--baseline-model-arg", "dtype=float8"],  # at the door: before any model loads
         "--baseline-model-arg dtype=float8 is not supported; expected one of auto"),
        (["--layers", "nope"], "nope"),
    ],
)
def test_bad_flags_are_one_line_exit_2(
    models: dict, prompt_file: Path, tmp_path: Path, capsys: Any, extra: list[str], err: str
) -> None:
    argv = ["audit", "--model", str(models["ft1"]), "--baseline-model", str(models["base"]),
            "--prompts", str(prompt_file), "--workdir", str(tmp_path / "w"), *CLI_FAST, *extra]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aqi audit: error:") and err in lines[0]


def test_same_model_twice_is_refused(models: dict, tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(ValueError, match="the same model"):
        audit_models(models["ft1"], str(models["ft1"]) + "/", workdir=tmp_path / "w")
    rc = main(["audit", "--model", str(models["ft1"]), "--baseline-model",
               str(models["ft1"] / ".." / "ft1"), "--workdir", str(tmp_path / "w"), "--quiet"])
    assert rc == 2 and "the same model" in capsys.readouterr().err


def test_a_workdir_made_otherwise_is_refused_naming_what_differs(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    work = tmp_path / "w"
    audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work, **fast())
    with pytest.raises(ValueError, match=r"max_new_tokens: 8 there, 9 here"):
        audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work,
                     **values("audit_models", **{**FAST, "max_new_tokens": 9}))  # fmt: skip
    record = json.loads((work / "aqi-workdir.json").read_text())
    (work / "aqi-workdir.json").write_text(json.dumps({**record, "aqi_version": "0.0.1"}))
    with pytest.raises(ValueError, match=r"aqi_version: '0.0.1' there"):
        audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work, **fast())
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an aqi audit work folder"):
        audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=other, **fast())


def test_same_weights_warn_and_other_chat_templates_are_said(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(models["base"], tmp_path / "base-copy")
    with pytest.warns(UserWarning, match="have the same weights"):
        run = audit_models(copy, models["base"], prompts=prompt_file, workdir=tmp_path / "a",
                           **fast())  # fmt: skip
    assert any("same weights" in n for n in run.report.notes)

    from transformers import AutoTokenizer

    other = shutil.copytree(models["ft1"], tmp_path / "ft1-template")
    tok = AutoTokenizer.from_pretrained(other)
    tok.chat_template = tok.chat_template.replace("helpful", "careful")
    assert tok.chat_template != AutoTokenizer.from_pretrained(models["ft1"]).chat_template
    tok.save_pretrained(other)
    run = audit_models(other, models["base"], prompts=prompt_file, workdir=tmp_path / "b", **fast())
    assert any("different chat templates" in n for n in run.report.notes)
    assert "different chat templates" in run.html.read_text()


def test_prompt_set_names_go_through_the_registry(
    models: dict, tmp_path: Path, capsys: Any
) -> None:
    (tmp_path / "sets").mkdir()  # an empty local folder: the set is named, with how to fetch it
    rc = main(["audit", "--model", str(models["ft1"]), "--baseline-model", str(models["base"]),
               "--prompts", "harmbench", "--prompts-dir", str(tmp_path / "sets"),
               "--workdir", str(tmp_path / "w"), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("aqi audit: error:") and "harmbench" in err.lower()


def test_model_spec_checks_its_options_and_names_a_gguf_by_its_file() -> None:
    with pytest.raises(ValueError, match=r"'dtipe' is not an argument of aqi\.load_model"):
        ModelSpec("./x", {"dtipe": "float16"})
    assert ModelSpec("demo").name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert ModelSpec("demo").key() == ModelSpec("demo").key()
    assert ModelSpec("demo").key() != ModelSpec("demo", {"dtype": "bfloat16"}).key()


def test_the_demo_model_is_named_by_its_gguf_file(smollm2: Any) -> None:
    model, _ = smollm2
    assert display_name(model.config._name_or_path) == "SmolLM2-135M-Instruct.Q4_1.gguf"


def test_the_pytest_gate_runs_the_same_audit(
    models: dict, prompt_file: Path, tmp_path: Path
) -> None:
    from aqi.checks import AuditThresholds
    from aqi.pytest_plugin import AQIGate, GateFailure

    run = audit_models(models["ft2"], models["base"], prompts=prompt_file, workdir=tmp_path,
                       **fast())  # fmt: skip
    gate = AQIGate(AuditThresholds(), n_boot=200, n_perm=50, workdir=tmp_path)
    kw = {"prompts": prompt_file, "running": aqi.Running(max_new_tokens=8, progress=False)}
    for strict in (False, True):
        if gate_failed(run.verdict, strict=strict):
            with pytest.raises(GateFailure, match="audit verdict"):
                gate.audit_models(models["ft2"], models["base"], strict=strict, **kw)
        else:
            again = gate.audit_models(models["ft2"], models["base"], strict=strict, **kw)
            assert again.report.verdict == run.verdict and len(again.reused) == 4


def test_one_progress_display_for_the_whole_run(
    models: dict, prompt_file: Path, tmp_path: Path, capsys: Any
) -> None:
    """Every phase on the run's one bar (step, phase, role, model); generation and capture
    draw no bars of their own inside it; a resumed phase says reused; the bar is gone at
    the end."""
    kw = {**FAST, "progress": True}
    audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=tmp_path,
                 **values("audit_models", **kw))  # fmt: skip
    first = capsys.readouterr().err.replace("\r", "\n")
    for k, phase, role in ((1, "generate", "audited"), (2, "capture", "audited"),
                           (3, "generate", "baseline"), (4, "capture", "baseline"),
                           (5, "judge", "audited"), (8, "report", "audited")):  # fmt: skip
        assert f"aqi audit [{k}/8] {phase} {role} (" in first, first[-2000:]
    assert "16/16" in first  # the rows of a generation or capture, counted on it
    assert "generate:" not in first and "aqi capture:" not in first  # no inner bars
    audit_models(models["ft2"], models["base"], prompts=prompt_file, workdir=tmp_path,
                 **values("audit_models", **kw))  # fmt: skip
    second = capsys.readouterr().err.replace("\r", "\n")
    assert "generate baseline (base) reused" in second
    assert "capture baseline (base) reused" in second
    assert "generate audited (ft2) reused" not in second


# -- issue 31: reuse is verified; the CLI and Python find each other's work ------------------

def test_loading_options_are_normalised_so_cli_and_python_share_work() -> None:
    # before: {"dtype": "auto"} from the CLI and {} from Python were two models to the workdir
    assert ModelSpec("./x", {"dtype": "auto", "device": None}).key() == ModelSpec("./x").key()
    assert ModelSpec("./x", {"dtype": "bf16"}).options == {"dtype": "bfloat16"}
    bf16 = ModelSpec("./x", {"dtype": "bf16"})
    assert bf16.key() == ModelSpec("./x", {"dtype": "bfloat16"}).key()
    assert ModelSpec("./x", {"dtype": "float16"}).key() != ModelSpec("./x").key()


def test_a_reused_artefact_edited_by_hand_is_refused_or_rebuilt(
    models: dict, prompt_file: Path, tmp_path: Path, capsys: Any
) -> None:
    import h5py

    work = tmp_path / "w"
    argv = ["audit", "--model", str(models["ft1"]), "--baseline-model", str(models["base"]),
            "--prompts", str(prompt_file), "--workdir", str(work), *CLI_FAST]  # fmt: skip
    assert main([*argv, "--json"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    # the work of the command line is found from Python (options normalised)
    again = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work, **fast())
    assert {s for (ph, _), s in _status(again).items() if ph in ("generate", "capture")} == {
        "reused"
    }
    # before: "[PASS] validity — not computed" (a check of the setting has no interval)
    (validity,) = [ln for ln in again.summary().splitlines() if "] validity" in ln]
    assert validity.startswith("  [PASS] validity") and "not computed" not in validity
    # before: a response edited by hand was reused without a word (refusal_change moved)
    ft = next(d for d in (work / "models").iterdir() if d.name.startswith("ft1-"))
    rs = ft / "responses.jsonl"
    original = rs.read_text()
    lines = original.splitlines()
    rec = json.loads(lines[1])
    lines[1] = json.dumps({**rec, "response": "I'm sorry, I can't help with that."})
    rs.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{str(rs)!r} changed since aqi made it")):
        audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work, **fast())
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(rs) in err[0] and "aqi audit --rebuild" in err[0]
    # --rebuild makes it again (greedy: the original texts; the file's header has a new
    # time, so the store, recorded as captured from the old file, is captured again)
    assert main([*argv, "--rebuild", "--json"]) in (0, 1)
    rebuilt = json.loads(capsys.readouterr().out)

    def texts(text: str) -> list[Any]:
        return [json.loads(line).get("response") for line in text.splitlines()[1:]]

    assert texts(rs.read_text()) == texts(original)
    assert rebuilt["checks"] == doc["checks"]
    # a store changed after it was recorded is refused the same way
    with h5py.File(ft / "store.h5", "a") as f:
        floats: list[str] = []
        f.visititems(lambda k, v: floats.append(k) if isinstance(v, h5py.Dataset)
                     and v.dtype.kind == "f" and v.ndim == 2 else None)  # fmt: skip
        f[floats[0]][0] = f[floats[0]][0] + 1.0
    with pytest.raises(ValueError, match=re.escape("store.h5' changed since aqi made it")):
        audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work, **fast())
    run = audit_models(models["ft1"], models["base"], prompts=prompt_file, workdir=work,
                       **fast(rebuild=True))  # fmt: skip
    st = _status(run)
    assert st[("capture", "audited")] == "ran" and st[("capture", "baseline")] == "reused"
    assert json.loads(run.json.read_text())["checks"] == doc["checks"]


def _stable(doc: dict) -> dict:
    """A report document without its creation time (what differs between two runs)."""
    return {k: v for k, v in doc.items() if k != "created"}


def _audit_argv(models: dict, prompt_file: Path, work: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "aqi", "--quiet", "audit", "--model", str(models["ft1"]),
            "--baseline-model", str(models["base"]), "--prompts", str(prompt_file),
            "--workdir", str(work), "--json", *CLI_FAST]  # fmt: skip


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


@pytest.fixture(scope="module")
def uninterrupted(models: dict, prompt_file: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[int, dict]:  # fmt: skip
    """``aqi audit --json`` run once without interruption: its exit code and document."""
    import subprocess

    work = tmp_path_factory.mktemp("uninterrupted") / "w"
    ref = subprocess.run(_audit_argv(models, prompt_file, work), capture_output=True, text=True,
                         env=_env(), timeout=600)  # fmt: skip
    assert ref.returncode in (0, 1), ref.stderr[-2000:]
    return ref.returncode, _stable(json.loads(ref.stdout.replace(str(work), "WORK")))


@pytest.mark.parametrize("point", ["generating", "capturing", "baseline"])
def test_kill_9_at_a_point_of_the_audit_then_rerun_gives_the_same_report(
    point: str, models: dict, prompt_file: Path, tmp_path: Path, uninterrupted: tuple[int, dict]
) -> None:
    """issue 31: kill -9 mid-run (no handler runs), re-run, the same report as one run's."""
    import signal
    import subprocess
    import time

    work = tmp_path / "w"
    argv, env = _audit_argv(models, prompt_file, work), _env()

    def reached() -> bool:
        ft = list((work / "models").glob("ft1-*")) if (work / "models").is_dir() else []
        if not ft:
            return False
        rs, partial = ft[0] / "responses.jsonl", ft[0] / "store.h5.partial"
        if point == "generating":
            return rs.is_file() and len(rs.read_bytes().splitlines()) >= 3
        if point == "capturing":
            return partial.is_dir()
        return any((work / "models").glob("base-*/responses.jsonl"))

    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    t0 = time.monotonic()
    while p.poll() is None and not reached() and time.monotonic() - t0 < 300:
        time.sleep(0.01)
    if p.poll() is not None:
        pytest.fail(f"the audit ended before the point {point!r} was seen")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == uninterrupted[0], again.stderr[-2000:]
    # the same document but for its creation time and the work folder's name in paths
    assert _stable(json.loads(again.stdout.replace(str(work), "WORK"))) == uninterrupted[1]
