"""The steps of one audit run: each model's generation and capture (resumed, or reused
once verified), judging, the audit itself (full or latent), and the notes on the pair."""

from __future__ import annotations

import gc
import json
import time
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .._latent import latent_report, prompt_store, refused_by_prompt, verify_sample, with_prediction
from .._outputs import write_atomic
from .._progress import RunDisplay
from ..audit import AuditReport, audit
from ..audit_values import Evidence, Judging, Scoring
from ..jobs import Writing
from ..prompts import Rendering
from .records import PhaseRecord
from .spec import ModelSpec, _load
from .workdir import _other_stop, _record, _recorded, _responses_done, _reusable, _store_done

#: The spans captured from one forward pass per batch.
SPANS = ("instruction", "post_instruction", "response_onset", "response")


@dataclass
class _ModelJob:
    """One model's generation and capture: what they read, where they write, what they log."""

    spec: ModelSpec
    role: str
    folder: Path
    prompts: Any
    settings: dict[str, Any]
    show: RunDisplay
    log: list[PhaseRecord]
    progress: bool | None
    rebuild: bool
    limit: int | None
    loaded: tuple[Any, Any] | None = None

    def model(self) -> tuple[Any, Any]:
        """The model and tokenizer, loaded by the first step that needs them."""
        if self.loaded is None:
            self.loaded = _load(self.spec, self.role)
        return self.loaded

    def rendering(self) -> Rendering:
        """How generation and capture render this model's prompts (the same way)."""
        return Rendering(chat=self.settings["chat"], max_prompt_tokens=self.limit)

    def writing(self, overwrite: bool) -> Writing:
        """How generation and capture write this model's files."""
        return Writing(batch_size=self.settings["batch_size"], overwrite=overwrite,
                       progress=self.progress)  # fmt: skip


def write_model_record(spec: ModelSpec, folder: Path) -> None:
    """Create the model's folder and write ``model.json`` (its spec and identity)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "model.json", json.dumps({**spec.to_dict(),
                 "identity": spec.identity()}, indent=2, default=str))  # fmt: skip


def _model_work(
    spec: ModelSpec, role: str, folder: Path, prompts: Any, settings: dict[str, Any],
    show: RunDisplay, log: list[PhaseRecord], progress: bool | None, rebuild: bool,
    limit: int | None, stop: Any,
) -> Any:  # fmt: skip
    """Generate and capture one model (each resumed, or reused once its content hash is
    verified: :func:`_reusable`); return its responses. ``stop`` is the judge that ends
    each response once its verdict is settled (``None``: every response runs to
    ``max_new_tokens``); responses stopped otherwise are generated again."""
    write_model_record(spec, folder)
    job = _ModelJob(spec, role, folder, prompts, settings, show, log, progress, rebuild, limit)
    rs = _generate_step(job, stop)
    _capture_step(job, rs)
    job.loaded = None
    gc.collect()
    return rs


def _generate_step(job: _ModelJob, stop: Any) -> Any:
    """Generate the model's responses, or reuse the finished and verified ones."""
    from ..behaviour import Decoding, early_stop_identity, generate_responses

    rs_path, settings = job.folder / "responses.jsonl", job.settings
    stop_id = early_stop_identity(stop)
    rs = _responses_done(rs_path, job.prompts, stop_id)
    redo = rs is not None and not _reusable(job.folder, rs_path.name, job.rebuild)
    rs = None if redo else rs
    redo = redo or _other_stop(rs_path, stop_id)
    t = time.perf_counter()
    with job.show.phase("generate", job.role, job.spec.name, len(job.prompts),
                        reused=rs is not None):  # fmt: skip
        if rs is None:
            model, tok = job.model()
            rs = generate_responses(model, tok, job.prompts, rs_path,
                                    decoding=Decoding(max_new_tokens=settings["max_new_tokens"]),
                                    rendering=job.rendering(), writing=job.writing(redo),
                                    stop_when_settled=stop)  # fmt: skip
            _record(job.folder, rs_path.name)
            status = "ran"
        else:
            status = "reused"
        job.log.append(PhaseRecord("generate", job.role, status, time.perf_counter() - t,
                                   len(rs)))  # fmt: skip
    return rs


def _capture_step(job: _ModelJob, rs: Any) -> None:
    """Capture the four spans of the prompts with their responses, or reuse the store made
    from these responses."""
    from ..activations import capture
    from ..behaviour import with_responses

    store_path, settings = job.folder / "store.h5", job.settings
    made_from = _recorded(job.folder)["responses.jsonl"]["sha256"]
    done = _store_done(store_path)
    redo = done and not _reusable(job.folder, store_path.name, job.rebuild, responses=made_from)
    need_store = redo or not done
    t = time.perf_counter()
    with job.show.phase("capture", job.role, job.spec.name, len(job.prompts),
                        reused=not need_store):  # fmt: skip
        if not need_store:
            job.log.append(PhaseRecord("capture", job.role, "reused", time.perf_counter() - t))
            return
        model, tok = job.model()
        rows = with_responses(job.prompts, rs, on_empty="drop")
        store = capture(model, tok, rows, store_path, layers=settings["layers"],
                        pooling=settings["capture_pooling"], spans=SPANS,
                        rendering=replace(job.rendering(), include_response=True),
                        writing=job.writing(redo))  # fmt: skip
        n = store.n_rows
        store.close()
        _record(job.folder, store_path.name, responses=made_from)
        job.log.append(PhaseRecord("capture", job.role, "ran", time.perf_counter() - t, n))


def _judge_step(
    responses: dict[str, Any], specs: dict[str, ModelSpec], folders: dict[str, Path],
    judge: Any, show: RunDisplay, log: list[PhaseRecord],
) -> dict[str, dict[str, bool | None]]:  # fmt: skip
    """Judge each model's responses, write its ``refusal.json``; each prompt's refusal."""
    from ..behaviour import judge_identity, refusal_rate

    refused: dict[str, dict[str, bool | None]] = {}
    for role, rs in responses.items():
        t = time.perf_counter()
        with show.phase("judge", role, specs[role].name, len(rs)):
            rate = refusal_rate(rs, judge)
            judged = {f"{k[0]}#{k[1]}": v for k, v in rate.verdicts.items()}
            refused[role] = refused_by_prompt(rate.verdicts)
            write_atomic(folders[role] / "refusal.json", json.dumps(
                {**rate.to_dict(), "judge_identity": judge_identity(judge), "labels": judged},
                default=str))  # fmt: skip
        log.append(PhaseRecord("judge", role, "ran", time.perf_counter() - t, len(rs)))
    return refused


def _full_audit(
    folders: dict[str, Path], specs: dict[str, ModelSpec], responses: dict[str, Any],
    refused: dict[str, bool | None], settings: dict[str, Any], show: RunDisplay, *,
    scoring: Scoring, judging: Judging,
) -> tuple[AuditReport, int]:  # fmt: skip
    """:func:`aqi.audit` of the two full stores, with the predicted refusal beside it."""
    from ..activations import open_store

    a, b = specs["audited"], specs["baseline"]
    with show.phase("audit", "audited", a.name, len(responses["audited"])), ExitStack() as stack:
        store = stack.enter_context(open_store(folders["audited"] / "store.h5", span="response"))
        base = stack.enter_context(open_store(folders["baseline"] / "store.h5", span="response"))
        notes = _pair_notes(store, base, a, b)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pairing by id keeps")  # said in a note
            evidence = Evidence(responses=responses["audited"],
                                baseline_responses=responses["baseline"])
            report = audit(store, baseline=base, evidence=evidence,
                           scoring=replace(scoring, pooling=settings["pooling"][0],
                                           layers=None),
                           judging=Judging(judge=judging.judge, labels=judging.labels))
            report = with_prediction(report, store.with_span("post_instruction"),
                                     base.with_span("post_instruction"), refused,
                                     n_boot=scoring.n_boot, seed=scoring.seed)  # fmt: skip
        return replace(report, notes=(*report.notes, *notes)), store.n_rows


def _latent_audit(
    folders: dict[str, Path], specs: dict[str, ModelSpec], prompts: Any,
    refused: dict[str, bool | None], settings: dict[str, Any], show: RunDisplay,
    log: list[PhaseRecord], *, thresholds: Any, n_boot: int, seed: int, judge: Any,
    verify: int, progress: bool | None, rebuild: bool, limit: int | None,
) -> tuple[AuditReport, int]:  # fmt: skip
    """Capture the audited model's prompts (no generation) and predict its refusal."""
    from ..activations import open_store
    from ..probes import predicted_refusal

    a, b = specs["audited"], specs["baseline"]
    folder = folders["audited"]
    write_model_record(a, folder)
    t = time.perf_counter()
    with show.phase("capture", "audited", a.name, len(prompts)):
        path, status = prompt_store(a, folder, prompts, settings, _load, _record, _reusable,
                                    _store_done, progress=progress, rebuild=rebuild,
                                    limit=limit)  # fmt: skip
    log.append(PhaseRecord("capture", "audited", status, time.perf_counter() - t, len(prompts)))
    with ExitStack() as stack:
        store = stack.enter_context(open_store(path, span="post_instruction"))
        base = stack.enter_context(open_store(folders["baseline"] / "store.h5",
                                              span="post_instruction"))  # fmt: skip
        notes = _pair_notes(store, base, a, b)
        with show.phase("audit", "audited", a.name, len(prompts)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pairing by id keeps")  # said in a note
            pred = predicted_refusal(base, store, refused, n_boot=n_boot, seed=seed)
        verified = None
        if verify:
            t = time.perf_counter()
            with show.phase("verify", "audited", a.name, verify):
                verified = verify_sample(pred, verify, a, folder, prompts, settings, _load,
                                         judge, seed=seed, progress=progress, limit=limit)
            log.append(PhaseRecord("verify", "audited", "ran", time.perf_counter() - t,
                                   verified.n_drawn))  # fmt: skip
        report = latent_report(store, base, pred, thresholds,
                               pooling=settings["pooling"][0], seed=seed,
                               verified=verified)  # fmt: skip
        return replace(report, notes=(*report.notes, *notes)), store.n_rows


def _pair_notes(store: Any, base: Any, a: ModelSpec, b: ModelSpec) -> list[str]:
    """What the report says about the pair: other tokenizer or template, same weights."""
    ia, ib = (s.provenance.get("identity", {}) for s in (store, base))
    notes = []
    for key, what in (("tokenizer_sha256", "tokenizers"),
                      ("chat_template_sha256", "chat templates")):  # fmt: skip
        if ia.get(key) != ib.get(key):
            notes.append(f"{a.name} and {b.name} use different {what}: the paired tests pair "
                         "rows by prompt id, and token positions are each model's own")
    if ia.get("weights_fingerprint") and ia.get("weights_fingerprint") == ib.get(
        "weights_fingerprint"
    ):
        text = (f"{a.name} and {b.name} have the same weights (fingerprint "
                f"{ia['weights_fingerprint'][:12]}…): every change is zero by construction")
        warnings.warn(text, stacklevel=3)
        notes.append(text)
    shared = len(set(store.ids.tolist()) & set(base.ids.tolist()))
    if shared < max(store.n_rows, base.n_rows):
        notes.append(f"{shared} prompts are paired: the others had an empty response from one "
                     f"model ({store.n_rows} rows audited, {base.n_rows} in the baseline)")
    return notes
