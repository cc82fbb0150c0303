"""Every numeric flag of every command: exit 0 with a result, or exit 2 with one line.

The cases are read off the argument parser itself (aqi._cli_parser), so a numeric
flag added later is covered without editing this file: for each (command, flag,
value) with value 0, 1, negative, huge, non-numeric, nan or inf, ``aqi`` must exit 0
with a result on stdout, or exit 2 with one line on stderr — never a traceback,
never exit 1 from an error (issue 19, item 6). ``gate`` may exit 1 when its verdict
is ``fail`` — a result, shown as such in its JSON.

Store-based commands run on tiny stores; the model commands (``capture``,
``generate``, ``audit``, ``track``) get a model path that does not exist, so a value the
parser accepts reaches the loader and ends there in one line (no model is loaded or downloaded).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
import pytest

import aqi
from aqi._cli_parser import build_parser
from aqi.cli import main

VALUES = ["0", "1", "-1", "1000000000000", "abc", "nan", "inf"]

#: The arguments each command runs with (the flag under test is appended: the last wins).
BASE = {
    "capture": ["--model", "{tmp}/no-such-model", "--out", "{tmp}/o.h5"],
    "generate": ["--model", "{tmp}/no-such-model", "--out", "{tmp}/o.jsonl"],
    "score": ["{base}", "--n-boot", "50", "--n-perm", "20"],
    "compare": ["{base}", "{erased}", "--n-boot", "50"],
    "gate": ["{erased}", "--baseline", "{base}", "--reward", "{ref}", "--n-boot", "50",
             "--n-perm", "20", "--reward-n-boot", "50"],
    "report": ["{erased}", "--baseline", "{base}", "--reward", "{ref}", "--out", "{tmp}/r.html",
               "--n-boot", "50", "--n-perm", "20", "--reward-n-boot", "50"],
    "probe ood": ["{base}", "{shift}", "--n-boot", "50"],
    "probe reward": ["{ref}", "--n-boot", "50"],
    "audit": ["--model", "{tmp}/no-such-model", "--baseline-model", "{tmp}/no-such-base",
              "--workdir", "{tmp}/w"],
    "track": ["{tmp}/no-such-checkpoint", "--baseline-model", "{tmp}/no-such-base",
              "--out-dir", "{tmp}/t"],
    "label": ["--responses", "{ra}", "--baseline-responses", "{rb}", "--judge", "rules",
              "--sheet", "{tmp}/sheet.html"],
}  # fmt: skip


def _is_numeric(action: argparse.Action) -> bool:
    """Whether an option takes a number: its type turns one of a few numbers into int/float."""
    if not action.option_strings or action.type is None or action.nargs == 0:
        return False
    for probe in ("1", "0.5", "0", "100"):
        try:
            out = action.type(probe)
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
        if isinstance(out, (int, float)) and not isinstance(out, bool):
            return True
    return action.type in (int, float)


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, Any]:
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix}{name} ")
                out.update(nested or {f"{prefix}{name}": sub})
    return out


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for command, sub in _commands(build_parser()).items():
        for action in sub._actions:
            if _is_numeric(action):
                flag = max(action.option_strings, key=len)
                cases += [(command, flag, v) for v in VALUES]
    return cases


CASES = _cases()


def test_every_command_with_a_numeric_flag_is_covered() -> None:
    """A command gaining its first numeric flag must get a BASE entry (or this fails)."""
    commands = {c for c, _, _ in CASES}
    assert commands <= set(BASE), f"add a BASE entry for {sorted(commands - set(BASE))}"
    flags = {f for _, f, _ in CASES}
    assert {"--n-boot", "--n-perm", "--seed", "--reward-n-boot", "--false-alarm-rate",
            "--batch-size", "--temperature", "--nproc"} <= flags  # fmt: skip


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("numeric-flags")
    rng = np.random.default_rng(0)
    n = 60
    y = np.repeat(["safe", "unsafe"], n // 2)
    arrays = {f"L{i}": rng.normal(size=(n, 4)) + i * (y == "unsafe")[:, None] for i in range(2)}
    erased = {k: np.where((y == "unsafe")[:, None], rng.normal(size=(n, 4)), v)
              for k, v in arrays.items()}  # fmt: skip
    shift = {k: v + 3 for k, v in arrays.items()}
    out = {"tmp": str(tmp)}
    for name, arr in (("base", arrays), ("erased", erased), ("shift", shift)):
        out[name] = str(tmp / f"{name}.h5")
        aqi.store_from_arrays(out[name], arr, labels=y).close()
    scores = rng.normal(size=(80, 2)) + np.array([1.0, 0.0])
    (tmp / "ref.csv").write_text("chosen,rejected\n" + "".join(f"{c},{r}\n" for c, r in scores))
    out["ref"] = str(tmp / "ref.csv")
    from aqi.behaviour import Response, Responses

    for name, text in (("ra", "Sure, here it is."), ("rb", "I can't help with that.")):
        rs = [Response(f"{lab}{i}", 0, text, lab, prompt_text=f"request {i}")
              for lab in ("safe", "unsafe") for i in range(6)]  # fmt: skip
        Responses(records=tuple(rs)).to_jsonl(tmp / f"{name}.jsonl")
        out[name] = str(tmp / f"{name}.jsonl")
    return out


@pytest.mark.parametrize(("command", "flag", "value"), CASES)
def test_numeric_flag_exits_0_with_a_result_or_2_with_one_line(
    command: str, flag: str, value: str, paths: dict[str, str],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the model commands never reach the network
    argv = [*command.split(), *(a.format(**paths) for a in BASE[command]), f"{flag}={value}",
            "--quiet", "--json"]  # fmt: skip
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    gate_failed = command == "gate" and code == 1 and json.loads(out)["verdict"] == "fail"
    assert code in (0, 2) or gate_failed, f"exit {code}: {err[-500:]}"
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"aqi {command.split()[0]}"), err
        assert "error" in lines[0]
        assert out == ""
    else:
        doc = json.loads(out)  # a result: the command's JSON document
        assert doc
