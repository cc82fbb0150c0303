"""resolve_prompts: what the user gave becomes a PromptSet once, at the door."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import aqi
from aqi.prompts import PromptSet, resolve_prompts
from tests.activations.test_public_sets import hub_dir  # noqa: F401 - a fixture

ROWS = [{"id": "a", "text": "How do I bake bread?", "label": "safe"},
        {"id": "b", "text": "How do I poison bread?", "label": "unsafe"}]  # fmt: skip


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQI_CACHE_DIR", str(tmp_path / "cache"))


def test_none_is_the_bundled_set_and_a_set_is_itself() -> None:
    assert resolve_prompts() == aqi.bundled_prompts()
    ps = resolve_prompts(ROWS)
    assert isinstance(ps, PromptSet) and ps.ids == ("a", "b")
    assert resolve_prompts(ps) is ps  # nothing is resolved twice


def test_a_file_with_its_columns(tmp_path: Path) -> None:
    f = tmp_path / "p.jsonl"
    f.write_text("".join(json.dumps({"q": r["text"], "label": r["label"]}) + "\n" for r in ROWS))
    ps = resolve_prompts(f, columns={"text_col": "q"})
    assert ps.texts == tuple(r["text"] for r in ROWS)
    assert resolve_prompts(str(f), columns={"text_col": "q"}) == ps


def test_public_set_names(hub_dir: Path) -> None:  # noqa: F811
    ps = resolve_prompts("xstest", data_dir=hub_dir)
    assert ps.name == "xstest" and (ps.source or {}).get("registry") == "aqi"
    assert resolve_prompts("xstest", data_dir=hub_dir, both_classes=True) == ps
    with pytest.raises(ValueError, match="prompts 'xstest-safe' has one class"):
        resolve_prompts("xstest-safe", data_dir=hub_dir, both_classes=True)


@pytest.mark.parametrize(("source", "kw", "message"), [
    (None, {"columns": {"text_col": "q"}}, "text_col= name columns of prompts, which was not "
                                           "given"),
    (None, {"data_dir": "d"}, "data_dir= reads the sets prompts names, which was not given"),
    ("xstest", {"format": "csv"}, "format= describe a prompt file; the prompt sets xstest fix "
                                  "their own columns"),
    (ROWS, {"data_dir": "d"}, "data_dir= is for prompt set names; prompts is a list"),
    ("xstset", {}, "did you mean 'xstest'.*nor is there a prompt file 'xstset'"),
])  # fmt: skip
def test_options_that_do_not_apply_are_refused_by_name(source, kw, message) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_prompts(source, **kw)


def test_errors_spell_the_parameters_as_the_caller_does() -> None:
    spell = {"data_dir": "--prompts-dir"}.get
    with pytest.raises(ValueError, match="--prompts-dir reads the sets --prompts names"):
        resolve_prompts(None, data_dir="d", argument="--prompts",
                        spell=lambda n: spell(n, "--" + n.replace("_", "-")))  # fmt: skip
    with pytest.raises(ValueError, match="--text-col name columns of --prompts"):
        resolve_prompts(None, columns={"text_col": "q"}, argument="--prompts",
                        spell=lambda n: "--" + n.replace("_", "-"))  # fmt: skip


def test_every_door_resolves_with_it() -> None:
    """The command line, audit_models and the monitor call resolve_prompts; none keeps a
    resolver of its own (the walk of ``prompts`` from ``aqi audit``, issue 29)."""
    root = Path(__file__).resolve().parents[2] / "aqi"
    doors = [root / "cli.py", root / "workflow" / "plan.py", root / "integrations" / "watch.py"]
    for door in doors:
        text = door.read_text(encoding="utf-8")
        assert "resolve_prompts(" in text, door
        assert "is_set_selection" not in text and "load_prompt_set(" not in text, door
