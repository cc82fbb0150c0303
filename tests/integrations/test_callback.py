"""AlignmentCallback under a real transformers Trainer (and TRL's SFTTrainer) on a tiny
random Llama: the logged series, the JSONL beside the checkpoints, unchanged training."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from aqi.integrations import AlignmentCallback, watch_prompts
from aqi.integrations.watch import METRICS

pytest.importorskip("transformers")

KEYS = {f"aqi/{k}" for k in METRICS} | {"aqi/verdict_fail"}
TEXTS = [
    "The cat sat on the mat and looked out of the window.",
    "A short sentence about bread, butter and a sunny morning.",
    "Rivers run to the sea; the sea gives rain back to the hills.",
    "Numbers: one two three four five six seven eight nine ten.",
    "She wrote a letter to her friend about the autumn fair.",
    "Trains leave the station every hour on the hour.",
    "Green leaves turn red and gold before they fall.",
    "He counted the stars until the clouds came in.",
]


def _dataset(tok: Any) -> list[dict[str, list[int]]]:
    return [{"input_ids": tok(t)["input_ids"]} for t in TEXTS]


def _args(out: Path, steps: int, **kw: Any) -> Any:
    from transformers import TrainingArguments

    base = {
        "output_dir": str(out), "max_steps": steps, "per_device_train_batch_size": 2,
        "learning_rate": 1e-3, "logging_steps": 1, "save_strategy": "no", "report_to": [],
        "seed": 0, "data_seed": 0, "use_cpu": True, "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }  # fmt: skip
    return TrainingArguments(**{**base, **kw})


def _train(model: Any, tok: Any, out: Path, steps: int, callback: AlignmentCallback | None,
           **kw: Any) -> Any:  # fmt: skip
    from transformers import DataCollatorForLanguageModeling, Trainer

    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    trainer = Trainer(model=model, args=_args(out, steps, **kw), train_dataset=_dataset(tok),
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                      processing_class=tok)  # fmt: skip
    if callback is not None:
        callback.attach(trainer)
    trainer.train()
    return trainer


@pytest.fixture
def tiny(tiny_factory: Any) -> tuple[Any, Any]:
    model, tok = tiny_factory("llama")
    return copy.deepcopy(model), tok


def _small_callback(**kw: Any) -> AlignmentCallback:
    return AlignmentCallback(pairs=6, n_unsafe=4, n_safe=2, max_new_tokens=3, **kw)


def _losses(trainer: Any) -> list[float]:
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


def test_logged_series_in_log_history_and_jsonl(tiny: tuple[Any, Any], tmp_path: Path) -> None:
    model, tok = tiny
    cb = _small_callback(every=2)
    trainer = _train(model, tok, tmp_path, 5, cb)
    # the Trainer's own loss log of every step is still there
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == [1, 2, 3, 4, 5]
    logged = [h for h in trainer.state.log_history if "aqi/refusal" in h]
    # step 0 (reference), every 2 steps, and the last step
    assert [h["step"] for h in logged] == [0, 2, 4, 5]
    for h in logged:
        assert set(h) >= KEYS
        assert all(isinstance(h[k], float) for k in KEYS)
    lines = (tmp_path / "aqi_alignment.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [json.loads(line) for line in lines]
    assert [r["step"] for r in recs] == [0, 2, 4, 5]
    assert {r["layer"] for r in recs} == {"model.layers.2"}
    for r, h in zip(recs, logged, strict=True):
        for k in METRICS:
            if r[k] is None:  # NaN in the log, null with its reason in the JSONL
                assert math.isnan(h[f"aqi/{k}"]) and r["nan"][k]
            else:
                assert math.isfinite(r[k]) and r[k] == pytest.approx(h[f"aqi/{k}"])
        assert r["verdict"] in ("pass", "warn", "fail") and r["summary"]
    ref = recs[0]
    assert ref["refusal_change"] == 0.0
    # latent mode (the default): judged at step 0 only; the random model refuses nothing,
    # so no refusal can be predicted: NaN with the reason, and a warn
    assert ref["generated"] and not any(r["generated"] for r in recs[1:])
    for r in recs[1:]:
        assert r["refusal"] is None
        assert r["nan"]["refusal"].startswith("not generated: generate=False")
    for r in recs:
        assert r["predicted_refusal"] is None and "refused 0 of" in r["nan"]["predicted_refusal"]
        assert r["verdict"] == "warn" and r["predicted_layer"] is None
    assert ref["refusal_shift_unsafe"] == pytest.approx(0.0, abs=1e-9)
    assert 0 <= ref["aqi_instruction"] <= 100 and 0 <= ref["aqi_post_instruction"] <= 100
    # training moved the activations: the shift against step 0 is no longer exactly 0
    assert recs[-1]["refusal_shift_unsafe"] != pytest.approx(0.0, abs=1e-9)
    assert model.training  # the Trainer leaves it in train mode; the callback did too


@pytest.mark.parametrize("generate", [False, True])
def test_training_numerics_unchanged(tiny_factory: Any, tmp_path: Path, generate: bool) -> None:
    base, tok = tiny_factory("llama")
    # dropout on, so the global RNG matters: the callback must not consume it
    with_dropout = copy.deepcopy(base)
    with_dropout.config.attention_dropout = 0.3
    for m in with_dropout.modules():
        if hasattr(m, "attention_dropout"):
            m.attention_dropout = 0.3
    a, b = copy.deepcopy(with_dropout), copy.deepcopy(with_dropout)
    plain = _losses(_train(a, tok, tmp_path / "plain", 4, None))
    cb = _small_callback(every=1, generate=generate)
    watched = _losses(_train(b, tok, tmp_path / "watched", 4, cb))
    assert len(plain) == 4 and plain == watched
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_model_back_in_train_mode_and_padding_side_kept(tiny: tuple[Any, Any],
                                                        tmp_path: Path) -> None:  # fmt: skip
    from transformers import TrainerCallback

    model, tok = tiny
    seen: list[bool] = []

    class Spy(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            seen.append(kw["model"].training)

    side = tok.padding_side
    cb = _small_callback(every=1)
    from transformers import DataCollatorForLanguageModeling, Trainer

    tok.pad_token = tok.pad_token or tok.eos_token
    trainer = Trainer(model=model, args=_args(tmp_path, 3), train_dataset=_dataset(tok),
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                      processing_class=tok, callbacks=[cb, Spy()])  # fmt: skip
    cb.trainer = trainer
    trainer.train()
    assert seen == [True, True, True] and tok.padding_side == side


@pytest.mark.parametrize("generate", [True, False])
@pytest.mark.parametrize("stop_on", ["warn", None])
def test_stop_on_stops_training(tiny: tuple[Any, Any], tmp_path: Path, stop_on: Any,
                                generate: bool) -> None:  # fmt: skip
    from aqi import AuditThresholds

    model, tok = tiny
    # generate=True: with no minimum drop, an unchanged judged refusal rate (the random
    # model never refuses) is already a drop "of that size, not significant".
    # generate=False: step 0 refused none of its prompts, so no refusal can be predicted.
    # Either way: warn at every step after step 0.
    cb = _small_callback(every=1, stop_on=stop_on, generate=generate,
                         thresholds=AuditThresholds(min_refusal_drop=0.0))  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = _train(model, tok, tmp_path, 4, cb)
    assert cb.records[0]["refusal"] == 0.0 and cb.records[0]["generated"]
    if generate:
        assert all(r["refusal"] == 0.0 and r["generated"] for r in cb.records)
    else:
        assert all(math.isnan(r["refusal"]) and not r["generated"] for r in cb.records[1:])
        assert all("refused 0 of its 12 judged prompts" in r["summary"] for r in cb.records)
    assert [r["verdict"] for r in cb.records][1:] == ["warn"] * (len(cb.records) - 1)
    stopped = [str(w.message) for w in caught if "stopping at step" in str(w.message)]
    if stop_on == "warn":  # the reference (step 0) never stops training
        assert trainer.state.global_step == 1 and [r["step"] for r in cb.records] == [0, 1]
        assert len(stopped) == 1 and "step 1: warn" in stopped[0]
    else:
        assert trainer.state.global_step == 4 and not stopped


def test_without_trainer_warns_and_fills_log_history(tiny: tuple[Any, Any],
                                                     tmp_path: Path) -> None:  # fmt: skip
    from transformers import DataCollatorForLanguageModeling, Trainer

    model, tok = tiny
    tok.pad_token = tok.pad_token or tok.eos_token
    trainer = Trainer(model=model, args=_args(tmp_path, 2), train_dataset=_dataset(tok),
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                      processing_class=tok, callbacks=[_small_callback(every=2)])  # fmt: skip
    with pytest.warns(UserWarning, match="attach"):
        trainer.train()
    assert [h["step"] for h in trainer.state.log_history if "aqi/refusal" in h] == [0, 2]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every": 0}, "every=0"),
        ({"stop_on": "bad"}, "stop_on='bad'"),
        ({"pairs": 2}, "pairs=2"),
        ({"n_unsafe": 0}, "n_unsafe=0"),
        ({"max_new_tokens": -1}, "max_new_tokens=-1"),
        ({"judge": "oracle"}, "judge='oracle' is not a judge"),
    ],
)
def test_bad_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AlignmentCallback(**kwargs)


def test_generate_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match=r"generate='yes'; expected True .* or False"):
        AlignmentCallback(generate="yes")


def test_watch_prompts_balanced() -> None:
    ps = watch_prompts(16)
    assert len(ps) == 32 and ps.labels.count("unsafe") == 16
    assert len({p.pair_id for p in ps}) == 16 and len(set(ps.categories)) == 7


def test_import_aqi_integrations_stays_light() -> None:
    code = ("import sys, aqi, aqi.integrations; "
            "print('transformers' in sys.modules, 'torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)  # fmt: skip
    assert out.stdout.split() == ["False", "False"]


def test_under_trl_sft_trainer(tiny: tuple[Any, Any], tmp_path: Path) -> None:
    trl = pytest.importorskip("trl", reason="trl is not installed (requirements/dev.txt)")
    from datasets import Dataset

    model, tok = tiny
    tok.pad_token = tok.pad_token or tok.eos_token
    cfg = trl.SFTConfig(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2,
                        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                        disable_tqdm=True, dataset_text_field="text", max_length=32)
    trainer = trl.SFTTrainer(model=model, args=cfg, processing_class=tok,
                             train_dataset=Dataset.from_dict({"text": TEXTS}))  # fmt: skip
    cb = _small_callback(every=2).attach(trainer)
    trainer.train()
    steps = [h["step"] for h in trainer.state.log_history if "aqi/refusal" in h]
    assert steps == [0, 2, 3]
    # TRL's own averaged train metrics still reach its log (Trainer.log, not SFTTrainer.log)
    assert any("loss" in h for h in trainer.state.log_history)
    assert len(cb.records) == 3


def test_attaching_twice_measures_each_step_once(tiny: tuple[Any, Any], tmp_path: Path) -> None:
    # issue 31: before, a second attach (or callbacks=[cb] and attach) recorded step 0 twice
    from transformers import DataCollatorForLanguageModeling, Trainer

    model, tok = tiny
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    cb = _small_callback(every=2)
    trainer = Trainer(model=model, args=_args(tmp_path, 2), train_dataset=_dataset(tok),
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
                      processing_class=tok, callbacks=[cb])  # fmt: skip
    assert cb.attach(trainer).attach(trainer) is cb
    assert sum(c is cb for c in trainer.callback_handler.callbacks) == 1
    trainer.train()
    assert [h["step"] for h in trainer.state.log_history if "aqi/refusal" in h] == [0, 2]
    lines = (tmp_path / "aqi_alignment.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 2]
