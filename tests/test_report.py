"""The HTML report is self-contained and escapes all data; the JSON follows its schema."""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import aqi
from aqi.probes import PairScores, reward_shift
from aqi.report import to_json, write_html

EVIL = '<script>alert("x")</script>'


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> aqi.AuditReport:
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("report")
    n = 80
    y = np.repeat(["safe", "unsafe"], n // 2)
    ids = [f"{EVIL}-{i}" for i in range(n)]
    cats = [EVIL if i % 2 else "plain" for i in range(n)]
    arrays = {f"L{i}": rng.normal(size=(n, 5)) + i * (y == "unsafe")[:, None] for i in range(3)}
    s = aqi.store_from_arrays(tmp / "s.h5", arrays, labels=y, ids=ids, categories=cats,
                              provenance={"model": {"name": EVIL}})  # fmt: skip
    t = aqi.store_from_arrays(tmp / "t.h5", {k: v + 2 for k, v in arrays.items()}, labels=y,
                              ids=ids, categories=cats)  # fmt: skip
    w = aqi.store_from_arrays(
        tmp / "w.h5", {k: v[y == "unsafe"] + 1 for k, v in arrays.items()},
        labels=["unsafe"] * (n // 2), ids=[f"{EVIL}{i}::jb:{EVIL}{i % 2}" for i in range(n // 2)],
    )  # fmt: skip
    m = rng.normal(1, 2, 2000)
    rew = reward_shift(PairScores(m, np.zeros(2000), "ref"),
                       {EVIL: PairScores(m * 0.3, np.zeros(2000), EVIL)}, n_boot=40)  # fmt: skip
    from aqi.behaviour import Response, Responses

    def said(refuse_every: int) -> Responses:
        return Responses(records=tuple(
            Response(i, 0, "I'm sorry, but I can't help with that." if k % refuse_every == 0
                     else f"Sure: {EVIL}", lab, c)
            for k, (i, lab, c) in enumerate(zip(ids, y, cats))))

    return aqi.audit(s, baseline=s,
                     evidence=aqi.Evidence(ood_test=t, jailbreak=w, reward=rew, responses=said(4),
                                           baseline_responses=said(2)),
                     scoring=aqi.Scoring(n_boot=100, n_perm=50))  # fmt: skip


def test_behaviour_section(report: aqi.AuditReport, tmp_path: Path) -> None:
    html = write_html(report, tmp_path / "b.html").read_text()
    assert "Evidence: behaviour" in html and "refusal on unsafe prompts" in html
    doc = json.loads(to_json(report))["behaviour"]
    assert doc["refusal"]["refusal"]["rate"] == pytest.approx(0.25)
    assert doc["change"]["refusal"]["difference"] == pytest.approx(0.25 - 0.5)
    # the phrase rules give no probability: no least-sure list, and the report says why
    assert doc["refusal"]["least_sure"] is None and "cannot be ranked" in html


def test_least_sure_responses_listed_and_escaped(tmp_path: Path) -> None:
    from aqi.behaviour import Response, Responses

    n = 8
    y = ["safe", "unsafe"] * (n // 2)
    arrays = {"L0": np.random.default_rng(1).normal(size=(n, 3))}
    s = aqi.store_from_arrays(tmp_path / "s.h5", arrays, labels=y, ids=[f"p{i}" for i in range(n)])
    texts = ["I'm sorry, but I can't help with that.", f"Well, maybe. {EVIL}",
             "Sure: step one is to gather the tools.", "Hmm."]  # fmt: skip
    said = Responses(records=tuple(Response(f"p{i}", 0, texts[i % 4], lab, "c")
                                   for i, lab in enumerate(y)))  # fmt: skip
    rep = aqi.audit(s, evidence=aqi.Evidence(responses=said), judging=aqi.Judging(judge="encoder"),
                    scoring=aqi.Scoring(n_boot=50, n_perm=20))  # fmt: skip
    assert rep.behaviour.least_sure and len(rep.behaviour.least_sure) == 5
    html = write_html(rep, tmp_path / "r.html").read_text()
    assert "Responses the judge was least sure of" in html and EVIL not in html
    doc = json.loads(to_json(rep))["behaviour"]["refusal"]["least_sure"]
    assert [d["prompt_id"] for d in doc] == [u.prompt_id for u in rep.behaviour.least_sure]


def test_html_is_self_contained_and_escaped(report: aqi.AuditReport, tmp_path: Path) -> None:
    html = write_html(report, tmp_path / "r.html").read_text()
    assert EVIL not in html  # every occurrence escaped
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert len(re.findall(r"<script", html)) == 1  # only the embedded JSON block
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched
    assert html.count("data:image/png;base64,") >= 5
    # Verdicts come before the evidence.
    assert html.index("Verdicts") < html.index("Evidence")
    embedded = re.search(r"id='aqi-audit'>\n(.*)\n</script>", html, re.S).group(1)
    assert json.loads(embedded)["verdict"] == report.verdict


def test_json_validates_against_the_schema(report: aqi.AuditReport) -> None:
    schema = json.loads(files("aqi.data").joinpath("audit.schema.json").read_text())
    doc = json.loads(to_json(report))
    jsonschema.validate(doc, schema)
    assert [c["name"] for c in doc["checks"]] == [
        "aqi", "aqi_change", "ood", "jailbreak_drift", "reward_calibration", "refusal_change",
        "second_judge",
    ]  # fmt: skip
    assert doc["checks"][-2]["evidence"]["refusal"]["only_a"] >= 0
    assert doc["checks"][-1]["evidence"]["judges"][1].startswith("encoder")
    bad = {**doc, "verdict": "maybe"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_notebook_repr(report: aqi.AuditReport) -> None:
    html = report._repr_html_()
    assert "<table>" in html and "aqi_change" in html
    assert EVIL not in html


def test_what_changed_lists_each_flip_escaped_and_sorted(report: aqi.AuditReport,
                                                         tmp_path: Path) -> None:
    flips = report.flips
    assert flips and len(flips) == report.behaviour_change.refusal.only_a + (
        report.behaviour_change.refusal.only_b + report.behaviour_change.over_refusal.only_a
        + report.behaviour_change.over_refusal.only_b
    )  # fmt: skip
    assert [f.category for f in flips] == sorted(f.category for f in flips)
    assert all(f.baseline_refused != f.refused for f in flips)
    html = write_html(report, tmp_path / "c.html").read_text()
    section = html[html.index("<h2>What changed</h2>"):html.index("<h2>Evidence")]
    assert section.count("<details>") == len(flips) and EVIL not in section
    assert "stopped refusing" in section and "&lt;script&gt;" in section
    from dataclasses import replace

    quiet = replace(report, flips=tuple(f.without_text() for f in flips))
    html = write_html(quiet, tmp_path / "q.html").read_text()
    section = html[html.index("<h2>What changed</h2>"):html.index("<h2>Evidence")]
    assert "<details>" not in section and "Sure:" not in section
    assert json.loads(to_json(quiet))["behaviour"]["flips"][0]["response"] is None
