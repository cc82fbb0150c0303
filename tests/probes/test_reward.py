"""Reward-model probes: the paper's figures reproduced on its real scores, score-file
loaders, and scoring with real (tiny and pretrained-backbone) sequence classifiers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from aqi.probes import (
    PairScores,
    detection_metrics,
    load_reward_scores,
    preference_calibration,
    reward_ood_scores,
    reward_shift,
    score_pairs,
)

DATA = Path(
    os.environ.get(
        "AQI_REWARD_SHIFT_DIR", Path(__file__).resolve().parents[3] / "shared/data/reward_shift"
    )
)
needs_data = pytest.mark.skipif(
    not (DATA / "english_original_scores.csv").is_file(),
    reason=f"reward-shift scores not found at {DATA} (set AQI_REWARD_SHIFT_DIR)",
)

# Expected figures, obtained independently of aqi: a pandas/scikit-learn script applying
# the paper's definitions as its data README states them — accuracy = mean(chosen >
# rejected); top-label confidence sigmoid(|chosen - rejected|) binned with
# pd.cut(conf, np.linspace(0, 1, 11), right=False) and ECE = sum over bins of
# |bin| / n * |mean(correct) - mean(conf)|; energy = -logsumexp([chosen, rejected]) with
# OOD positive, AUROC from sklearn.metrics.roc_auc_score and FPR at 95% TPR as
# fpr[argmax(tpr >= 0.95)] from sklearn.metrics.roc_curve(drop_intermediate=False).
PAPER = {
    "english_original_scores": {"accuracy": 0.7161762249, "ece": 0.1452865953},
    "french_prompt_english_response": {
        "accuracy": 0.7029665163, "ece": 0.1058834659, "auroc": 0.6487540798, "fpr95": 0.6888141094,
    },
    "english_prompt_french_response": {
        "accuracy": 0.6551394955, "ece": 0.2038150853, "auroc": 0.7426147330, "fpr95": 0.7002816162,
    },
    "french_prompt_french_response": {
        "accuracy": 0.6445311568, "ece": 0.1988075279, "auroc": 0.7926759262, "fpr95": 0.5703563161,
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def paper_scores() -> dict[str, PairScores]:
    return {k: load_reward_scores(DATA / f"{k}.csv") for k in PAPER}


@needs_data
def test_reproduces_paper_figures(paper_scores: dict[str, PairScores]) -> None:
    ref = paper_scores["english_original_scores"]
    energy_ref = reward_ood_scores(ref)["energy"]
    for name, exp in PAPER.items():
        s = paper_scores[name]
        assert len(s) == 83802
        cal = preference_calibration(s.chosen, s.rejected, ties="wrong", n_boot=0)
        assert float(cal.accuracy) == pytest.approx(exp["accuracy"], abs=1e-9), name
        assert float(cal.ece) == pytest.approx(exp["ece"], abs=1e-9), name
        if "auroc" in exp:
            det = detection_metrics(energy_ref, reward_ood_scores(s)["energy"], n_boot=0)
            assert float(det.auroc) == pytest.approx(exp["auroc"], abs=1e-9), name
            assert float(det.fpr_at_tpr) == pytest.approx(exp["fpr95"], abs=1e-9), name


@needs_data
def test_shift_report_on_paper_scores(paper_scores: dict[str, PairScores]) -> None:
    ref = paper_scores["english_original_scores"]
    shifted = {k: v for k, v in paper_scores.items() if k != "english_original_scores"}
    rep = reward_shift(ref, shifted, n_boot=50)
    both = rep["french_prompt_french_response"]
    assert both.paired
    # Translating both sides costs accuracy, significantly (paired bootstrap).
    assert both.accuracy_drop.ci_low > 0.05
    # The energy score does no better than the content-free -max(reward) control:
    # on these data it reads the reward's magnitude.
    e, m = both.detection["energy"].auroc, both.detection["neg_max_reward"].auroc
    assert abs(float(e) - float(m)) < 0.01
    # Temperature scaling fitted on held-out English pairs lowers in-distribution ECE.
    assert float(rep.reference_calibrated.ece) < float(rep.reference.ece)
    assert "TemperatureScaling" in rep.calibrator
    json.dumps(rep.to_dict())  # serialisable


def test_loaders(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("chosen,rejected\n1,0\n0.5,2\n")
    recs = [{"scores_chosen": [1.0], "scores_rejected": [0.0], "subset": "chat"},
            {"scores_chosen": 0.2, "scores_rejected": 0.9, "subset": "safety"}]  # fmt: skip
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "c.json").write_text(
        json.dumps({"scores_chosen": [1, 2], "scores_rejected": [0, 3]})
    )
    (tmp_path / "d.json").write_text(json.dumps(recs))
    assert load_reward_scores(tmp_path / "a.csv").margins.tolist() == [1.0, -1.5]
    b = load_reward_scores(tmp_path / "b.jsonl")
    assert b.margins.tolist() == pytest.approx([1.0, -0.7]) and b.groups.tolist() == [
        "chat",
        "safety",
    ]
    assert load_reward_scores(tmp_path / "c.json").margins.tolist() == [1.0, -1.0]
    assert load_reward_scores(tmp_path / "d.json").name == "d"
    (tmp_path / "e.csv").write_text("good,bad\n1,0\n")
    with pytest.raises(ValueError, match=r"no reward column; expected one of \['chosen'"):
        load_reward_scores(tmp_path / "e.csv")
    (tmp_path / "f.csv").write_text("chosen,rejected\n1,x\n")
    with pytest.raises(ValueError, match="row 0: 'x' is not a number"):
        load_reward_scores(tmp_path / "f.csv")
    with pytest.raises(FileNotFoundError, match="reward score file not found"):
        load_reward_scores(tmp_path / "missing.csv")
    (tmp_path / "g.txt").write_text("")
    with pytest.raises(ValueError, match=r"unsupported extension '\.txt'"):
        load_reward_scores(tmp_path / "g.txt")


def _tiny_reward_model(vocab: int) -> torch.nn.Module:
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.DebertaV2Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_labels=1, max_position_embeddings=256,
    )  # fmt: skip
    return tf.DebertaV2ForSequenceClassification(cfg).eval()


PAIRS = (
    ["How do I bake bread?", "What is the capital of France?", "Explain photosynthesis."] * 3,
    ["Mix flour, water, yeast; knead; rise; bake.", "Paris.", "Plants turn light into sugar."] * 3,
    ["No.", "I think it is Lyon, maybe.", "It is a kind of dance."] * 3,
)


def test_score_pairs_with_tiny_deberta_matches_plain_forward(bert_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bert_tokenizer_dir)
    model = _tiny_reward_model(len(tok))
    prompts, chosen, rejected = PAIRS
    s = score_pairs(model, tok, prompts, chosen, rejected, batch_size=4, embedding_layer=-1)
    with torch.inference_mode():
        for i in (0, 4, 8):
            enc = tok(prompts[i], chosen[i], return_tensors="pt")
            out = model(**enc, output_hidden_states=True)
            assert s.chosen[i] == pytest.approx(float(out.logits[0, 0]), abs=1e-5)
            np.testing.assert_allclose(
                s.embeddings["prompt_response"][i], out.hidden_states[-1][0].mean(0), atol=1e-5
            )
    assert s.embeddings["prompt"].shape == (9, 32)
    assert s.response_length.tolist()[0] == len(chosen[0]) + len(rejected[0])
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_score_pairs_with_pretrained_minilm_backbone(minilm: tuple) -> None:
    """A real pretrained encoder (all-MiniLM-L6-v2) with a reward head: embeddings are the
    real model's, captured in the scoring pass."""
    from transformers import BertForSequenceClassification

    base, tok = minilm
    torch.manual_seed(0)
    model = BertForSequenceClassification(base.config.__class__(**{**base.config.to_dict(),
                                                                   "num_labels": 1}))  # fmt: skip
    model.bert.load_state_dict(base.state_dict(), strict=False)
    prompts, chosen, rejected = PAIRS
    s = score_pairs(model.eval(), tok, prompts, chosen, rejected, batch_size=8)
    assert np.isfinite(s.chosen).all() and len(s) == 9
    assert s.embeddings["prompt_response"].shape == (9, 384)
    # Identical inputs get identical rewards (rows 0, 3, 6 repeat).
    assert s.chosen[0] == pytest.approx(s.chosen[3], abs=1e-5)


def test_score_pairs_with_callable_and_errors() -> None:
    prompts, chosen, rejected = PAIRS
    s = score_pairs(lambda ps, rs: [float(len(r)) for r in rs], None, prompts, chosen, rejected)
    assert s.margins[0] == len(chosen[0]) - len(rejected[0])
    assert s.embeddings == {}
    with pytest.raises(ValueError, match="row-aligned; got 9, 9, 2"):
        score_pairs(len, None, prompts, chosen, rejected[:2])
    with pytest.raises(TypeError, match="must be a torch module or a callable"):
        score_pairs(3, None, prompts, chosen, rejected)


def test_score_pairs_renders_through_the_chat_template(tiny_factory: Callable) -> None:
    """A chat tokenizer: pairs are rendered by the capture's encoder (user + assistant turn),
    left padding changes nothing, and the prompt-only pass ends in the generation prompt."""
    import transformers as tf

    from aqi.activations import ActivationHooks

    _, tok = tiny_factory("llama", side="left")
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    model = tf.LlamaForSequenceClassification(cfg).eval()
    prompts, chosen, rejected = PAIRS
    s = score_pairs(model, tok, prompts, chosen, rejected, batch_size=4, embedding_layer=-1)
    assert s.embeddings["prompt"].shape == (9, 32)
    for i in (0, 5):
        turns = [{"role": "user", "content": prompts[i]}]
        text = tok.apply_chat_template(
            [*turns, {"role": "assistant", "content": rejected[i]}], tokenize=False
        )
        enc = tok(text, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            reward = float(model(**enc).logits[0, 0])
        assert s.rejected[i] == pytest.approx(reward, abs=1e-4)
        text = tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        enc = tok(text, add_special_tokens=False, return_tensors="pt")
        with ActivationHooks(model, [-1], "mean") as hooks:
            emb = hooks.run(**enc)["model.layers.1"]["mean"][0]
        np.testing.assert_allclose(s.embeddings["prompt"][i], emb.numpy(), atol=1e-4)
