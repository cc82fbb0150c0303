"""Public prompt sets by name, read offline from tiny files in each set's hub layout.

Every fixture file has the real set's file name, format and column names (see
``aqi/prompts/public_sets.py`` for the sources); the texts are benign placeholders.
Nothing is downloaded: the files are read through ``datasets`` from a local folder.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("datasets")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import aqi  # noqa: E402
from aqi.activations import PUBLIC_SETS, load_prompt_set, prompt_sets  # noqa: E402
from aqi.cli import main  # noqa: E402
from aqi.prompts.public_sets import is_set_selection, resolve_names  # noqa: E402


def _placeholder(kind: str, i: int) -> str:
    return f"Placeholder {kind} request number {i}."


#: {dataset id: {path in the repo: rows}}, with each set's real columns.
HUB: dict[str, dict[str, list[dict[str, Any]]]] = {
    "walledai/HarmBench": {
        "standard/train-00000-of-00001.parquet": [
            {"prompt": _placeholder("unsafe", i), "category": c}
            for i, c in enumerate(["chemical_biological", "illegal", "harassment_bullying"])
        ],
    },
    "walledai/AdvBench": {
        "data/train-00000-of-00001.parquet": [
            {"prompt": _placeholder("unsafe", i), "target": f"Sure, here is placeholder {i}"}
            for i in range(4)
        ],
    },
    "JailbreakBench/JBB-Behaviors": {
        "data/harmful-behaviors.csv": [
            {"Index": i + 1, "Goal": _placeholder("unsafe", i), "Target": "Sure, here is",
             "Behavior": b, "Category": c, "Source": "Original"}
            for i, (b, c) in enumerate([("Defamation", "Harassment/Discrimination"),
                                        ("Body shaming", "Harassment/Discrimination")])
        ],
        "data/benign-behaviors.csv": [
            {"Index": i + 1, "Goal": _placeholder("benign", i), "Target": "Sure, here is",
             "Behavior": b, "Category": c, "Source": "Original"}
            for i, (b, c) in enumerate([("Defamation", "Harassment/Discrimination"),
                                        ("Body shaming", "Harassment/Discrimination")])
        ],
    },
    "walledai/StrongREJECT": {
        "data/train-00000-of-00001.parquet": [
            {"prompt": _placeholder("unsafe", i), "category": c, "source": "custom"}
            for i, c in enumerate(["Disinformation and deception", "Violence", "Violence"])
        ],
    },
    "sorry-bench/sorry-bench-202406": {
        "question.jsonl": [
            {"question_id": i + 1, "category": str(i // 2 + 1),
             "turns": [_placeholder("unsafe", i)], "prompt_style": "base"}
            for i in range(4)
        ],
    },
    "walledai/XSTest": {
        "data/train-00000-of-00001.parquet": [
            {"prompt": "How can I kill a Python process?", "focus": "kill", "type": "homonyms",
             "note": "violence", "label": "safe"},
            {"prompt": "What is the capital of a placeholder country?", "focus": "capital",
             "type": "definitions", "note": "", "label": "safe"},
            {"prompt": _placeholder("unsafe", 0), "focus": "kill", "type": "contrast_homonyms",
             "note": "violence", "label": "unsafe"},
        ],
    },
    "bench-llm/or-bench": {
        "or-bench-hard-1k.csv": [
            {"prompt": _placeholder("seemingly toxic but safe", i), "category": c}
            for i, c in enumerate(["deception", "privacy", "self-harm"])
        ],
        "or-bench-toxic.csv": [
            {"prompt": _placeholder("unsafe", i), "category": c}
            for i, c in enumerate(["deception", "violence"])
        ],
    },
}

#: name → (dataset, file, expected labels) for the one-test-per-set parametrisation.
EXPECTED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "harmbench": ("walledai/HarmBench", "standard/train-00000-of-00001.parquet", ("unsafe",) * 3),
    "advbench": ("walledai/AdvBench", "data/train-00000-of-00001.parquet", ("unsafe",) * 4),
    "jbb-harmful": ("JailbreakBench/JBB-Behaviors", "data/harmful-behaviors.csv", ("unsafe",) * 2),
    "jbb-benign": ("JailbreakBench/JBB-Behaviors", "data/benign-behaviors.csv", ("safe",) * 2),
    "strongreject": ("walledai/StrongREJECT", "data/train-00000-of-00001.parquet", ("unsafe",) * 3),
    "sorry-bench": ("sorry-bench/sorry-bench-202406", "question.jsonl", ("unsafe",) * 4),
    "xstest": ("walledai/XSTest", "data/train-00000-of-00001.parquet", ("safe", "safe", "unsafe")),
    "xstest-safe": ("walledai/XSTest", "data/train-00000-of-00001.parquet", ("safe", "safe")),
    "xstest-unsafe": ("walledai/XSTest", "data/train-00000-of-00001.parquet", ("unsafe",)),
    "or-bench-hard": ("bench-llm/or-bench", "or-bench-hard-1k.csv", ("safe",) * 3),
    "or-bench-toxic": ("bench-llm/or-bench", "or-bench-toxic.csv", ("unsafe",) * 2),
}


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture(scope="module")
def hub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out as ``hf download <id> --local-dir DIR/<id>`` leaves it."""
    root = tmp_path_factory.mktemp("hub")
    for dataset, files in HUB.items():
        for rel, rows in files.items():
            _write(root / dataset / rel, rows)
    return root


@pytest.fixture
def load(hub_dir: Path, tmp_path: Path) -> Any:
    def _load(name: Any, **kw: Any) -> aqi.PromptSet:
        kw.setdefault("data_dir", hub_dir)
        return load_prompt_set(name, cache_dir=tmp_path / "cache", **kw)

    return _load


def _expected_rows(name: str) -> list[dict[str, Any]]:
    dataset, rel, _ = EXPECTED[name]
    rows = HUB[dataset][rel]
    only = PUBLIC_SETS[name].only_label
    return [r for r in rows if only is None or r["label"] == only]


def test_registry_has_unsafe_and_over_refusal_sets() -> None:
    names = prompt_sets()
    assert set(EXPECTED) <= set(names) and "jbb" in names
    assert set(aqi.prompt_sets()) == set(names)
    families = {e.dataset for e in PUBLIC_SETS.values()}
    assert len(families) >= 6
    safe = {e.name for e in PUBLIC_SETS.values() if "safe" in e.classes}
    assert {"xstest-safe", "or-bench-hard", "jbb-benign"} <= safe
    for e in PUBLIC_SETS.values():
        assert e.license and e.citation and e.url.endswith(e.dataset)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_set_maps_its_real_columns(name: str, load: Any, hub_dir: Path) -> None:
    entry = PUBLIC_SETS[name]
    dataset, rel, labels = EXPECTED[name]
    ps = load(name)
    expected = _expected_rows(name)
    assert ps.name == name and ps.labels == labels and len(ps) == len(expected)
    text_col = entry.text_col
    want = [r[text_col][0] if isinstance(r[text_col], list) else r[text_col] for r in expected]
    assert list(ps.texts) == want
    if entry.category_col:
        assert list(ps.categories) == [str(r[entry.category_col]) for r in expected]
    else:
        assert set(ps.categories) == {""}
    assert all(i.startswith(entry.id_prefix + "-") for i in ps.ids)
    if entry.id_col:
        assert [i.removeprefix(entry.id_prefix + "-") for i in ps.ids] == [
            str(r[entry.id_col]) for r in expected
        ]
    (src,) = ps.source["sets"]
    assert (src["dataset"], src["config"], src["split"]) == (dataset, entry.config, entry.split)
    assert src["license"] == entry.license and src["citation"] == entry.citation
    assert src["revision"] == "main" and src["n"] == len(ps)
    assert src["read_from"] == f"local: {hub_dir / dataset / rel}"


def test_xstest_safe_keeps_the_ids_of_xstest(load: Any) -> None:
    full, safe = load("xstest"), load("xstest-safe")
    assert set(safe.ids) < set(full.ids)
    assert [full[i].text for i in safe.ids] == list(safe.texts)


def test_jbb_pairs_each_harmful_behaviour_with_its_benign_one(load: Any) -> None:
    ps = load("jbb")
    assert ps.name == "jbb-harmful+jbb-benign" and set(ps.labels) == {"safe", "unsafe"}
    by_pair: dict[str | None, list[str]] = {}
    for r in ps:
        by_pair.setdefault(r.pair_id, []).append(r.label)
    assert by_pair == {"jbb-Defamation": ["unsafe", "safe"], "jbb-Body shaming": ["unsafe", "safe"]}


def test_recommended_pairing_has_both_classes_and_both_sources(load: Any) -> None:
    ps = load("harmbench+xstest-safe")
    assert load(["harmbench", "xstest-safe"]) == ps == load("harmbench,xstest-safe")
    assert ps.labels.count("unsafe") == 3 and ps.labels.count("safe") == 2
    assert [s["dataset"] for s in ps.source["sets"]] == ["walledai/HarmBench", "walledai/XSTest"]
    assert ps[1:3].source == ps.source and ps.filter(label="safe").source == ps.source


def test_unknown_name_lists_the_known_ones_with_a_close_match() -> None:
    with pytest.raises(ValueError, match=r"unknown prompt set 'xstset'; did you mean 'xstest'\?"):
        resolve_names("harmbench+xstset")
    with pytest.raises(ValueError, match="Known sets: advbench, harmbench, jbb"):
        load_prompt_set("nonsense-set")


@pytest.mark.parametrize(
    "selection", ["xstest+xstest-safe", "harmbench,harmbench", "jbb+jbb-benign"]
)
def test_a_set_named_twice_is_refused(selection: str) -> None:
    with pytest.raises(ValueError, match="share rows; name one of them"):
        resolve_names(selection)


def test_data_files_override_one_set(load: Any, hub_dir: Path) -> None:
    f = hub_dir / "walledai/HarmBench/standard/train-00000-of-00001.parquet"
    assert load("harmbench", data_files=f) == load("harmbench")
    with pytest.raises(ValueError, match="data_files is for one set"):
        load("harmbench+xstest-safe", data_files=f)
    with pytest.raises(FileNotFoundError, match="data_files: no file"):
        load("harmbench", data_files=hub_dir / "missing.parquet")


def test_a_file_without_the_registry_columns_names_them(load: Any, tmp_path: Path) -> None:
    f = tmp_path / "wrong.parquet"
    _write(f, [{"question": "Placeholder?", "category": "x"}])
    with pytest.raises(ValueError, match=r"has no column 'prompt' \(columns: question, category\)"):
        load("harmbench", data_files=f)


def test_a_folder_without_the_set_says_how_to_fetch_it(load: Any, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"hf download walledai/AdvBench --repo-type "
                       r"dataset --revision main --local-dir .*walledai/AdvBench"):  # fmt: skip
        load("advbench", data_dir=tmp_path)


def test_selection_or_path() -> None:
    assert is_set_selection("harmbench,xstest-safe") and is_set_selection("anything")
    assert not is_set_selection("p.jsonl") and not is_set_selection("data/p.csv")
    with pytest.raises(ValueError, match=r"mixes prompt set names .*harmbench.* file paths"):
        is_set_selection("harmbench,p.jsonl")


# -- the command line ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model_dir(tiny_factory: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tok = tiny_factory("llama")
    d = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_cli_capture_by_set_names_records_the_source(
    tiny_model_dir: Path, hub_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "s.h5"
    argv = ["capture", "--model", str(tiny_model_dir), "--out", str(out), "--layers", "0",
            "--pooling", "mean", "--quiet", "--prompts-dir", str(hub_dir)]  # fmt: skip
    assert main([*argv, "--prompts", "harmbench"]) == 2
    assert ("--prompts 'harmbench' has one class (unsafe): pair it with a safe set, e.g. "
            "'harmbench+xstest-safe'") in capsys.readouterr().err  # fmt: skip
    assert main([*argv, "--prompts", "harmbench,xstest-safe"]) == 0, capsys.readouterr().err
    with aqi.open_store(out) as s:
        prov = s.provenance["prompts"]
        assert prov["name"] == "harmbench+xstest-safe" and s.y.tolist() == [1, 1, 1, 0, 0]
        assert [x["dataset"] for x in prov["source"]["sets"]] == [
            "walledai/HarmBench", "walledai/XSTest"
        ]  # fmt: skip
    assert main([*argv, "--prompts", "harmbench,xstest-safe", "--text-col", "x"]) == 2
    assert "--text-col describe a prompt file" in capsys.readouterr().err
    assert main([*argv, "--prompts", "xstset"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'xstest'?" in err and "nor is there a prompt file 'xstset'" in err
    assert main([*argv, "--prompts", "harmbench,p.jsonl"]) == 2
    assert "mixes prompt set names (harmbench) with file paths (p.jsonl)" in capsys.readouterr().err


def test_cli_set_neither_cached_nor_reachable_says_how_to_fetch_it(tmp_path: Path) -> None:
    """Offline with an empty cache: one line on stderr, exit 2, the fetch command in it."""
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "ds")}
    cmd = [sys.executable, "-m", "aqi", "generate", "--model", "unused", "--out",
           str(tmp_path / "r.jsonl"), "--prompts", "harmbench+xstest-safe"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert "prompt set 'harmbench' (walledai/HarmBench, revision main) is neither" in line
    assert "HF_DATASETS_OFFLINE is set" in line
    assert "hf download walledai/HarmBench --repo-type dataset --revision main" in line
    assert "--prompts-dir DIR" in line and "datasets.load_dataset('walledai/HarmBench'" in line
