"""Generation keeps capture's promises: overwrite guard, lock, kill -9, torn lines, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import aqi
from aqi.activations import StoreLockedError
from aqi.behaviour import (
    GenerationInterrupted,
    generate_responses,
    is_responses_file,
    load_responses,
)
from aqi.cli import main
from tests.conftest import build_tiny

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).parent / "scripts" / "generate_child.py"
SHORT = aqi.Decoding(max_new_tokens=4)
GEN = {"decoding": SHORT, "writing": aqi.Writing(progress=False)}


def writing(**kw) -> aqi.Writing:
    """A quiet test run's writing."""
    return aqi.Writing(progress=False, **kw)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()[1:]]


@pytest.fixture
def few(prompts):
    return prompts[:6]


@pytest.fixture(scope="module")
def model_dir(tiny_factory, tmp_path_factory):
    model, tok = tiny_factory("llama")
    d = tmp_path_factory.mktemp("tiny-llama-gen")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


# -- the overwrite guard ------------------------------------------------------------------
def _victim(kind: str, tmp_path: Path, few) -> Path:
    if kind == "prompt file":
        p = tmp_path / "p.jsonl"
        few.to_jsonl(p)
    elif kind == "other jsonl":
        p = tmp_path / "notes.jsonl"
        p.write_text('{"note": "mine"}\n{"note": "keep"}\n', encoding="utf-8")
    elif kind == "activation store":
        p = tmp_path / "acts.h5"
        aqi.store_from_arrays(p, {"L": np.zeros((2, 3))}, labels=["safe", "unsafe"]).close()
    else:  # a prompt file without a trailing newline: its last line looks torn
        p = tmp_path / "p.jsonl"
        p.write_text('{"id": "a", "text": "Hi", "label": "safe"}', encoding="utf-8")
    return p


@pytest.mark.parametrize("overwrite", [True, False])
@pytest.mark.parametrize(
    "kind", ["prompt file", "other jsonl", "activation store", "no final newline"]
)
def test_only_an_aqi_responses_file_is_replaced(tiny_factory, few, tmp_path, kind, overwrite):
    model, tok = tiny_factory("llama")
    victim = _victim(kind, tmp_path, few)
    before = victim.read_bytes()
    assert not is_responses_file(victim)
    with pytest.raises(ValueError, match=r"(refusing to write|is the input file)"):
        generate_responses(model, tok, few, victim, decoding=SHORT,
                           writing=writing(overwrite=overwrite))
    assert victim.read_bytes() == before  # untouched, not even a torn line cut
    assert not victim.with_name(victim.name + ".lock").exists()


def test_prompt_file_as_out_is_refused_as_an_input(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    p = tmp_path / "p.jsonl"
    few.to_jsonl(p)
    with pytest.raises(ValueError, match=r"output '.*p.jsonl' is the input file"):
        generate_responses(model, tok, p, p, decoding=SHORT, writing=writing(overwrite=True))


@pytest.mark.parametrize("kind", ["prompt file", "other jsonl", "activation store"])
def test_cli_generate_overwrite_refuses_what_is_not_ours(model_dir, few, tmp_path, capsys, kind):
    victim = _victim(kind, tmp_path, few)
    prompts = tmp_path / "in.jsonl"
    few.to_jsonl(prompts)
    before = victim.read_bytes()
    src = victim if kind == "prompt file" else prompts  # the prompt file of this very call
    rc = main(["generate", "--model", str(model_dir), "--prompts", str(src), "--out",
               str(victim), "--overwrite", "--max-new-tokens", "2", "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert str(victim.name) in err
    assert ("is the input file" if kind == "prompt file" else "not an aqi responses file") in err
    assert victim.read_bytes() == before


def test_overwrite_replaces_an_aqi_responses_file(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    generate_responses(model, tok, few[:2], out, **GEN)
    assert is_responses_file(out)
    rs = generate_responses(model, tok, few, out, decoding=SHORT, writing=writing(overwrite=True))
    assert len(load_responses(out)) == len(rs) == 6


# -- one writer at a time -------------------------------------------------------------------
def test_second_writer_is_refused_naming_the_lock(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    lock = tmp_path / "r.jsonl.lock"
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live process on this host owns the lock
        lock.write_text(json.dumps({"pid": first.pid, "host": os.uname().nodename}))
        with pytest.raises(StoreLockedError, match=rf"another writer holds '{lock}' "
                                                   rf"\(pid {first.pid}"):  # fmt: skip
            generate_responses(model, tok, few, out, **GEN)
        assert not out.exists() and lock.exists()  # nothing written, the owner's lock kept
    finally:
        first.kill()
        first.wait()
    with pytest.warns(UserWarning, match=rf"stale lock .*pid {first.pid}"):
        rs = generate_responses(model, tok, few, out, **GEN)  # the dead owner's lock
    assert len(load_responses(out)) == len(rs) and not lock.exists()


def test_duplicated_records_are_refused_not_reported_complete(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    generate_responses(model, tok, few, out, **GEN)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines + lines[1:]), encoding="utf-8")  # what two writers left
    with pytest.raises(ValueError, match=r"two records for prompt .*overwrite"):
        generate_responses(model, tok, few, out, **GEN)
    with pytest.raises(ValueError, match=r"r.jsonl: duplicate response .*overwrite"):
        load_responses(out)


# -- kill -9, a torn line, resume in a fresh process ------------------------------------------
def test_kill9_mid_run_then_resume_equals_uninterrupted(decoder_tokenizer_dir, tmp_path, capsys):
    from transformers import AutoTokenizer

    out = tmp_path / "r.jsonl"
    lock = tmp_path / "r.jsonl.lock"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(decoder_tokenizer_dir), str(out), "0.25"],
        env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and child.poll() is None:
        if out.exists() and len(out.read_bytes().splitlines()) >= 1 + 12:  # 3 batches of 4
            break
        time.sleep(0.02)
    assert child.poll() is None, child.stderr.read().decode()[-2000:]

    # A second writer while the first is alive: one line naming the lock, exit 2.
    prompts = tmp_path / "p.jsonl"
    aqi.bundled_prompts()[:40].to_jsonl(prompts)
    tok = AutoTokenizer.from_pretrained(decoder_tokenizer_dir)
    model = build_tiny("llama", len(tok))
    with pytest.raises(StoreLockedError, match=rf"another writer holds '{lock}' "
                                               rf"\(pid {child.pid}"):  # fmt: skip
        generate_responses(model, tok, aqi.bundled_prompts()[:40], out, decoding=SHORT,
                           writing=writing(batch_size=4))

    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert lock.exists()  # left by the dead writer
    written = _records(out)
    assert 12 <= len(written) < 40  # it died part-way
    with out.open("a", encoding="utf-8") as f:  # and mid-write: half a record
        f.write(json.dumps(written[0])[:25])

    done = subprocess.run([sys.executable, str(CHILD), str(decoder_tokenizer_dir), str(out)],
                          env=_env(), cwd=ROOT, capture_output=True, timeout=300)  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == 0, err[-3000:]
    assert "stale lock" in err and "incomplete last line" in err
    clean = generate_responses(model, tok, aqi.bundled_prompts()[:40], decoding=SHORT,
                               writing=writing(batch_size=4))
    resumed = load_responses(out)  # loads: no duplicate, no torn line
    assert len(resumed) == 40 == len({r.key for r in resumed})
    assert resumed.by_key() == clean.by_key()
    kept = [(r["prompt_id"], r["response"]) for r in _records(out)[: len(written)]]
    assert kept == [(w["prompt_id"], w["response"]) for w in written]  # kept, not redone
    assert not lock.exists()


# -- Ctrl-C ----------------------------------------------------------------------------------
def _stop_after(model, n_batches: int):
    """Ctrl-C at the prefill (the first forward) of batch ``n_batches + 1``."""
    calls = {"n": 0}

    def stop(_module, args):
        calls["n"] += args[0].shape[1] > 1
        if calls["n"] > n_batches:
            raise KeyboardInterrupt

    return model.get_input_embeddings().register_forward_pre_hook(stop)


def test_ctrl_c_counts_the_responses_written(tiny_factory, few, tmp_path):
    model, tok = tiny_factory("llama")
    out = tmp_path / "r.jsonl"
    handle = _stop_after(model, 2)  # two batches of 2, then Ctrl-C
    try:
        with pytest.raises(GenerationInterrupted, match="interrupted after 4 of 6 responses") as e:
            generate_responses(model, tok, few, out, decoding=SHORT, writing=writing(batch_size=2))
    finally:
        handle.remove()
    assert (e.value.rows_done, e.value.rows_total) == (4, 6)
    assert len(_records(out)) == 4 and not (tmp_path / "r.jsonl.lock").exists()
    rs = generate_responses(model, tok, few, out, decoding=SHORT, writing=writing(batch_size=2))
    assert len(rs) == 6


def test_cli_ctrl_c_says_how_far_it_got(tiny_factory, few, tmp_path, capsys, monkeypatch):
    import aqi.cli

    model, tok = tiny_factory("llama")
    monkeypatch.setattr(aqi.cli, "_load_model", lambda args: (model, tok))  # Ctrl-C inside
    few.to_jsonl(tmp_path / "p.jsonl")
    handle = _stop_after(model, 2)
    try:
        rc = main(["generate", "--model", "tiny", "--prompts", str(tmp_path / "p.jsonl"),
                   "--out", str(tmp_path / "r.jsonl"), "--max-new-tokens", "2",
                   "--batch-size", "2", "--quiet"])  # fmt: skip
    finally:
        handle.remove()
    err = capsys.readouterr().err
    assert rc == 130
    assert err.strip() == ("aqi generate: interrupted after 4 of 6 responses; run the same "
                           "command again to resume"), err
