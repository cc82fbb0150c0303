"""Probes that read activation stores: OOD per layer, linear probes, jailbreak drift,
direction ablation — on the real SmolLM2-135M-Instruct and on tiny models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import aqi
import aqi.activations
from aqi.probes import (
    JAILBREAK_TEMPLATES,
    ablate_direction,
    conformal_threshold,
    jailbreak_drift,
    linear_probe,
    load_jailbreak_templates,
    mean_difference_direction,
    ood_probe,
    wrap_prompts,
)

from ..conftest import build_family

DEEP = ["model.layers.5", "model.layers.19"]


@pytest.fixture(scope="module")
def wrapped_store(smollm2: tuple, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """SmolLM2 on 3 jailbreak templates around the first 24 unsafe bundled prompts."""
    model, tok = smollm2
    unsafe = aqi.PromptSet([p for p in aqi.bundled_prompts() if p.is_unsafe][:24])
    templates = {k: JAILBREAK_TEMPLATES[k] for k in ("roleplay", "fiction", "developer_mode")}
    path = tmp_path_factory.mktemp("jb") / "wrapped.h5"
    return aqi.capture(
        model, tok, wrap_prompts(unsafe, templates), path, layers=DEEP, pooling="mean"
    )


def test_gaussian_ood_probe_flags_the_shifted_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, d = 600, 16
    y = np.repeat(["safe", "unsafe"], n // 2)
    ref = aqi.store_from_arrays(
        tmp_path / "ref.h5", {"L0": rng.normal(size=(n, d))}, labels=y, categories=["c"] * n
    )
    same = aqi.store_from_arrays(
        tmp_path / "same.h5",
        {"L0": rng.normal(size=(400, d))},
        labels=y[:400],
        categories=["c"] * 400,
    )
    shifted_x = rng.normal(size=(400, d))
    shifted_x[:200] += 1.5  # half the rows shifted
    cats = ["moved"] * 200 + ["stayed"] * 200
    shifted = aqi.store_from_arrays(
        tmp_path / "s.h5", {"L0": shifted_x}, labels=y[:400], categories=cats
    )
    r_same = ood_probe(ref, same, n_boot=100)["L0"]
    r_shift = ood_probe(ref, shifted, n_boot=100)["L0"]
    # In distribution: flag rate near the 5% target, AUROC near 0.5.
    assert r_same.flag_rate.ci_low <= 0.05 <= r_same.flag_rate.ci_high + 0.02
    assert 0.4 < float(r_same.detection.auroc) < 0.6
    # Shifted: most flags fall on the moved rows, the AUROC is far above chance.
    assert float(r_shift.detection.auroc) > 0.65  # half the rows moved: ~0.75 expected
    assert r_shift.flagged_categories["moved"] > 5 * r_shift.flagged_categories.get("stayed", 1)
    assert len(r_shift.flagged_ids) == sum(r_shift.flagged_categories.values())


def test_conformal_threshold_controls_false_alarms() -> None:
    rng = np.random.default_rng(1)
    rates = []
    for _ in range(200):
        cal, test = rng.normal(size=60), rng.normal(size=2000)
        rates.append(np.mean(test > conformal_threshold(cal, 0.1)))
    assert np.mean(rates) <= 0.1 + 0.01  # exact in expectation, up to simulation noise
    with pytest.raises(ValueError, match=r"false_alarm_rate must be in \(0, 1\)"):
        conformal_threshold(np.zeros(3), 1.0)


@pytest.mark.slow
def test_smollm2_ood_probe_flags_jailbreak_wrapped_prompts(
    smol_store: Any, wrapped_store: Any
) -> None:
    rep = ood_probe(smol_store, wrapped_store, layers=DEEP, n_boot=100)
    best = rep.best()
    assert float(best.detection.auroc) > 0.9
    assert best.flag_rate.ci_low > 2 * best.false_alarm_rate  # far above the false alarms
    assert repr(rep).startswith("OODReport(")


@pytest.mark.slow
def test_smollm2_linear_probe_beats_chance_deep(smol_store: Any) -> None:
    prof = linear_probe(smol_store, layers=["model.embed_tokens", *DEEP], n_boot=100)
    assert prof.layers[0].grouped
    deep = prof.layers[-1]
    assert deep.accuracy.ci_low > 0.8
    assert float(deep.auroc) > 0.9


@pytest.mark.slow
def test_smollm2_jailbreak_drift(smol_store: Any, wrapped_store: Any) -> None:
    prof = jailbreak_drift(smol_store, wrapped_store, layers=DEEP, n_boot=100)
    for r in prof.layers:
        assert 0.0 <= float(r.share_classified_safe) <= 1.0
        assert r.centroid_shift.ci_low <= float(r.centroid_shift) <= r.centroid_shift.ci_high
        assert set(r.per_template) == {"roleplay", "fiction", "developer_mode"}
        assert r.flagged == (
            float(r.share_classified_safe) >= 0.5 or float(r.centroid_shift) >= 0.5
        )
    d = prof.to_dict()
    assert d["layers"][0]["layer"] == DEEP[0]


def test_jailbreak_templates(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"name": "a", "template": "Pretend: {prompt}"}\n')
    assert load_jailbreak_templates(tmp_path / "t.jsonl") == {"a": "Pretend: {prompt}"}
    (tmp_path / "bad.json").write_text('{"a": "no placeholder"}')
    with pytest.raises(ValueError, match=r"must contain the placeholder \{prompt\} exactly once"):
        load_jailbreak_templates(tmp_path / "bad.json")
    safe_only = aqi.PromptSet([p for p in aqi.bundled_prompts() if not p.is_unsafe][:3])
    with pytest.raises(ValueError, match="no unsafe prompts to wrap"):
        wrap_prompts(safe_only)
    w = wrap_prompts(aqi.bundled_prompts()[:10])
    assert len(w) == 5 * len(JAILBREAK_TEMPLATES)
    assert all(p.label == "unsafe" and p.pair_id for p in w)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_ablated_model_has_no_component_along_the_direction(tiny_factory: Any, arch: str) -> None:
    model, tok = tiny_factory(arch)
    rng = np.random.default_rng(0)
    r = rng.normal(size=model.config.hidden_size)
    r /= np.linalg.norm(r)
    ablated = ablate_direction(model, r)
    enc = tok(["a test prompt", "another, longer test prompt here"], return_tensors="pt",
              padding=True)  # fmt: skip
    with torch.inference_mode():
        hs = ablated(**enc, output_hidden_states=True).hidden_states
        hs0 = model(**enc, output_hidden_states=True).hidden_states
    rt = torch.tensor(r, dtype=torch.float32)
    for h, h0 in zip(hs[:-1], hs0[:-1]):  # the last one is after the final norm
        assert (h @ rt).abs().max() < 1e-4
        assert (h0 @ rt).abs().max() > 1e-3  # the original model does use it
    assert not torch.equal(next(model.parameters()), next(ablated.parameters()))


@pytest.mark.parametrize(
    "model_type",
    sorted(k for k, a in aqi.activations.ARCHITECTURES.items() if a.no_ablation is None),
)
def test_ablation_follows_the_architecture_table(model_type: str) -> None:
    # Every family the table lists writers for: no hidden state keeps a component along r.
    model = build_family(model_type)
    hidden = model.get_input_embeddings().weight.shape[1]
    r = np.random.default_rng(1).normal(size=hidden)
    ablated = ablate_direction(model, r)
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        hs = ablated(input_ids=ids, output_hidden_states=True).hidden_states
        hs0 = model(input_ids=ids, output_hidden_states=True).hidden_states
    rt = torch.tensor(r / np.linalg.norm(r), dtype=torch.float32)
    assert len(hs) == 3
    for h, h0 in zip(hs[:-1], hs0[:-1], strict=True):  # the last one is after the final norm
        assert (h @ rt).abs().max() < 1e-4 * max(1.0, float(h.abs().max()))
        assert (h0 @ rt).abs().max() > 1e-3


def test_ablation_errors(tiny_factory: Any, tmp_path: Path) -> None:
    bert, _ = tiny_factory("bert")
    msg = "cannot ablate a direction in BertModel; model_type 'bert': post-norm"
    with pytest.raises(ValueError, match=msg):
        ablate_direction(bert, np.ones(32))
    llama, _ = tiny_factory("llama")
    with pytest.raises(ValueError, match="direction has 3 entries but the hidden size is 32"):
        ablate_direction(llama, np.ones(3))
    s = aqi.store_from_arrays(
        tmp_path / "a.h5", {"L": np.ones((4, 3))}, labels=["safe", "unsafe"] * 2
    )
    with pytest.raises(ValueError, match="centroids coincide"):
        mean_difference_direction(s, "L")


def test_ood_probe_keeps_the_detector_instance_settings(tmp_path: Path) -> None:
    from aqi.probes import CosineKNN

    rng = np.random.default_rng(3)
    y = ["safe", "unsafe"] * 50
    ref = aqi.store_from_arrays(tmp_path / "r.h5", {"L": rng.normal(size=(100, 4))}, labels=y)
    test = aqi.store_from_arrays(tmp_path / "t.h5", {"L": rng.normal(size=(100, 4))}, labels=y)
    det = CosineKNN(k=3)
    r = ood_probe(ref, test, detector=det, n_boot=0)["L"]
    assert r.detector == "CosineKNN(k=3)"
    assert det.dim_ is None  # the caller's instance is not fitted in place
