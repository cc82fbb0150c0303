"""AlignmentWatch on a tiny random Llama: the latent mode (generation at the reference only,
refusal predicted from one forward pass later) and ``generate=True``.

A random model's responses are garbage and no real judge finds a refusal in them, so the
tests that need a reference which refuses some prompts and not others use a **test
judge**: a spy on ``generate_responses`` writes each response's prompt id at the start of
its text, and the judge labels it from a fixed table of prompt ids. It is not a refusal
judge; it stands in for one so that the plumbing around the fit can be tested.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import aqi
import aqi.integrations.watch as watch_module
from aqi.behaviour import Responses
from aqi.integrations.watch import METRICS, AlignmentWatch, logged_values, watch_prompts

pytest.importorskip("transformers")

PREDICTED = [k for k in METRICS if k.startswith("predicted_")]
PROMPTS = watch_prompts(6)
UNSAFE = [p.id for p in PROMPTS if p.is_unsafe]
SAFE = [p.id for p in PROMPTS if not p.is_unsafe]
#: What the test judge calls a refusal: every unsafe prompt but the first, and the first
#: safe prompt (so the reference refuses 5 of 6 unsafe and over-refuses 1 of 6 safe).
REFUSING = frozenset(UNSAFE[1:] + SAFE[:1])


class TableTestJudge:
    """A test judge: reads the ``[prompt id]`` tag the spy wrote at the start of a response
    and answers from a fixed table; not a refusal judge."""

    def __init__(self, refusing: frozenset[str]) -> None:
        self.refusing = refusing
        self.identity = {"name": "table (test judge)", "kind": "test", "version": "1"}

    def __call__(self, text: str) -> str:
        prompt_id = text[1: text.index("]")]
        return "refusal" if prompt_id in self.refusing else "compliance"


@pytest.fixture
def generations(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Spy on the watch's generation: records the prompt ids of every call and tags each
    response's text with its prompt id (for :class:`TableTestJudge`)."""
    calls: list[list[str]] = []
    real = watch_module.generate_responses

    def spy(model: Any, tokenizer: Any, prompts: Any, *args: Any, **kw: Any) -> Responses:
        calls.append([p.id for p in prompts])
        rs = real(model, tokenizer, prompts, *args, **kw)
        tagged = tuple(replace(r, text=f"[{r.prompt_id}] {r.text}") for r in rs)
        return Responses(records=tagged, header=rs.header)

    monkeypatch.setattr(watch_module, "generate_responses", spy)
    return calls


@pytest.fixture
def tiny(tiny_factory: Any) -> tuple[Any, Any]:
    model, tok = tiny_factory("llama")
    return copy.deepcopy(model), tok


@contextmanager
def _erased(model: Any, layer: str, direction: np.ndarray, scale: float) -> Iterator[None]:
    """Subtract ``scale`` x ``direction`` from the output of block ``layer``: the unsafe
    prompts move along the reference's refusal direction to where the safe ones sat."""
    shift = torch.as_tensor(scale * direction, dtype=torch.float32)

    def hook(_module: Any, _inputs: Any, out: Any) -> Any:
        if isinstance(out, tuple):
            return (out[0] - shift, *out[1:])
        return out - shift

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _finite_predicted(rec: dict[str, Any]) -> None:
    assert all(math.isfinite(rec[k]) for k in PREDICTED) and not set(PREDICTED) & set(rec["nan"])
    assert 0 <= rec["predicted_refusal_low"] <= rec["predicted_refusal"]
    assert rec["predicted_refusal"] <= rec["predicted_refusal_high"] <= 1
    assert rec["predicted_change_low"] <= rec["predicted_change"] <= rec["predicted_change_high"]


def test_latent_watch_generates_once_then_predicts(
    tiny: tuple[Any, Any], tmp_path: Path, generations: list[list[str]]
) -> None:
    model, tok = tiny
    w = AlignmentWatch(tmp_path, prompts=PROMPTS, max_new_tokens=3,
                       judge=TableTestJudge(REFUSING))  # fmt: skip
    ref = w.measure(model, tok, step=0)
    # the reference: every prompt generated once, judged, every block captured
    assert generations == [list(PROMPTS.ids)]
    assert ref["generated"] and ref["refusal"] == pytest.approx(5 / 6)
    assert ref["over_refusal"] == pytest.approx(1 / 6) and ref["refusal_change"] == 0.0
    assert w.reference is not None
    assert w.reference.store.layers == ("model.layers.0", "model.layers.1", "model.layers.2")
    assert ref["predicted_layer"] in w.reference.store.layers  # 25-80 % of 3 blocks: all
    _finite_predicted(ref)
    assert ref["predicted_change"] == 0.0 and ref["predicted_p_drop"] == 1.0
    assert ref["verdict"] == "pass" and "predicted from the activations" in ref["summary"]

    same = w.measure(model, tok, step=10)
    assert len(generations) == 1  # no generation after the reference
    assert not same["generated"] and same["reference_step"] == 0
    for k in ("refusal", "over_refusal", "refusal_change", "refusal_p"):
        assert math.isnan(same[k]) and same["nan"][k].startswith("not generated: generate=False")
    _finite_predicted(same)
    assert same["predicted_change"] == pytest.approx(0.0, abs=1e-9)
    assert same["verdict"] == "pass"
    # a later measurement reads two layers only: the AQI's and the predicted refusal's
    with aqi.open_store(tmp_path / "current.h5") as cur:
        assert set(cur.layers) == {w.layer, same["predicted_layer"]}

    # move the prompts along the reference's refusal direction at the predicted block:
    # the unsafe prompts move past the gap-fraction threshold, significantly -> fail
    block = same["predicted_layer"]
    X = w.reference.store.activations(block, "last", "post_instruction")
    u = np.asarray(w.reference.store.labels) == "unsafe"
    direction = X[u].mean(axis=0) - X[~u].mean(axis=0)
    with _erased(model, block, direction, scale=2.0):
        eroded = w.measure(model, tok, step=20)
    assert len(generations) == 1
    _finite_predicted(eroded)
    assert eroded["predicted_change"] <= -0.3 and eroded["predicted_p_drop"] < 0.05
    assert eroded["verdict"] == "fail"
    assert "of the baseline's unsafe–safe gap" in eroded["summary"]
    assert logged_values(eroded)["aqi/verdict_fail"] == 1.0
    assert set(logged_values(eroded)) == {f"aqi/{k}" for k in METRICS} | {"aqi/verdict_fail"}
    w.close()


def test_generate_true_judges_every_measurement_and_predicts_too(
    tiny: tuple[Any, Any], tmp_path: Path, generations: list[list[str]]
) -> None:
    model, tok = tiny
    w = AlignmentWatch(tmp_path, prompts=PROMPTS, n_unsafe=4, n_safe=2, max_new_tokens=3,
                       generate=True, judge=TableTestJudge(REFUSING))  # fmt: skip
    judged = list(w.judged.ids)
    ref = w.measure(model, tok, step=0)
    # the judged prompts alone (as at every step), then the reference's other prompts
    assert generations[0] == judged
    assert sorted(generations[0] + generations[1]) == sorted(PROMPTS.ids)
    assert ref["refusal"] == pytest.approx(3 / 4)  # the judged series: 4 unsafe, 2 safe
    later = w.measure(model, tok, step=5)
    assert generations[2:] == [judged] and later["generated"]
    assert later["refusal"] == pytest.approx(3 / 4) and later["refusal_change"] == 0.0
    _finite_predicted(later)
    # the verdict is the judged one (McNemar), as before the latent mode
    assert later["summary"].startswith("refusal of unsafe prompts")
    w.close()


@pytest.mark.parametrize(("refusing", "why"), [
    (frozenset(), "the baseline refused 0 of its 12 judged prompts"),
    (frozenset(PROMPTS.ids), "the baseline refused 12 of its 12 judged prompts"),
    # one refusal: one half of the pairs has none, so no block can be cross-fitted
    (frozenset(UNSAFE[:1]), "no block could be cross-fitted"),
])  # fmt: skip
def test_reference_refusing_none_all_or_too_few_is_nan_with_reason_and_warn(
    tiny: tuple[Any, Any], tmp_path: Path, generations: list[list[str]],
    refusing: frozenset[str], why: str,
) -> None:
    model, tok = tiny
    w = AlignmentWatch(tmp_path, prompts=PROMPTS, max_new_tokens=3,
                       judge=TableTestJudge(refusing))  # fmt: skip
    for step in (0, 3):
        rec = w.measure(model, tok, step=step)
        for k in PREDICTED:
            assert math.isnan(rec[k])
            assert why in rec["nan"][k]
        assert rec["verdict"] == "warn" and "predicted refusal not computed" in rec["summary"]
        assert rec["predicted_layer"] is None
    assert len(generations) == 1
    with aqi.open_store(tmp_path / "current.h5") as cur:  # no block to predict at
        assert cur.layers == (w.layer,)
    w.close()


def test_bad_watch_settings(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"generate=1; expected True"):
        AlignmentWatch(tmp_path, generate=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="judge='oracle' is not a judge"):
        AlignmentWatch(tmp_path, judge="oracle")
    with pytest.raises(ValueError, match=r"threshold min_predicted_drop must be in \[0, 1\]"):
        aqi.AuditThresholds(min_predicted_drop=1.5)
