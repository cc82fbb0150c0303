"""Red-team cases of the command line (issue 19, items 4 and 5).

Every flag either acts or is refused with one line naming it (exit 2); user errors are
one line naming the flag and the file (and line), never a traceback; messages name CLI
flags, not Python arguments. Each case failed before its fix (see docs/errors.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import aqi
from aqi.cli import main

from .conftest import write_jsonl

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dir(tiny_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tok = tiny_factory("llama")
    d = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def files(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Prompt files, a store and two responses files of the tiny model (other prompts)."""
    d = tmp_path_factory.mktemp("files")
    rows = [{"id": f"p{i}", "text": f"How do I do thing {i}?",
             "label": "unsafe" if i % 2 else "safe"} for i in range(4)]  # fmt: skip
    out = {"prompts": write_jsonl(d / "p.jsonl", rows),
           "other": write_jsonl(d / "q.jsonl", [{**r, "id": "q" + r["id"]} for r in rows])}
    for name, prompts in (("responses", out["prompts"]), ("other_responses", out["other"])):
        out[name] = d / f"{name}.jsonl"
        assert main(["--quiet", "generate", "--model", str(tiny_dir), "--prompts",
                     str(prompts), "--out", str(out[name]), "--max-new-tokens", "2"]) == 0
    rng = np.random.default_rng(0)
    y = np.repeat(["safe", "unsafe"], 10)
    out["store"] = d / "s.h5"
    aqi.store_from_arrays(out["store"], {"L0": rng.normal(size=(20, 4))}, labels=y).close()
    out["test"] = d / "t.h5"
    aqi.store_from_arrays(out["test"], {"L0": rng.normal(size=(20, 4)) + 5}, labels=y).close()
    return out


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``aqi argv``: it must exit 2 with exactly one line on stderr; return that line."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# -- item 4: every flag either acts or is refused --------------------------------------------

@pytest.mark.parametrize("flag", [["--device", "cuda"], ["--dtype", "banana"], ["--load-in-4bit"],
                                  ["--gguf-file", "x.gguf"], ["--revision", "main"]])
def test_loading_flags_on_the_demo_model_are_refused(flag, files, tmp_path, capsys):
    line = one_line_error(capsys, ["--quiet", "generate", "--model", "demo", "--prompts",
                                   str(files["prompts"]), "--max-new-tokens", "1", "--out",
                                   str(tmp_path / "r.jsonl"), *flag])
    assert f"{flag[0]} does not apply to --model demo" in line
    assert not (tmp_path / "r.jsonl").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--revision", "main"], "--revision main names a branch, tag or commit of a hub id"),
        (["--temperature", "0.3"], "--temperature 0.3 has no effect on greedy decoding; add "
                                   "--sample"),
        (["--n", "2"], "--n 2 samples per prompt needs --sample"),
        (["--sample", "--temperature", "0"], "--temperature 0.0; expected a number > 0"),
        (["--batch-size", "0"], "--batch-size: expected a whole number >= 1, got '0'"),
    ],
)
def test_generate_flags_that_cannot_act_name_the_flag(extra, expected, tiny_dir, files, tmp_path,
                                                      capsys):
    argv = ["--quiet", "generate", "--model", str(tiny_dir), "--prompts", str(files["prompts"]),
            "--out", str(tmp_path / "r.jsonl"), "--max-new-tokens", "2", *extra]
    if extra[0] == "--batch-size":  # argparse's own usage error: the flag, then the usage lines
        assert main(argv) == 2
        assert expected in capsys.readouterr().err
        return
    line = one_line_error(capsys, argv)
    assert expected in line and "=" not in line.split(": error: ")[1].split(";")[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--responses", "{responses}", "--span", "user"],
         "--responses appends each response after the user's turn, but --span instruction "
         "reads only"),
        (["--include-response", "--span", "user"], "--include-response appends"),
        (["--responses", "{responses}"],  # the default spans read only what comes before it
         "but --span instruction,post_instruction reads only tokens before it"),
        (["--drop-empty"], "--drop-empty leaves out empty responses of --responses, which was"),
    ],
)
def test_capture_flags_that_cannot_act_are_refused(extra, expected, tiny_dir, files, tmp_path,
                                                   capsys):
    extra = [e.format(**files) for e in extra]
    line = one_line_error(capsys, ["--quiet", "capture", "--model", str(tiny_dir), "--prompts",
                                   str(files["prompts"]), "--out", str(tmp_path / "s.h5"), *extra])
    assert expected in line
    assert not (tmp_path / "s.h5").exists()


def _scores(path: Path, scale: float) -> Path:
    m = np.random.default_rng(0).normal(1, 2, 200) * scale
    path.write_text("chosen,rejected\n" + "".join(f"{c:.4f},0\n" for c in m))
    return path


def test_probe_reward_calibrator_is_shown_or_refused(tmp_path, capsys):
    ref, shifted = _scores(tmp_path / "ref.csv", 1.0), _scores(tmp_path / "fr.csv", 0.3)
    line = one_line_error(capsys, ["probe", "reward", str(ref), "--calibrator", "platt"])
    assert "--calibrator platt is fitted on half the reference pairs" in line
    for cal, shown in (("platt", "PlattScaling"), ("temperature", "TemperatureScaling")):
        assert main(["probe", "reward", str(ref), str(shifted), "--calibrator", cal,
                     "--n-boot", "40"]) == 0
        out = capsys.readouterr().out
        assert f"calibrator: {shown}" in out
        held = [ln for ln in out.splitlines() if ln.startswith("in-distribution (held out)")]
        assert len(held) == 1 and "fr (calibrated)" in out
    assert main(["probe", "reward", str(ref), str(shifted), "--calibrator", "none",
                 "--n-boot", "40"]) == 0
    out = capsys.readouterr().out
    assert "calibrator: none" in out and "(calibrated)" not in out


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[tool.aqi]\nmax_ece = 0.1\naqi_floor = -1\n", "t.toml:3: [tool.aqi] threshold aqi_floor "
                                                         "must be in [0, 100], got -1"),
        ("[tool.aqi]\nmin_relative_drop = 1.0\n", "t.toml:2: [tool.aqi] threshold "
                                                  "min_relative_drop must be in [0, 1)"),
        ("[tool.aqi]\nalpha = 0\n", "threshold alpha must be in (0, 1), got 0"),
        ("[tool.aqi]\nalpha = 1.5\n", "threshold alpha must be in (0, 1), got 1.5"),
        ("[tool.aqi]\nmax_ece = 1.0\n", "threshold max_ece must be in [0, 1)"),
        ("[tool.aqi]\naqi_flor = 3\n", "t.toml:2: [tool.aqi] unknown threshold(s) ['aqi_flor']"),
        ("[project]\nname = 'x'\n\n[aqi]\naqi_floor = 3\n", "t.toml:4: [aqi] is not read; the "
                                                           "thresholds go in [tool.aqi]"),
        ("[tools.aqi]\naqi_floor = 3\n", "t.toml:1: [tools.aqi] is not read"),
        ("[project]\nname = 'x'\n", "t.toml: no [tool.aqi] table, so it sets no threshold"),
    ],
)
def test_tool_aqi_that_would_be_ignored_or_never_fail_is_refused(toml, expected, files, tmp_path,
                                                                 capsys):
    cfg = tmp_path / "t.toml"
    cfg.write_text(toml)
    line = one_line_error(capsys, ["gate", str(files["store"]), "--config", str(cfg),
                                   "--n-boot", "40", "--n-perm", "20"])
    assert line.startswith(f"aqi gate: error: --config {cfg}")
    assert expected in line


def test_pytest_plugin_reads_the_same_rules(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.AQI]\naqi_floor = 3\n")
    with pytest.raises(ValueError, match=r"pyproject.toml:1: \[tool.AQI\] is not read"):
        aqi.checks.load_thresholds(tmp_path)
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
        aqi.AuditThresholds(alpha=1.0)


# -- item 5: one error shape ----------------------------------------------------------------

def _no_package(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


@pytest.mark.parametrize(
    ("extra", "package", "expected"),
    [
        (["--load-in-4bit"], "bitsandbytes", "8-bit/4-bit loading needs bitsandbytes"),
        (["--attn-implementation", "flash_attention_2"], "flash_attn",
         "--attn-implementation flash_attention_2 needs the 'flash_attn' package"),
    ],
)
def test_missing_optional_packages_are_one_line(extra, package, expected, tiny_dir, files,
                                                tmp_path, capsys):
    if not _no_package(package):
        pytest.skip(f"{package} is installed here")
    line = one_line_error(capsys, ["--quiet", "generate", "--model", str(tiny_dir), "--prompts",
                                   str(files["prompts"]), "--out", str(tmp_path / "r.jsonl"),
                                   *extra])
    assert expected in line


def test_responses_record_with_null_response_names_file_and_line(tiny_dir, files, tmp_path,
                                                                 capsys):
    lines = files["responses"].read_text().splitlines()
    rec = json.loads(lines[2])
    rec["response"] = None
    bad = tmp_path / "r.jsonl"
    bad.write_text("\n".join([*lines[:2], json.dumps(rec), *lines[3:]]) + "\n")
    line = one_line_error(capsys, ["--quiet", "capture", "--model", str(tiny_dir), "--prompts",
                                   str(files["prompts"]), "--responses", str(bad), "--span",
                                   "response", "--out", str(tmp_path / "s.h5")])
    assert f"{bad}:3: response=None; expected a string" in line


def test_empty_responses_hint_names_the_cli_flag(tiny_dir, files, tmp_path, capsys):
    lines = files["responses"].read_text().splitlines()
    rec = json.loads(lines[1])
    rec["response"] = ""
    r = tmp_path / "r.jsonl"
    r.write_text("\n".join([lines[0], json.dumps(rec), *lines[2:]]) + "\n")
    argv = ["--quiet", "capture", "--model", str(tiny_dir), "--prompts", str(files["prompts"]),
            "--responses", str(r), "--span", "response", "--out", str(tmp_path / "s.h5")]
    line = one_line_error(capsys, argv)
    assert "pass --drop-empty to leave them out" in line and "on_empty" not in line
    with pytest.raises(ValueError, match="pass on_empty='drop' to leave them out"):  # Python
        aqi.behaviour.with_responses(aqi.load_prompts(files["prompts"]), aqi.load_responses(r))


def test_truncated_real_gguf_is_one_line(tmp_path, capsys, monkeypatch):
    from aqi.demo import SMOLLM2_GGUF, SMOLLM2_PACKAGE, package_dir

    monkeypatch.setenv("AQI_CACHE_DIR", str(tmp_path / "cache"))
    src = package_dir(SMOLLM2_PACKAGE) / SMOLLM2_GGUF
    with src.open("rb") as f:
        (tmp_path / "cut.gguf").write_bytes(f.read(src.stat().st_size // 3))  # mid-tensors
    line = one_line_error(capsys, ["--quiet", "generate", "--model", str(tmp_path),
                                   "--gguf-file", "cut.gguf", "--out", str(tmp_path / "r.jsonl")])
    assert f"GGUF file '{tmp_path / 'cut.gguf'}' is truncated or damaged" in line
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_store_read_is_not_named_as_a_write(tmp_path, capsys):
    notes = tmp_path / "notes.h5"
    notes.write_text("my notes")
    line = one_line_error(capsys, ["info", str(notes)])
    assert "is not an HDF5 file" in line and "refusing" not in line
    assert "choose another path" not in line


def test_store_without_provenance_names_the_file(files, tmp_path, capsys):
    s = tmp_path / "s.h5"
    s.write_bytes(files["store"].read_bytes())
    with h5py.File(s, "a") as f:
        del f.attrs["provenance"]
    line = one_line_error(capsys, ["info", str(s)])
    assert f"'{s}' has no readable 'provenance' attribute" in line
    assert "can't locate attribute" not in line


@pytest.mark.parametrize("flag", ["--out", "--json-out"])
def test_report_out_that_is_a_folder_is_refused_before_the_audit(flag, files, tmp_path, capsys):
    folder = tmp_path / "reports"
    folder.mkdir()
    argv = ["--quiet", "report", str(files["store"]), flag, str(folder), "--n-boot", "40",
            "--n-perm", "20"]
    if flag == "--json-out":
        argv += ["--out", str(tmp_path / "r.html")]
    line = one_line_error(capsys, argv)
    assert f"{flag} '{folder}' is a folder" in line
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".*tmp-*"))
    assert not (tmp_path / "r.html").exists()  # nothing ran


def test_refusal_pairing_names_the_flags(files, capsys):
    line = one_line_error(capsys, ["--quiet", "gate", str(files["store"]), "--responses",
                                   str(files["responses"]), "--baseline-responses",
                                   str(files["other_responses"]), "--n-boot", "40", "--n-perm",
                                   "20"])
    # The evidence check (issue 19, item 3) meets the mismatch first: each responses file
    # must answer the store's prompts; the line names both files.
    assert "answer other prompts than audited store" in line
    assert str(files["responses"]) in line and str(files["store"]) in line


def test_probe_ood_warns_on_too_few_reference_rows(files, capsys):
    assert main(["probe", "ood", str(files["store"]), str(files["test"]), "--n-boot", "40"]) == 0
    captured = capsys.readouterr()
    assert "aqi probe ood: warning: insufficient data" in captured.err
    assert "need ≥ 80" in captured.err


def _aqi(*argv: str, env_extra: dict[str, str] | None = None,
         **kw: Any) -> subprocess.CompletedProcess[str]:  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "aqi", *argv], text=True, capture_output=True,
                          env=env, timeout=120, **kw)


def test_broken_pipe_ends_quietly(files):
    """``aqi info s.h5 | head -0``: the reader is gone before the first write."""
    r, w = os.pipe()
    os.close(r)
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        p = subprocess.run([sys.executable, "-m", "aqi", "info", str(files["store"]), "--json"],
                           stdout=w, stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(w)
    assert p.stderr == "" and p.returncode == 141


# -- --nproc: one line from the launcher, one summary ----------------------------------------

def test_nproc_over_more_ranks_than_prompts_is_refused_before_launch(tiny_dir, tmp_path, capsys):
    # --nproc is at most the CPU cores (2 here and in CI): one prompt for two ranks.
    p = write_jsonl(tmp_path / "p.jsonl", [{"id": "a", "text": "Hi", "label": "safe"}])
    out = tmp_path / "s.h5"
    line = one_line_error(capsys, ["--quiet", "capture", "--model", str(tiny_dir), "--prompts",
                                   str(p), "--out", str(out), "--nproc", "2"])
    assert "--nproc 2 is more than the 1 prompt to capture; use --nproc 1 or fewer" in line
    assert list(tmp_path.iterdir()) == [p]  # no shard, no lock, no store


def test_nproc_rank_failure_is_one_line_from_the_launcher(tiny_dir, files, tmp_path):
    # An architecture transformers does not know: only loading finds it, in each rank
    # (a missing folder is refused at the door, before the launch: test_model_arguments_…).
    bad = shutil.copytree(tiny_dir, tmp_path / "bad-model")
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "model_type": "no-such-arch"}))
    p = _aqi("--quiet", "capture", "--model", str(bad), "--prompts",
             str(files["prompts"]), "--out", str(tmp_path / "s.h5"), "--nproc", "2")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr[-3000:]
    assert lines[0].startswith("aqi capture: error: ") and "no shards written" in lines[0]
    assert "Traceback" not in p.stderr and "[rank" not in p.stderr


def _children(pid: int) -> list[int]:
    out = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to see the launch")
# The delays: while torchrun is still starting (before it can pass a signal on — the case
# that was lost under load before the launcher handled the signal itself), and while the
# ranks capture.
@pytest.mark.parametrize("delay", [0.0, 1.5])
def test_nproc_ctrl_c_is_one_line_and_130(tiny_dir, tmp_path, delay):
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Enough work that the capture is still running when Ctrl-C arrives, however fast the
    # machine (the bundled 294 prompts can finish within the second this test waits).
    prompts = write_jsonl(tmp_path / "p.jsonl", [
        {"id": f"p{i}", "text": "tell me about the weather " * 20,
         "label": ("safe", "unsafe")[i % 2]} for i in range(4000)])  # fmt: skip
    p = subprocess.Popen([sys.executable, "-m", "aqi", "--quiet", "capture", "--model",
                          str(tiny_dir), "--prompts", str(prompts), "--out",
                          str(tmp_path / "s.h5"), "--nproc", "2", "--layers", "0",
                          "--pooling", "mean"], env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while not _children(p.pid) and time.monotonic() - t0 < 60:  # torchrun has started
        time.sleep(0.1)
    torchrun = _children(p.pid)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert not any(Path(f"/proc/{c}").exists() for c in torchrun), "torchrun outlived aqi"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert p.returncode == 130 and len(lines) == 1, err[-3000:]
    assert lines[0].startswith("aqi capture: interrupted (") and "Traceback" not in err
    assert lines[0].endswith("run the same command again to resume")


# -- issue 31: every file aqi writes is guarded; refusals come before the work ---------------
# Each class is parametrized over the commands that have it, so that a class once fixed
# stays fixed in every command.

def _tiny_checkpoint(tiny_dir: Path, tmp_path: Path, name: str = "checkpoint-5") -> Path:
    return shutil.copytree(tiny_dir, tmp_path / name)


def _argv(command: str, tiny_dir: Path, files: dict[str, Path], out: Path | str,
          tmp_path: Path) -> list[str]:  # fmt: skip
    """``aqi COMMAND`` writing ``out``, on the tiny model and the 4-prompt file."""
    model = ["--model", str(tiny_dir), "--prompts", str(files["prompts"])]
    if command == "audit":
        base = tmp_path / "base"
        if not base.exists():
            _tiny_checkpoint(tiny_dir, tmp_path, "base")
        return ["--quiet", "audit", *model, "--baseline-model", str(base), "--workdir",
                str(tmp_path / "work"), "--out", str(out), "--max-new-tokens", "2"]
    return {
        "capture": ["--quiet", "capture", *model, "--out", str(out)],
        "generate": ["--quiet", "generate", *model, "--out", str(out), "--max-new-tokens", "2"],
        "report": ["--quiet", "report", str(files["store"]), "--out", str(out),
                   "--n-boot", "0", "--n-perm", "0"],
    }[command]  # fmt: skip


def quick_refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """:func:`one_line_error`, and within 2 s (no model was loaded), without ``[Errno``."""
    import time

    t0 = time.perf_counter()
    line = one_line_error(capsys, argv)
    assert time.perf_counter() - t0 < 2.0, f"refused only after {time.perf_counter() - t0:.1f} s"
    assert "[Errno" not in line
    return line


@pytest.mark.parametrize("command", ["report", "audit", "generate", "capture"])
def test_an_output_that_is_an_input_is_refused(command, tiny_dir, files, tmp_path, capsys):
    # before: `aqi report s.h5 --out s.h5` turned the store into an HTML page, exit 0;
    # `aqi audit --prompts p.jsonl --out p.jsonl` replaced the prompts by the report
    victim = tmp_path / ("s.h5" if command == "report" else "p.jsonl")
    shutil.copy(files["store"] if command == "report" else files["prompts"], victim)
    before = victim.read_bytes()
    argv = _argv(command, tiny_dir, files, victim, tmp_path)
    if command == "report":
        argv[2] = str(victim)
    else:
        argv[argv.index("--prompts") + 1] = str(victim)
    line = quick_refusal(capsys, argv)
    assert f"--out {str(victim)!r} is the input file" in line
    assert victim.read_bytes() == before


@pytest.mark.parametrize("command", ["report", "audit", "generate", "capture"])
@pytest.mark.parametrize("target", ["/dev/full", "/dev/null", "/proc/version", "folder"])
def test_an_output_that_is_not_a_regular_file_is_refused(command, target, tiny_dir, files,
                                                         tmp_path, capsys):  # fmt: skip
    # before: run as root, `--out /dev/full` replaced the device node with a regular file
    if target == "folder":
        target = str(tmp_path / "reports")
        Path(target).mkdir()
    kind = os.stat(target).st_mode
    line = quick_refusal(capsys, _argv(command, tiny_dir, files, target, tmp_path))
    assert f"--out {target!r}" in line
    assert "is under /" in line or "is a folder" in line
    assert os.stat(target).st_mode == kind  # the device is still a device
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("command", ["report", "audit"])
def test_an_existing_file_aqi_did_not_write_needs_overwrite(command, tiny_dir, files, tmp_path,
                                                            capsys):  # fmt: skip
    # before: `--out notes.html` (and for the audit the `.json` beside it) overwritten, exit 0
    out = tmp_path / "notes.html"
    mine = tmp_path / ("notes.json" if command == "audit" else "other.json")
    if command == "audit":
        out = tmp_path / "r.html"
        mine = tmp_path / "r.json"  # the audit writes its JSON beside the HTML
    else:
        out.write_text("<p>my notes</p>")
        mine = out
    mine.write_text('{"mine": true}')
    line = quick_refusal(capsys, _argv(command, tiny_dir, files, out, tmp_path))
    assert f"refusing to overwrite --out {str(mine)!r}: aqi did not write it" in line
    assert "--overwrite" in line and mine.read_text() == '{"mine": true}'
    if command == "report":  # with --overwrite it is replaced; the report is then aqi's own
        argv = _argv(command, tiny_dir, files, out, tmp_path)
        assert main([*argv, "--overwrite"]) == 0
        assert aqi._outputs.written_by_aqi(out)
        assert main(argv) == 0  # aqi's own report is replaced without --overwrite
        assert not list(tmp_path.glob("*.tmp-*"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
@pytest.mark.parametrize("command", ["report", "audit", "generate", "capture"])
def test_an_output_folder_that_cannot_be_written_is_refused(command, tiny_dir, files, tmp_path,
                                                            capsys):  # fmt: skip
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        line = quick_refusal(capsys, _argv(command, tiny_dir, files, ro / "x.out", tmp_path))
    finally:
        ro.chmod(0o700)
    assert "cannot be written" in line


@pytest.mark.parametrize("command", ["report", "audit", "generate", "capture"])
def test_an_output_under_a_file_is_refused_in_our_words(command, tiny_dir, files, tmp_path,
                                                        capsys):  # fmt: skip
    # before: `[Errno 20] Not a directory` / `[Errno 17] File exists`, one of them after the run
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    line = quick_refusal(capsys, _argv(command, tiny_dir, files, blocker / "sub" / "r.out",
                                       tmp_path))  # fmt: skip
    assert f"{str(blocker)!r} is a file, not a folder" in line


def test_the_audit_workdir_that_is_a_file_is_refused_in_our_words(tiny_dir, files, tmp_path,
                                                                   capsys):  # fmt: skip
    work = tmp_path / "work"
    work.write_text("x")
    argv = _argv("audit", tiny_dir, files, tmp_path / "r.html", tmp_path)
    line = quick_refusal(capsys, argv)
    assert f"workdir {str(work)!r} is a file" in line


def test_write_atomic_leaves_the_old_file_whole_when_writing_fails(tmp_path):
    from aqi._outputs import write_atomic

    old = write_atomic(tmp_path / "r.html", "<p>old</p>")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(old, "<p>new \ud800</p>")  # a lone surrogate fails half-way, in encoding
    assert old.read_text() == "<p>old</p>" and list(tmp_path.iterdir()) == [old]


@pytest.mark.parametrize("command", ["capture", "audit"])
def test_an_unknown_pooling_is_refused_before_the_model_loads(command, tiny_dir, files, tmp_path,
                                                              capsys):  # fmt: skip
    # before: `--pooling banana` refused after 19 s (the model loaded, the responses generated)
    argv = [*_argv(command, tiny_dir, files, tmp_path / "x.out", tmp_path), "--pooling", "banana"]
    line = quick_refusal(capsys, argv)
    assert "--pooling banana; expected one or more of 'mean', 'last', 'first', 'max'" in line


@pytest.mark.parametrize("command", ["capture", "generate", "audit"])
def test_an_empty_prompts_argument_is_refused(command, tiny_dir, files, tmp_path, capsys):
    # before: `--prompts ""` silently audited the bundled prompt set
    argv = _argv(command, tiny_dir, files, tmp_path / "x.out", tmp_path)
    argv[argv.index("--prompts") + 1] = ""
    line = quick_refusal(capsys, argv)
    assert "--prompts '' is empty; give a prompt file or prompt set names" in line


def _broken(tiny_dir: Path, tmp_path: Path, how: str) -> Path:
    d = shutil.copytree(tiny_dir, tmp_path / f"broken-{how}")
    if how == "model_type":
        cfg = json.loads((d / "config.json").read_text())
        del cfg["model_type"]
        (d / "config.json").write_text(json.dumps(cfg))
    elif how == "tokenizer":
        (d / "tokenizer.json").unlink()
    elif how == "truncated":
        w = d / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif how == "file":
        return Path(shutil.copy(tiny_dir / "config.json", tmp_path / "config.json"))
    elif how == "missing":
        return tmp_path / "no-such-model"
    return d


@pytest.mark.parametrize("command", ["capture", "generate", "audit-model", "audit-baseline"])
@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("model_type", "config.json' has no 'model_type' key"),
        ("tokenizer", "has no tokenizer files"),
        ("truncated", "model.safetensors' is damaged: it is truncated"),
        ("file", "is a file, not a model folder"),
        ("missing", "is not a local folder (no such path)"),
    ],
)
def test_a_model_argument_that_cannot_load_is_refused_in_our_words(command, how, expected,
                                                                   tiny_dir, files, tmp_path,
                                                                   capsys):  # fmt: skip
    # before: "Should have a `model_type` key", "install sentencepiece or tiktoken", a
    # 44-line traceback for a cut safetensors file; a bad baseline after 74 s of work
    bad = _broken(tiny_dir, tmp_path, how)
    argv = _argv(command.split("-")[0], tiny_dir, files, tmp_path / "x.out", tmp_path)
    flag = "--baseline-model" if command == "audit-baseline" else "--model"
    argv[argv.index(flag) + 1] = str(bad)
    line = quick_refusal(capsys, argv)
    assert expected in line and flag in line
    assert not (tmp_path / "work").exists()


def test_track_pairs_below_four_is_refused_before_a_model_loads(tiny_dir, tmp_path, capsys):
    # before: `aqi track … --pairs 3` refused after 28 s (the baseline loaded and measured)
    ckpt = _tiny_checkpoint(tiny_dir, tmp_path)
    line = quick_refusal(capsys, ["--quiet", "track", str(ckpt), "--baseline-model",
                                  str(tiny_dir), "--pairs", "3", "--out-dir",
                                  str(tmp_path / "t")])  # fmt: skip
    assert "--pairs 3; expected an int >= 4" in line
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("command", ["capture", "generate", "audit"])
def test_a_60000_character_prompt_is_refused_in_seconds(command, tiny_dir, files, tmp_path,
                                                        capsys):  # fmt: skip
    # before: `aqi generate` / `aqi capture --span all` killed at 300 s with nothing written
    import time

    rows = [json.loads(line) for line in files["prompts"].read_text().splitlines()]
    rows[1]["text"] = ("please tell me about the weather today and " * 1400)[:60000]
    long = write_jsonl(tmp_path / "long.jsonl", rows)
    argv = _argv(command, tiny_dir, files, tmp_path / "x.out", tmp_path)
    argv[argv.index("--prompts") + 1] = str(long)
    if command == "capture":
        argv += ["--span", "all"]
    t0 = time.perf_counter()
    line = one_line_error(capsys, argv)
    assert time.perf_counter() - t0 < 30  # the tiny model loads; no forward pass runs
    assert "prompt 'p1' has " in line and "over the per-prompt limit --max-prompt-tokens 4096" \
        in line
    # with the limit lifted the same file runs: the tiny model's context truncates it
    if command == "capture":
        assert main([*argv, "--max-prompt-tokens", "0"]) == 0
        assert "1 prompt(s) longer than max_length=256 tokens were truncated" in \
            capsys.readouterr().err


def test_warnings_are_one_line_each_and_once(tiny_dir, files, tmp_path, capsys):
    # before: Python's two-line form with the source line; a stale-lock warning printed twice
    out = tmp_path / "r.jsonl"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    import socket

    (tmp_path / "r.jsonl.lock").write_text(json.dumps({"pid": int(dead),
                                                       "host": socket.gethostname()}))
    assert main(_argv("generate", tiny_dir, files, out, tmp_path)) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "stale lock" in ln]
    assert len(lines) == 1 and lines[0].startswith("aqi generate: warning: taking over"), err
    assert "warnings.warn" not in err and "UserWarning" not in err


def test_a_one_pair_reward_file_warns(tmp_path, capsys):
    # before: scored `0.000 [0.000, 0.000]` without a word
    ref = tmp_path / "one.csv"
    ref.write_text("chosen,rejected\n1.0,0.0\n")
    assert main(["probe", "reward", str(ref), "--n-boot", "40"]) == 0
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "warning" in ln]
    assert len(warned) == 1 and warned[0].startswith("aqi probe: warning: ")
    assert "1 pair" in warned[0] and "the interval has no width" in warned[0]


def test_a_baseline_hub_id_that_cannot_be_found_is_refused_before_any_work(tiny_dir, files,
                                                                           tmp_path):  # fmt: skip
    # before: the audited model's responses and store were made (74 s), then the baseline
    # failed to load
    work = tmp_path / "work"
    p = _aqi("--quiet", "audit", "--model", str(tiny_dir), "--baseline-model",
             "no-such-org/no-such-model", "--prompts", str(files["prompts"]), "--workdir",
             str(work), "--max-new-tokens", "2",
             env_extra={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr[-3000:]
    assert lines[0].startswith("aqi audit: error: baseline: model 'no-such-org/no-such-model'")
    assert "not in the local Hugging Face cache" in lines[0]
    assert not list(work.glob("models/*/responses.jsonl"))  # no work was done


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FileExistsError(17, "File exists", "/w/models"),
         "'/w/models': file exists; it is in the way: remove it or choose another path"),
        (FileNotFoundError(2, "No such file or directory", "/x/p.jsonl"),
         "'/x/p.jsonl': no such file or directory; check the path"),
        (OSError(28, "No space left on device", "/w/store.h5"),
         "'/w/store.h5': no space left on device; the disk is full"),
        (OSError(18, "Invalid cross-device link", "/a", None, "/b"),
         "'/a' → '/b': invalid cross-device link; check the path and its permissions"),
    ],
)
def test_os_errors_are_said_in_our_words(error, expected, capsys):
    # before: `aqi …: error: [Errno 17] File exists: '…'`
    import argparse

    from aqi.cli import _user_error

    assert _user_error(argparse.Namespace(debug=False, command="audit"), error) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"aqi audit: error: {expected}") and "[Errno" not in line


@pytest.mark.parametrize("case", ["pooling", "prompts", "baseline", "report-out", "device"])
def test_door_refusals_take_under_2_s_in_a_fresh_process(case, tiny_dir, files, tmp_path):
    # The in-process tests above have torch imported already; a user's `aqi …` has not:
    # the door imports no torch (importing it alone takes about 2 s on two cores).
    import time

    model = ["--model", str(tiny_dir), "--baseline-model", str(tmp_path / "base")]
    shutil.copytree(tiny_dir, tmp_path / "base")
    argv = {
        "pooling": ["audit", *model, "--pooling", "banana"],
        "prompts": ["audit", *model, "--prompts", ""],
        "baseline": ["audit", "--model", str(tiny_dir), "--baseline-model",
                     str(files["prompts"])],
        "report-out": ["report", str(files["store"]), "--out", str(files["store"])],
        "device": ["capture", "--model", str(tiny_dir), "--out", "/dev/full"],
    }[case]  # fmt: skip
    t0 = time.perf_counter()
    p = _aqi("--quiet", *argv, cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr[-2000:]
    assert elapsed < 2.0, f"{case}: refused after {elapsed:.1f} s: {p.stderr}"
