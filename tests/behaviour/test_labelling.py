"""The labelling loop: a blind stratified sample, the HTML sheet, the terminal, labels read back."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from aqi._errors import ArgumentError
from aqi._stats import DegenerateInputWarning
from aqi.behaviour import Response, Responses
from aqi.behaviour.labelling import (
    LABELLING_RULE,
    LABELS_SCHEMA,
    MODELS,
    Labels,
    LabelSample,
    audit_id,
    draw_label_sample,
    label_in_terminal,
    read_labels,
    write_label_sheet,
)

ROOT = Path(__file__).resolve().parents[2]
NASTY = "</div><script>alert(\"x\")</script> & <b>bold</b> 'quoted'"


def responses(refuse: int, n_unsafe: int = 30, n_safe: int = 10, tag: str = "") -> Responses:
    """A model's responses: it refuses the first ``refuse`` unsafe prompts."""
    rows = [
        Response(f"u{i:02d}", 0, ("I can't help with that." if i < refuse else "Sure: step 1")
                 + tag, "unsafe", "c", prompt_text=f"How do I do bad thing {i}?")
        for i in range(n_unsafe)
    ] + [
        Response(f"s{i:02d}", 0, f"Here is how to bake {i}." + tag, "safe", "c",
                 prompt_text=f"How do I bake {i}?")
        for i in range(n_safe)
    ]  # fmt: skip
    return Responses(records=tuple(rows))


@pytest.fixture
def pair() -> tuple[Responses, Responses]:
    base = responses(27)
    recs = list(responses(18).records)
    recs[0] = Response("u00", 0, NASTY, "unsafe", "c", prompt_text="</script><!-- p -->")
    return base, Responses(records=tuple(recs))


@pytest.fixture
def sample(pair: tuple[Responses, Responses]) -> LabelSample:
    return draw_label_sample(*pair, 12, judge="rules", judge_version="3", seed=1)


# --- the sample -------------------------------------------------------------------------------


def test_sample_is_stratified_in_proportion_and_holds_both_responses(sample: LabelSample) -> None:
    assert sample.strata == {"safe": (3, 10), "unsafe": (9, 30)}
    assert len(sample.items) == 24
    by_prompt = Counter(it.prompt_id for it in sample.items)
    assert set(by_prompt.values()) == {2}
    for pid in by_prompt:
        assert {it.model for it in sample.items if it.prompt_id == pid} == set(MODELS)
    labels = {it.prompt_id: it.prompt_label for it in sample.items}
    assert Counter(labels.values()) == {"unsafe": 9, "safe": 3}
    assert "12 prompts (safe 3 of 10, unsafe 9 of 30), 24 responses" in repr(sample)


def test_items_are_shuffled_and_ids_do_not_say_whose(sample: LabelSample) -> None:
    models = [it.model for it in sample.items]
    assert models != [*MODELS] * 12 and models != sorted(models)
    assert all(re.fullmatch(r"i[0-9a-f]{12}", it.item_id) for it in sample.items)
    assert len({it.item_id for it in sample.items}) == 24


def test_sample_is_reproducible_and_ids_are_stable_across_draws(
    pair: tuple[Responses, Responses], sample: LabelSample
) -> None:
    again = draw_label_sample(*pair, 12, judge="rules", judge_version="3", seed=1)
    assert again == sample
    other = draw_label_sample(*pair, 12, judge="rules", judge_version="3", seed=2)
    assert other.items != sample.items
    key = {(it.model, it.prompt_id): it.item_id for it in sample.items}
    for it in other.items:  # the same response has the same id in every draw
        assert key.get((it.model, it.prompt_id), it.item_id) == it.item_id


def test_prompts_are_drawn_uniformly_within_a_stratum(pair: tuple[Responses, Responses]) -> None:
    counts: Counter[str] = Counter()
    for seed in range(300):
        s = draw_label_sample(*pair, 8, judge="j", judge_version="1", seed=seed)
        counts.update(it.prompt_id for it in s.items if it.model == "baseline")
    unsafe = [counts[f"u{i:02d}"] for i in range(30)]  # 6 of 30 per draw: 60 expected each
    safe = [counts[f"s{i:02d}"] for i in range(10)]  # 2 of 10 per draw: 60 expected each
    assert sum(unsafe) == 1800 and sum(safe) == 600
    assert min(unsafe + safe) >= 35 and max(unsafe + safe) <= 85  # binomial sd 6.9


def test_small_strata_get_two_prompts_when_the_budget_allows() -> None:
    base = responses(27, n_unsafe=48, n_safe=2)
    s = draw_label_sample(base, responses(10, n_unsafe=48, n_safe=2), 10, judge="j",
                          judge_version="1")  # fmt: skip
    assert s.strata == {"safe": (2, 2), "unsafe": (8, 48)}


def test_audit_id_follows_the_texts_and_the_roles(pair: tuple[Responses, Responses]) -> None:
    base, tuned = pair
    assert audit_id(base, tuned) == audit_id(Responses(records=base.records[::-1]), tuned)
    assert audit_id(base, tuned) != audit_id(tuned, base)
    changed = Responses(records=(Response("u00", 0, "No!", "unsafe"), *tuned.records[1:]))
    assert audit_id(base, tuned) != audit_id(base, changed)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_prompts": 0}, ArgumentError, "n_prompts=0; expected a whole number >= 1"),
        ({"n_prompts": True}, ArgumentError, "n_prompts=True"),
        ({"n_prompts": 41}, ArgumentError, "n_prompts=41 but the responses answer 40 prompts"),
        ({"sample": 1}, ArgumentError, "answer 0 prompts (sample 1)"),
        ({"judge_version": 3}, ArgumentError, "judge_version=3; expected a string"),
    ],
)
def test_bad_draws_are_refused(
    pair: tuple[Responses, Responses], kwargs: dict, error: type, message: str
) -> None:
    args = {"n_prompts": 5, "judge": "rules", "judge_version": "3", **kwargs}
    with pytest.raises(error, match=re.escape(message)):
        draw_label_sample(*pair, **args)


def test_responses_to_other_prompts_are_refused(pair: tuple[Responses, Responses]) -> None:
    base, tuned = pair
    with pytest.raises(ArgumentError, match=r"must answer the same prompts \(sample 0\); 1 differ"):
        draw_label_sample(base, Responses(records=tuned.records[1:]), 5, judge="j",
                          judge_version="1")  # fmt: skip
    relabelled = Responses(records=(Response("u00", 0, "x", "safe"), *tuned.records[1:]))
    with pytest.raises(ArgumentError, match="prompt 'u00' is 'unsafe' in baseline and 'safe'"):
        draw_label_sample(base, relabelled, 5, judge="j", judge_version="1")
    with pytest.raises(TypeError, match=r"audited must be aqi\.behaviour\.Responses"):
        draw_label_sample(base, "tuned.jsonl", 5, judge="j", judge_version="1")  # type: ignore[arg-type]


# --- the HTML sheet ---------------------------------------------------------------------------


class SheetParser(HTMLParser):
    """Items (id, prompt, response), script elements and external references of a sheet."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.items: list[dict[str, str]] = []
        self.scripts: list[dict[str, str | None]] = []
        self.script_text: list[str] = []
        self.radios: list[tuple[str, str]] = []
        self.external: list[str] = []
        self._field: str | None = None
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key):
                self.external.append(str(a[key]))
        if tag == "script":
            self.scripts.append(a)
            self._in_script = True
            self.script_text.append("")
        if tag == "section":
            self.items.append({"id": str(a["data-item"]), "prompt": "", "response": ""})
        if tag == "div" and a.get("class") in ("text prompt", "text response"):
            self._field = str(a["class"]).split()[1]
        if tag == "input" and a.get("type") == "radio":
            self.radios.append((str(a["name"]), str(a["value"])))

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._field = None
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text[-1] += data
        elif self._field:
            self.items[-1][self._field] += data


def test_sheet_shows_every_item_escaped_and_blind(
    pair: tuple[Responses, Responses], tmp_path: Path
) -> None:
    sample = draw_label_sample(*pair, 40, judge="rules", judge_version="3")  # every prompt
    path = write_label_sheet(sample, tmp_path / "sheet.html")
    text = path.read_text(encoding="utf-8")
    parser = SheetParser()
    parser.feed(text)
    want = [{"id": it.item_id, "prompt": it.prompt, "response": it.response} for it in sample.items]
    assert parser.items == want  # in the shuffled order, texts exactly as written
    assert sum(it["response"] == NASTY for it in parser.items) == 1
    assert len(parser.scripts) == 2  # the metadata and the code: no response became a script
    assert parser.scripts[0] == {"type": "application/json", "id": "aqi-meta"}
    meta = json.loads(parser.script_text[0])
    assert meta["audit_id"] == sample.audit_id and meta["n_items"] == 80
    assert meta["header"] == sample.header()
    assert sorted(parser.radios) == sorted(
        (it.item_id, v) for it in sample.items for v in ("refusal", "compliance")
    )
    assert parser.external == []  # self-contained: nothing to fetch
    assert "baseline" not in text and "audited" not in text and "prompt_label" not in text
    assert "explicitly deflects" in text and "Labelling rule (version 1)" in text
    assert "Blob" in text and "download" in text


def test_sheet_script_is_valid_javascript(sample: LabelSample, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the sheet's script is not syntax-checked")
    parser = SheetParser()
    parser.feed(write_label_sheet(sample, tmp_path / "s.html").read_text(encoding="utf-8"))
    script = tmp_path / "sheet.js"
    script.write_text(parser.script_text[1])
    done = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# A stand-in for the browser: just the DOM calls the sheet's script makes.
FAKE_BROWSER = """
const meta = process.argv[2];
const choices = JSON.parse(process.argv[3]), ids = JSON.parse(process.argv[4]);
const el = id => ({id, textContent: id === "aqi-meta" ? meta : "", on: {},
                   addEventListener(t, f) { this.on[t] = f; }});
const elements = {"aqi-meta": el("aqi-meta"), progress: el("progress"),
                  download: el("download"), resume: el("resume")};
const radios = ids.flatMap(name => ["refusal", "compliance"].map(value => ({name, value})));
let onChange = null, blob = null, saved = null, store = {};
global.document = {
  getElementById: id => elements[id],
  querySelectorAll: sel => sel.startsWith("input") ? radios
    : ids.map(item => ({dataset: {item}, classList: {toggle() {}}})),
  addEventListener: (t, f) => { onChange = f; },
  createElement: () => ({click() { saved = this; }, remove() {}}),
  body: {appendChild() {}},
};
global.localStorage = {getItem: k => store[k] || null, setItem: (k, v) => { store[k] = v; }};
global.Blob = class { constructor(parts) { this.text = parts.join(""); } };
global.URL = {createObjectURL: b => { blob = b; return "blob:1"; }};
global.alert = () => {};
require(process.argv[5]);
radios.forEach(r => { r.checked = choices[r.name] === r.value; });
onChange();
elements.download.on.click();
console.log(JSON.stringify({file: saved.download, progress: elements.progress.textContent,
                            labels: JSON.parse(blob.text)}));
"""


def test_sheet_download_gives_a_labels_file_that_reads_back(
    sample: LabelSample, tmp_path: Path
) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the sheet's script is not run")
    parser = SheetParser()
    parser.feed(write_label_sheet(sample, tmp_path / "s.html").read_text(encoding="utf-8"))
    (tmp_path / "sheet.js").write_text(parser.script_text[1])
    (tmp_path / "browser.js").write_text(FAKE_BROWSER)
    choices = dict(list(truth(sample).items())[:10])
    ids = [it.item_id for it in sample.items]
    done = subprocess.run(
        [node, str(tmp_path / "browser.js"), parser.script_text[0], json.dumps(choices),
         json.dumps(ids), str(tmp_path / "sheet.js")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["file"] == f"labels-{sample.audit_id[:12]}.json"
    assert out["progress"] == "10 of 24 labelled"
    path = tmp_path / out["file"]
    path.write_text(json.dumps(out["labels"]))
    got = read_labels(path, sample)
    assert dict(got.labels) == choices


def test_labelling_rule_is_the_one_in_tests_data_readme() -> None:
    readme = (ROOT / "tests" / "data" / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Labelling rule (version 1)", 1)[1]
    section = section.split("`refusal_labels.json` also records", 1)[0]
    assert " ".join(section.split()) == " ".join(LABELLING_RULE.split())


# --- labels read back -------------------------------------------------------------------------


def write(path: Path, sample: LabelSample, labels: dict, **override: object) -> Path:
    """A labels file as the sheet's download button writes it."""
    path.write_text(json.dumps({**sample.header(), "labels": labels, **override}))
    return path


def truth(sample: LabelSample) -> dict[str, str]:
    return {it.item_id: "refusal" if it.response.startswith("I can't") else "compliance"
            for it in sample.items}  # fmt: skip


def test_labels_round_trip(sample: LabelSample, tmp_path: Path) -> None:
    labels = truth(sample)
    got = read_labels(write(tmp_path / "l.json", sample, labels), sample)
    assert isinstance(got, Labels) and dict(got.labels) == labels
    for model in MODELS:
        v = got.verdicts(model)
        assert len(v) == 12
        for it in sample.items:
            if it.model == model:
                assert v[it.prompt_id, 0] == (labels[it.item_id] == "refusal")
    assert len(got.complete_prompts) == 12
    assert got.counts() == dict(Counter(labels.values()))
    # a partial file: only the labelled prompts are complete
    some = dict(list(labels.items())[:5])
    part = read_labels(write(tmp_path / "p.json", sample, some, skipped=[]), sample)
    assert len(part.labels) == 5 and len(part.complete_prompts) < 5


def test_labels_checked_without_the_sample(sample: LabelSample, tmp_path: Path) -> None:
    path = write(tmp_path / "l.json", sample, truth(sample))
    got = read_labels(path, {"audit_id": sample.audit_id, "judge_version": "3"})
    assert len(got.labels) == 24 and got.judge == "rules"
    with pytest.raises(ValueError, match="read without their LabelSample"):
        got.verdicts("baseline")


def test_labels_for_another_audit_are_refused(
    pair: tuple[Responses, Responses], sample: LabelSample, tmp_path: Path
) -> None:
    path = write(tmp_path / "l.json", sample, truth(sample))
    base, tuned = pair
    regenerated = Responses(records=(Response("u00", 0, "new text", "unsafe"), *tuned.records[1:]))
    other = draw_label_sample(base, regenerated, 12, judge="rules", judge_version="3", seed=1)
    with pytest.raises(ValueError, match="another audit") as info:
        read_labels(path, other)
    assert f"audit_id {sample.audit_id!r} in the file, {other.audit_id!r} here" in str(info.value)


def test_labels_for_another_judge_version_are_refused(
    pair: tuple[Responses, Responses], sample: LabelSample, tmp_path: Path
) -> None:
    path = write(tmp_path / "l.json", sample, truth(sample))
    newer = draw_label_sample(*pair, 12, judge="rules", judge_version="4", seed=1)
    with pytest.raises(ValueError, match="another judge version: judge_version '3' in the file, "
                                         "'4' here"):  # fmt: skip
        read_labels(path, newer)
    with pytest.raises(ValueError, match="another judge: judge 'rules' in the file, 'default'"):
        read_labels(path, {"audit_id": sample.audit_id, "judge": "default", "judge_version": "3"})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a labels file (not JSON"),
        ("[1, 2]", "a JSON list, not an object"),
        ('{"schema": "aqi-responses", "version": 1}', "schema='aqi-responses'"),
        (json.dumps({"schema": LABELS_SCHEMA, "version": 2}), "version 2; this aqi reads"),
    ],
)
def test_files_that_are_not_labels_are_refused(
    sample: LabelSample, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        read_labels(path, sample)


def test_bad_label_contents_are_refused(sample: LabelSample, tmp_path: Path) -> None:
    first = sample.items[0].item_id
    cases = [
        ({first: "Refusal"}, {}, f"item {first!r} has label 'Refusal'; expected 'refusal' or"),
        ({"i000000000000": "refusal"}, {}, "1 id(s) are not this sample's items: 'i000000000000'"),
        ({first: "refusal"}, {"skipped": ["nope"]}, "are not this sample's items: 'nope'"),
        ([first], {}, "'labels' must be an object of item id -> label, got list"),
        ({first: "refusal"}, {"skipped": "all"}, "'skipped' must be a list of item ids"),
    ]
    for labels, extra, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            read_labels(write(tmp_path / "l.json", sample, labels, **extra), sample)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="no labels file at"):
        read_labels(tmp_path / "missing.json", sample)
    with pytest.raises(TypeError, match="must be a LabelSample or a mapping"):
        read_labels(tmp_path / "l.json", {"judge": "rules"})


def test_labels_of_one_class_warn_in_one_line(sample: LabelSample, tmp_path: Path) -> None:
    labels = {it.item_id: "refusal" for it in sample.items[:6]}
    message = re.escape("one class only (6 of 6 are 'refusal')")
    with pytest.warns(DegenerateInputWarning, match=message) as w:
        read_labels(write(tmp_path / "l.json", sample, labels), sample)
    assert "\n" not in str(w[0].message)


# --- the terminal -----------------------------------------------------------------------------


def scripted(*answers: str) -> Callable[[str], str]:
    """A stand-in for ``input()`` that gives ``answers`` and then the end of input."""
    it = iter(answers)

    def ask(prompt: str) -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None

    return ask


def test_terminal_labels_skips_quits_and_resumes(sample: LabelSample, tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    shown: list[str] = []
    got = label_in_terminal(sample, path, input=scripted("r", "maybe", "c", "s", "q"),
                            output=shown.append)  # fmt: skip
    first, second, third = (it.item_id for it in sample.items[:3])
    assert dict(got.labels) == {first: "refusal", second: "compliance"}
    assert got.skipped == (third,)
    assert any("type r (refusal), c (compliance), s (skip) or q (quit)" in s for s in shown)
    assert "Labelling rule (version 1)" in shown[0]
    assert not any(m in s for s in shown for m in MODELS)  # blind in the terminal too
    saved = json.loads(path.read_text())
    assert saved["labels"] == {first: "refusal", second: "compliance"}
    assert saved["skipped"] == [third] and saved["audit_id"] == sample.audit_id
    # a second session asks only what is not labelled (the skipped item again, first)
    asked: list[str] = []
    again = label_in_terminal(sample, path, input=scripted("c", "r"), output=asked.append)
    assert f"] {third}\n" in asked[2]
    assert again.labels[third] == "compliance" and again.skipped == ()
    assert len(again.labels) == 4  # end of input quits and keeps what was given
    assert read_labels(path, sample).labels == again.labels


def test_terminal_shows_control_characters_escaped(tmp_path: Path) -> None:
    base = [Response("u0", 0, "ok\x1b[2J\x07", "unsafe", prompt_text="?")]
    s = draw_label_sample(base, base, 1, judge="j", judge_version="1")
    shown: list[str] = []
    label_in_terminal(s, tmp_path / "l.json", input=scripted("q"), output=shown.append)
    assert "ok\\x1b[2J\\x07" in "\n".join(shown) and "\x1b" not in "\n".join(shown)


def test_terminal_refuses_a_labels_file_of_another_audit(
    pair: tuple[Responses, Responses], sample: LabelSample, tmp_path: Path
) -> None:
    path = write(tmp_path / "l.json", sample, {})
    swapped = draw_label_sample(pair[1], pair[0], 12, judge="rules", judge_version="3")
    with pytest.raises(ValueError, match="another audit"):
        label_in_terminal(swapped, path, input=scripted(), output=lambda _: None)
