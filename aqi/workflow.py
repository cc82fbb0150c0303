"""One orchestrator for long jobs: audit a model against its baseline as one resumable plan.

:func:`audit_models` (``aqi audit --model FT --baseline-model BASE``) runs five phases
over a work folder:

1. **generate** each model's greedy responses (:func:`aqi.generate_responses`,
   ``JUDGE_NEW_TOKENS`` tokens; by default each response stops as soon as the judge's
   verdict on it is settled, :meth:`aqi.RefusalJudge.settled`);
2. **capture** the four spans ``instruction``, ``post_instruction``, ``response_onset``
   and ``response`` in one forward pass per batch, the response appended (causal: the
   instruction's activations are those without it);
3. **judge** refusal in each model's responses;
4. **audit** the model against the baseline (:func:`aqi.audit`: AQI of the responses,
   the paired change, the two axes, the paired refusal change);
5. **report**: ``report.html`` and ``report.json``.

Each finished run appends one line to ``<workdir>/runs.jsonl``: the two models, the
report's path and verdict, the run's seconds and each phase's (status ``ran`` /
``reused``, seconds, rows) — what a second fine-tune reused, and where the time went —
and each model's generated tokens against ``max_new_tokens`` per response (``tokens``:
what the early stop saved).

The work folder holds one settings record (``aqi-workdir.json``: aqi version, prompt
set, generation and capture settings; a folder made otherwise is refused, naming what
differs) and one folder per model under ``models/``, keyed by what identifies the
weights without loading them: a local folder's files (names, sizes, modification
times), a hub id's cached commit, plus the loading options. Generation and capture
resume where they stopped, and a model whose responses and store are complete is not
loaded at all: a second fine-tune audited against the same base reuses the base's work.
"""

from __future__ import annotations

import gc
import hashlib
import inspect
import json
import math
import time
import warnings
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ._errors import ArgumentError, NamedArguments
from ._latent import (
    latent_report,
    prompt_store,
    refused_by_prompt,
    verify_sample,
    with_prediction,
)
from ._outputs import check_output, file_sha256, write_atomic
from ._progress import RunDisplay
from ._version import __version__
from .audit import AuditReport, audit
from .checks import AuditThresholds
from .prompts.encoding import MAX_PROMPT_TOKENS
from .viz.style import display_name

__all__ = ["PHASES", "SPANS", "AuditRun", "ModelSpec", "audit_models"]

#: The phases of one run, in order.
PHASES = ("generate", "capture", "judge", "audit", "report")
#: The spans captured from one forward pass per batch.
SPANS = ("instruction", "post_instruction", "response_onset", "response")
_MANIFEST = "aqi-workdir.json"
_RUN_LOG = "runs.jsonl"
_ARTEFACTS = "artefacts.json"  # per model folder: each artefact's sha256, by the step that made it
_MODEL_SPECIFIC = ("revision", "gguf_file")  # options that name one checkpoint, not a setting


def load_options() -> tuple[str, ...]:
    """The keyword arguments of :func:`aqi.load_model` a :class:`ModelSpec` may carry."""
    from .loading import load_model

    return tuple(k for k in inspect.signature(load_model).parameters
                 if k not in ("name_or_path", "cache"))  # fmt: skip


def _load_defaults() -> dict[str, Any]:
    """:func:`aqi.load_model`'s defaults of the options a :class:`ModelSpec` may carry."""
    from .loading import load_model

    params = inspect.signature(load_model).parameters
    return {k: params[k].default for k in load_options()}


def normalised_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Loading options as compared and recorded: defaults left out, dtype names canonical.

    ``{"dtype": "auto"}`` (what the command line passes) and ``{}`` (a Python call) load
    the same model, so they are the same options.

    Examples
    --------
    >>> normalised_options({"dtype": "auto", "device": None}), normalised_options({"dtype": "bf16"})
    ({}, {'dtype': 'bfloat16'})
    """
    from .loading import dtype_name

    defaults = _load_defaults()
    out = {}
    for k, v in options.items():
        v = dtype_name(v) if k == "dtype" else v
        if k not in defaults or v != defaults[k]:
            out[k] = v
    return out


def _sha(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ModelSpec:
    """A model to load: its source and :func:`aqi.load_model`'s keyword arguments.

    ``source`` is a local folder, a hub id or ``"demo"`` (SmolLM2-135M-Instruct, the
    bundled GGUF file).

    Examples
    --------
    >>> ModelSpec("./ft", {"dtype": "bfloat16"}).options["dtype"]
    'bfloat16'
    >>> ModelSpec("./ft", {"dtipe": "bfloat16"})
    Traceback (most recent call last):
    ...
    ValueError: model option 'dtipe' is not an argument of aqi.load_model; expected one of ...
    """

    source: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise TypeError(f"a model source must be a non-empty str, got {self.source!r}")
        known = load_options()
        for k in self.options:
            if k not in known:
                raise ValueError(f"model option {k!r} is not an argument of aqi.load_model; "
                                 f"expected one of {', '.join(known)}")  # fmt: skip
        object.__setattr__(self, "options", normalised_options(self.options))

    def resolved(self) -> ModelSpec:
        """``"demo"`` as the folder and GGUF file it stands for; others as they are."""
        if self.source != "demo":
            return self
        from .demo import SMOLLM2_GGUF, SMOLLM2_PACKAGE, package_dir

        opts = {"dtype": "float32", "device": "cpu", **self.options, "gguf_file": SMOLLM2_GGUF}
        return ModelSpec(str(package_dir(SMOLLM2_PACKAGE)), opts)

    def load(self) -> tuple[Any, Any]:
        from .loading import load_model

        spec = self.resolved()
        return load_model(spec.source, **spec.options)

    @property
    def name(self) -> str:
        """The name people read: the GGUF file, the folder's name or the hub id's."""
        spec = self.resolved()
        gguf = spec.options.get("gguf_file")
        return display_name(str(Path(spec.source) / gguf) if gguf else spec.source)

    def identity(self) -> dict[str, Any]:
        """What identifies the weights without loading them (see the module docstring)."""
        spec = self.resolved()
        opts = {k: v for k, v in sorted(spec.options.items()) if v not in (None, False)}
        p = Path(spec.source)
        if p.exists():
            if p.is_dir():
                files = [f for f in sorted(p.rglob("*")) if f.is_file()
                         and not any(s.startswith(".") or s == "__pycache__"
                                     for s in f.relative_to(p).parts)]  # fmt: skip
            else:
                files = [p]
            stats = [(str(f.relative_to(p) if p.is_dir() else f.name), f.stat().st_size,
                      f.stat().st_mtime_ns) for f in files]  # fmt: skip
            return {"path": str(p.resolve()), "files_sha256": _sha(stats), "options": opts}
        return {"hub_id": spec.source, "commit": _cached_commit(spec), "options": opts}

    def key(self) -> str:
        """The model's folder name in the work folder: its name and a fingerprint."""
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name)[:48]
        return f"{slug}-{_sha(self.identity())[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "options": dict(self.options), "name": self.name}


def _cached_commit(spec: ModelSpec) -> str | None:
    """A hub id's commit in the local cache (``None`` when it is not there)."""
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(spec.source, revision=spec.options.get("revision"),
                                 local_files_only=True)  # fmt: skip
    except Exception:  # not cached, not a hub id: the load will say why
        return None
    return Path(path).name


@dataclass(frozen=True)
class PhaseRecord:
    """One phase of one model: ``status`` is ``"ran"`` or ``"reused"``."""

    phase: str
    role: str
    status: str
    seconds: float
    rows: int = 0


@dataclass(frozen=True)
class AuditRun:
    """What :func:`audit_models` did: the report, where it is, and each phase's time."""

    report: AuditReport
    html: Path
    json: Path
    workdir: Path
    phases: tuple[PhaseRecord, ...]
    seconds: float
    #: each role's :class:`aqi.behaviour.TokenUse` (tokens generated against the maximum)
    tokens: Mapping[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.report.verdict

    @property
    def reused(self) -> tuple[str, ...]:
        """``"<phase> <role>"`` of the phases whose work was already in the work folder."""
        return tuple(f"{p.phase} {p.role}" for p in self.phases if p.status == "reused")

    def summary(self) -> str:
        """The short table the command line prints."""
        from .tables import ci_text

        r = self.report
        latent = (" [LATENT: refusal predicted from activations, nothing generated for the "
                  "model]" if r.mode == "latent" else "")
        lines = [f"{display_name(r.model)} vs {display_name(r.baseline_model)}: {r.reason}"
                 f"{latent}"]
        for c in r.checks:
            value = f"{c.value:.3g}" if math.isfinite(c.value) else "—"
            limit = f"threshold {c.threshold:g}" if math.isfinite(c.threshold) else ""
            # a check that measures nothing (validity: the kind of audit) has no interval to
            # be "not computed"; one that measures and has none says so
            ci = ("" if not math.isfinite(c.value) and c.verdict == "pass"
                  else ci_text(c.ci_low, c.ci_high))
            lines.append(f"  [{c.verdict.upper():>4}] {c.name:<16} {value:>8} "
                         f"{ci:<20} {limit}".rstrip())
        if r.behaviour_change is not None:
            lines.append(f"  {len(r.flips)} prompt(s) changed behaviour (report: what changed)")
        if r.predicted is not None and r.mode == "full":
            p = r.predicted
            lines.append(f"  predicted refusal (latent, evidence): {p.refusal.value:.0%} "
                         f"[{p.refusal.ci_low:.0%}, {p.refusal.ci_high:.0%}], Δ "
                         f"{p.change.value:+.0%}")
        used = [u for u in self.tokens.values() if u.generated is not None and u.maximum]
        if any(u.early_stop for u in used):
            made, most = sum(u.generated for u in used), sum(u.maximum for u in used)
            lines.append(f"responses: {made:,} of {most:,} tokens ({1 - made / most:.0%} "
                         "saved by stopping each once its verdict was settled)")
        done = ", ".join(self.reused) or "nothing"
        lines.append(f"report: {self.html} (JSON: {self.json}); {self.seconds:.1f} s, "
                     f"reused: {done}")  # fmt: skip
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": self.report.to_dict(),
            "html": str(self.html),
            "json": str(self.json),
            "workdir": str(self.workdir),
            "seconds": self.seconds,
            "phases": [vars(p) for p in self.phases],
            "tokens": {role: use.to_dict() for role, use in self.tokens.items()},
        }


def _check_outputs(html: Path, work: Path, inputs: list[Any], overwrite: bool) -> None:
    """Refuse, before any model loads, a work folder or report path that cannot be written."""
    if work.exists() and not work.is_dir():
        raise NotADirectoryError(f"workdir {str(work)!r} is a file; give a folder (new, or "
                                 "an aqi audit work folder)")  # fmt: skip
    check_output(work / _MANIFEST, flag="workdir", ours=lambda p: True)  # writable folder
    if html.suffix.lower() == ".json":
        raise ValueError(f"report path {str(html)!r} ends in .json, where the JSON document "
                         "is written beside the HTML report; give an .html path")  # fmt: skip
    inside = [html, html.with_suffix(".json")]
    models = (work / "models").resolve()
    for path in inside:
        if models in path.resolve().parents:
            raise ValueError(f"report path {str(path)!r} is inside the work folder's models/ "
                             "(its responses and stores); choose another path")  # fmt: skip
        check_output(path, flag="report path" if path == html else "report JSON",
                     inputs=inputs, overwrite=overwrite)  # fmt: skip


def _check_workdir(workdir: Path, settings: dict[str, Any]) -> None:
    """Create the work folder's settings record, or refuse one made otherwise."""
    record = {"schema": "aqi-workdir", "aqi_version": __version__, "settings": settings}
    path = workdir / _MANIFEST
    if not path.is_file():
        if workdir.is_dir() and any(workdir.iterdir()):
            raise ValueError(f"workdir {str(workdir)!r} is not empty and is not an aqi audit "
                             "work folder; choose a new or empty folder")  # fmt: skip
        workdir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(record, indent=2, default=str) + "\n")
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise ValueError(f"{str(path)!r} is not valid JSON; delete the work folder") from None
    theirs = {"aqi_version": old.get("aqi_version"), **old.get("settings", {})}
    ours = {"aqi_version": __version__, **json.loads(json.dumps(settings, default=str))}
    differ = [f"{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here"
              for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]  # fmt: skip
    if differ:
        raise ValueError(f"workdir {str(workdir)!r} holds work made with other settings "
                         f"({'; '.join(differ)}); use another workdir or delete it")  # fmt: skip


def _responses_done(path: Path, prompts: Any, stop: Any) -> Any:
    """The finished responses at ``path`` for ``prompts``, stopped early by ``stop`` (an
    early-stop identity, ``None`` for none), else ``None``."""
    from .behaviour import load_responses

    if not path.is_file():
        return None
    try:
        rs = load_responses(path)
    except (ValueError, OSError):
        return None
    same = (rs.identity.get("prompts_sha256") == prompts.fingerprint()
            and rs.identity.get("stop_when_settled") == stop)  # fmt: skip
    return rs if same and set(rs.prompt_ids) == {p.id for p in prompts} else None


def _other_stop(path: Path, stop: Any) -> bool:
    """Whether the responses file at ``path`` (finished or not) was stopped otherwise than
    ``stop`` says: made without early stop, with it, or by another judge."""
    try:
        with path.open("rb") as f:
            identity = json.loads(f.readline())["identity"]
        return bool(identity.get("stop_when_settled") != stop)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # no file or no header: generation says what is wrong, if anything


def _store_done(path: Path) -> bool:
    from .activations import open_store

    if not path.is_file():
        return False
    try:
        with open_store(path) as s:
            return s.complete
    except (ValueError, OSError):
        return False



def _recorded(folder: Path) -> dict[str, Any]:
    """The content hashes recorded in ``folder/artefacts.json`` by the steps that made them."""
    path = folder / _ARTEFACTS
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, or not whole: nothing is recorded
        return {}
    return rec if isinstance(rec, dict) else {}


def _record(folder: Path, name: str, **entry: Any) -> None:
    """Record the content hash of ``folder/name`` (atomically: the record is whole or old)."""
    rec = {**_recorded(folder), name: {"sha256": file_sha256(folder / name), **entry}}
    write_atomic(folder / _ARTEFACTS, json.dumps(rec, indent=2, sort_keys=True) + "\n")


def _reusable(folder: Path, name: str, rebuild: bool, **expect: Any) -> bool:
    """Whether the finished artefact ``folder/name`` may be reused: its content hash is the
    one recorded by the step that made it (and ``expect``'s entries match the record).

    ``False`` (make it again): nothing recorded (made by an older aqi, or stopped between
    finishing and recording), an input it was made from has changed (``expect``), or a
    changed file with ``rebuild``. A changed file without ``rebuild`` is refused.
    """
    path = folder / name
    entry = _recorded(folder).get(name)
    if not isinstance(entry, dict) or any(entry.get(k) != v for k, v in expect.items()):
        return False
    actual = file_sha256(path)
    if actual == entry.get("sha256") or rebuild:
        return actual == entry.get("sha256")
    raise ValueError(
        f"{str(path)!r} changed since aqi made it (sha256 {actual[:12]}…, recorded "
        f"{str(entry.get('sha256'))[:12]}…): it was edited or damaged, and reusing it would "
        "give results that do not match the rest of the work folder; restore it, or run "
        "again with rebuild=True (aqi audit --rebuild) to make it again"
    )


def _load(spec: ModelSpec, role: str) -> tuple[Any, Any]:
    try:
        return spec.load()
    except (ValueError, FileNotFoundError, ImportError) as e:
        raise type(e)(f"loading the {role} model {spec.source!r}: {e}") from None


def _model_work(
    spec: ModelSpec, role: str, folder: Path, prompts: Any, settings: dict[str, Any],
    show: RunDisplay, log: list[PhaseRecord], progress: bool | None, rebuild: bool,
    limit: int | None, stop: Any,
) -> Any:  # fmt: skip
    """Generate and capture one model (each resumed, or reused once its content hash is
    verified: :func:`_reusable`); return its responses. ``stop`` is the judge that ends
    each response once its verdict is settled (``None``: every response runs to
    ``max_new_tokens``); responses stopped otherwise are generated again."""
    from .activations import capture
    from .behaviour import early_stop_identity, generate_responses, with_responses

    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "model.json", json.dumps({**spec.to_dict(),
                 "identity": spec.identity()}, indent=2, default=str))  # fmt: skip
    rs_path, store_path = folder / "responses.jsonl", folder / "store.h5"
    stop_id = early_stop_identity(stop)
    rs = _responses_done(rs_path, prompts, stop_id)
    redo_rs = rs is not None and not _reusable(folder, rs_path.name, rebuild)
    rs = None if redo_rs else rs
    redo_rs = redo_rs or _other_stop(rs_path, stop_id)
    model = tok = None
    t = time.perf_counter()
    with show.phase("generate", role, spec.name, len(prompts), reused=rs is not None):
        if rs is None:
            model, tok = _load(spec, role)
            rs = generate_responses(model, tok, prompts, rs_path, progress=progress,
                                    max_new_tokens=settings["max_new_tokens"],
                                    batch_size=settings["batch_size"], chat=settings["chat"],
                                    overwrite=redo_rs, max_prompt_tokens=limit,
                                    stop_when_settled=stop)  # fmt: skip
            _record(folder, rs_path.name)
            log.append(PhaseRecord("generate", role, "ran", time.perf_counter() - t, len(rs)))
        else:
            log.append(PhaseRecord("generate", role, "reused", time.perf_counter() - t, len(rs)))
    made_from = _recorded(folder)[rs_path.name]["sha256"]
    done = _store_done(store_path)
    redo_store = done and not _reusable(folder, store_path.name, rebuild, responses=made_from)
    need_store = redo_store or not done
    t = time.perf_counter()
    with show.phase("capture", role, spec.name, len(prompts), reused=not need_store):
        if need_store:
            if model is None:
                model, tok = _load(spec, role)
            rows = with_responses(prompts, rs, on_empty="drop")
            store = capture(model, tok, rows, store_path, layers=settings["layers"],
                            pooling=settings["capture_pooling"], spans=SPANS,
                            include_response=True,
                            batch_size=settings["batch_size"], chat=settings["chat"],
                            progress=progress, overwrite=redo_store,
                            max_prompt_tokens=limit)  # fmt: skip
            n = store.n_rows
            store.close()
            _record(folder, store_path.name, responses=made_from)
            log.append(PhaseRecord("capture", role, "ran", time.perf_counter() - t, n))
        else:
            log.append(PhaseRecord("capture", role, "reused", time.perf_counter() - t))
    del model, tok
    gc.collect()
    return rs


def audit_models(
    model: str | ModelSpec,
    baseline: str | ModelSpec,
    *,
    prompts: Any = None,
    workdir: str | Path = "aqi-audit",
    out: str | Path | None = None,
    layers: Any = "blocks",
    pooling: str = "mean",
    max_new_tokens: int | None = None,
    batch_size: int = 16,
    chat: bool | None = None,
    thresholds: AuditThresholds | Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    n_perm: int = 200,
    seed: int = 0,
    response_text: bool = True,
    progress: bool | None = None,
    judge: Any = None,
    labels: str | Path | None = None,
    overwrite: bool = False,
    rebuild: bool = False,
    max_prompt_tokens: int | None = MAX_PROMPT_TOKENS,
    generate: bool = True,
    verify: int = 0,
    early_stop: bool = False,
) -> AuditRun:
    """Audit ``model`` against ``baseline`` in one call: generate, capture, judge, audit, report.

    Parameters
    ----------
    model, baseline : str or ModelSpec
        The audited model (e.g. a fine-tune) and its reference (e.g. the base model): a
        local folder, a hub id, ``"demo"``, or a :class:`ModelSpec` carrying
        :func:`aqi.load_model`'s options (dtype, device, GGUF file, revision, 4-bit, …).
    prompts : PromptSet, path, or set names, optional
        Default the bundled prompt set. Names (``"harmbench+xstest-safe"``) go through
        :func:`aqi.load_prompt_set`. It needs safe and unsafe prompts.
    workdir : path, default "aqi-audit"
        The work folder (module docstring). Re-running resumes; another model against
        the same baseline reuses the baseline's responses and store.
    out : path, optional
        The HTML report (default ``<workdir>/reports/<model>-vs-<baseline>/report.html``);
        the JSON is written beside it.
    layers, pooling
        Captured layers (:func:`aqi.capture`) and the pooling captured and scored.
    max_new_tokens : int, optional
        Greedy tokens per response (default ``JUDGE_NEW_TOKENS``, what the judge was
        validated on).
    batch_size : int, default 16
        Prompts per generation and capture batch.
    chat : bool, optional
        Render with the chat template (default: when the tokenizer has one).
    thresholds, n_boot, n_perm, seed
        As in :func:`aqi.audit`.
    response_text : bool, default True
        Show the first line of each response in the report's *What changed* section
        (``False``: ids, categories and prompt texts only, in the HTML and the JSON).
    progress : bool, optional
        The run's progress display (default: on a terminal outside CI).
    judge : judge or judge name, optional
        The refusal judge (:func:`aqi.resolve_judge`: ``"default"``, ``"rules"``,
        ``"hf:…"``, ``"module:function"`` or a judge object; default ``[tool.aqi] judge``
        of the current project, else the phrase rules, :class:`aqi.RefusalJudge`). Resolved
        before any model loads; both models are judged by it on every run (judging is not reused).
    labels : path, optional
        A person's labels of a sample of both models' responses, written with
        ``aqi label`` for this judge: ``refusal_change`` decides on the
        prediction-powered interval that carries the judge's error (docs/judge.md).
    overwrite : bool, default False
        Replace an existing ``out`` (or the JSON beside it) that aqi did not write. Checked
        before any model loads (:func:`aqi._outputs.check_output`), as is every other
        reason the report could not be written.
    rebuild : bool, default False
        Make again a reused artefact of the work folder (responses, store) whose content
        no longer matches the hash recorded when it was made; without it such a file is
        refused, naming it.
    max_prompt_tokens : int or None, default MAX_PROMPT_TOKENS (4096)
        The per-prompt token limit of generation and capture (:func:`aqi.capture`): a
        longer prompt is refused, naming it and the limit, before any forward pass.
    generate : bool, default True
        ``False``: a **latent** audit (``aqi audit --latent-only``). The audited model
        generates nothing: its prompts are captured (one forward pass per batch) and its
        refusal is *predicted* from the baseline's refusal direction and the baseline's
        judged responses (:func:`aqi.probes.predicted_refusal`; the baseline is generated
        and judged once, or reused from the work folder). The one check,
        ``predicted_refusal``, decides; the report and JSON say ``mode: latent``.
    verify : int, default 0
        With ``generate=False``: generate and judge about this many unsafe prompts of the
        audited model, drawn where the prediction is least certain, and decide on the
        active-inference interval that stays valid when the prediction is biased
        (:func:`aqi.probes.verified_refusal`).
    early_stop : bool, default False
        Stop each response as soon as the judge's verdict on it can no longer change
        (``stop_when_settled`` of :func:`aqi.generate_responses`; the judge's labels are
        those of the full-length responses). Only a judge with ``settled(text)`` stops
        early (the phrase rules, :meth:`aqi.RefusalJudge.settled`). Off by default: it
        saves tokens (about half for a model that refuses) but no decoding time yet, and
        the response span captured and scored becomes the shorter response, which is not
        what the validation bench measured. Responses made with another early stop (or
        none) are generated again. CLI: ``--early-stop``.

    Returns
    -------
    AuditRun
        ``run.report`` (an :class:`aqi.AuditReport`), ``run.html`` / ``run.json``, the
        time and status (``"ran"`` / ``"reused"``) of each phase, and ``run.tokens``:
        each model's tokens generated against the maximum
        (:class:`aqi.behaviour.TokenUse`, also in the run log).

    Examples
    --------
    >>> import aqi
    >>> aqi.audit_models("./ft", "./ft")
    Traceback (most recent call last):
    ...
    ValueError: model and baseline are the same model ('./ft'); audit a fine-tune against ...
    """
    from ._vocab import check_poolings
    from .activations import bundled_prompts, load_prompts
    from .behaviour import (
        JUDGE_NEW_TOKENS,
        can_stop_early,
        judge_identity,
        refusal_rate,
        resolve_judge,
    )
    from .checks import configured_judge
    from .loading import check_hub_model, check_model_source
    from .prompts.public_sets import is_set_selection, load_prompt_set, require_both_classes
    from .report import write_html, write_json

    t0 = time.perf_counter()
    if not isinstance(generate, bool):
        raise ArgumentError("{generate}; expected True (generate and judge) or False (a "
                            "latent audit)", generate=generate)
    if isinstance(verify, bool) or not isinstance(verify, int) or verify < 0:
        raise ArgumentError("{verify}; expected a whole number of prompts >= 0", verify=verify)
    if verify and generate:
        raise ArgumentError("{verify} checks a latent prediction: it needs {generate} (the "
                            "full audit judges every response already)", verify=verify,
                            generate=False)
    if labels is not None and not generate:
        raise ArgumentError("{labels} label generated responses; a latent audit "
                            "({generate}) has none of the audited model", labels=str(labels),
                            generate=False)
    if not isinstance(early_stop, bool):
        raise TypeError(f"early_stop must be True or False, got {early_stop!r}")
    judge = resolve_judge(configured_judge() if judge is None else judge)
    stop = judge if early_stop and can_stop_early(judge) else None
    if labels is not None and not Path(labels).is_file():
        raise FileNotFoundError(f"labels={str(labels)!r}: no such file (write one with "
                                "`aqi label`)")  # fmt: skip
    specs = {r: m if isinstance(m, ModelSpec) else ModelSpec(str(m)) if isinstance(m, (str, Path))
             else None for r, m in (("audited", model), ("baseline", baseline))}  # fmt: skip
    for role, s in specs.items():
        if s is None:
            raise TypeError(f"{'model' if role == 'audited' else 'baseline'} must be a path, hub "
                            f"id or aqi.ModelSpec, got {type(model).__name__}")  # fmt: skip
    a, b = specs["audited"], specs["baseline"]
    if _same_source(a, b):
        raise ValueError(f"model and baseline are the same model ({a.source!r}); audit a "
                         "fine-tune against the model it was tuned from")  # fmt: skip
    for arg, spec in (("model", a.resolved()), ("baseline", b.resolved())):
        try:  # both, before the first model loads (no transformers: well under a second)
            check_model_source(spec.source, gguf_file=spec.options.get("gguf_file"),
                               argument=arg)  # fmt: skip
        except NamedArguments:
            raise
        except (OSError, ValueError) as e:
            raise type(e)(f"{arg}: {e}") from None
        if not Path(spec.source).exists() and _cached_commit(spec) is None:
            try:  # a hub id not in the cache: reachable? (before the other model's work)
                check_hub_model(spec.source, revision=spec.options.get("revision"),
                                trust_remote_code=bool(spec.options.get("trust_remote_code")))
            except (OSError, ValueError) as e:
                raise type(e)(f"{arg}: {e}") from None
    prompt_file = prompts if isinstance(prompts, (str, Path)) and Path(prompts).is_file() else None
    if isinstance(prompts, str) and not Path(prompts).exists() and is_set_selection(prompts):
        prompts = load_prompt_set(prompts)
    prompts = bundled_prompts() if prompts is None else load_prompts(prompts)
    require_both_classes(prompts, argument="prompts")
    n_unsafe = sum(p.is_unsafe for p in prompts)
    if verify > n_unsafe:
        raise ArgumentError(f"{{verify}}: the prompt set has {n_unsafe} unsafe prompts; "
                            f"expected at most {n_unsafe}", verify=verify)
    scored = check_poolings(pooling)
    settings = {
        "prompts": {"name": prompts.name, "n": len(prompts), "sha256": prompts.fingerprint()},
        "max_new_tokens": JUDGE_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
        "batch_size": batch_size, "chat": chat, "layers": layers,
        "pooling": scored, "spans": list(SPANS),
        # the decision point is read at the last prompt token, whatever is scored
        "capture_pooling": list(dict.fromkeys([*scored, "last"])),
    }  # fmt: skip
    work = Path(workdir)
    html = (Path(out) if out is not None
            else work / "reports" / f"{a.key()}-vs-{b.key()}" / "report.html")  # fmt: skip
    _check_outputs(html, work, [prompt_file, a.source, b.source], overwrite)
    _check_workdir(work, settings)
    # generate, capture and judge per model (latent: the baseline only); audit; report
    show = RunDisplay("aqi audit", 8 if generate else 6 + bool(verify), progress)
    log: list[PhaseRecord] = []
    folders = {r: work / "models" / s.key() for r, s in specs.items()}
    roles = ("audited", "baseline") if generate else ("baseline",)
    responses = {r: _model_work(specs[r], r, folders[r], prompts, settings, show, log, progress,
                                rebuild, max_prompt_tokens, stop) for r in roles}  # fmt: skip
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
    t0_audit = time.perf_counter()
    if generate:
        report, n_rows = _full_audit(folders, specs, responses, refused["baseline"], settings,
                                     show, thresholds=thresholds, n_boot=n_boot, n_perm=n_perm,
                                     seed=seed, judge=judge, labels=labels)  # fmt: skip
    else:
        report, n_rows = _latent_audit(folders, specs, prompts, refused["baseline"], settings,
                                       show, log, thresholds=thresholds, n_boot=n_boot,
                                       seed=seed, judge=judge, verify=verify, progress=progress,
                                       rebuild=rebuild, limit=max_prompt_tokens)  # fmt: skip
    report = replace(report, model=a.name, baseline_model=b.name)
    if not response_text:
        report = replace(report, flips=tuple(f.without_text() for f in report.flips))
    log.append(PhaseRecord("audit", "audited", "ran", time.perf_counter() - t0_audit, n_rows))
    t = time.perf_counter()
    with show.phase("report", "audited", a.name, len(report.flips)):
        write_html(report, html, overwrite=overwrite)
        js = write_json(report, html.with_suffix(".json"), overwrite=overwrite)
    log.append(PhaseRecord("report", "audited", "ran", time.perf_counter() - t))
    tokens = {role: rs.token_use() for role, rs in responses.items()}
    run = AuditRun(report=report, html=html, json=js, workdir=work, phases=tuple(log),
                   seconds=time.perf_counter() - t0, tokens=tokens)  # fmt: skip
    entry = {"model": a.name, "baseline_model": b.name, "verdict": report.verdict,
             "html": str(html), "seconds": run.seconds, "aqi_version": __version__,
             "judge": judge_identity(judge), "mode": report.mode,
             "phases": [vars(p) for p in log],
             "tokens": {role: {"model": specs[role].name, **use.to_dict()}
                        for role, use in tokens.items()}}  # fmt: skip
    with (work / _RUN_LOG).open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    return run


def _full_audit(
    folders: dict[str, Path], specs: dict[str, ModelSpec], responses: dict[str, Any],
    refused: dict[str, bool | None], settings: dict[str, Any], show: RunDisplay, *,
    thresholds: Any, n_boot: int, n_perm: int, seed: int, judge: Any, labels: Any,
) -> tuple[AuditReport, int]:  # fmt: skip
    """:func:`aqi.audit` of the two full stores, with the predicted refusal beside it."""
    from .activations import open_store

    a, b = specs["audited"], specs["baseline"]
    with show.phase("audit", "audited", a.name, len(responses["audited"])), ExitStack() as stack:
        store = stack.enter_context(open_store(folders["audited"] / "store.h5", span="response"))
        base = stack.enter_context(open_store(folders["baseline"] / "store.h5", span="response"))
        notes = _pair_notes(store, base, a, b)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pairing by id keeps")  # said in a note
            report = audit(store, baseline=base, responses=responses["audited"],
                           baseline_responses=responses["baseline"], thresholds=thresholds,
                           pooling=settings["pooling"][0], n_boot=n_boot, n_perm=n_perm,
                           seed=seed, judge=judge, labels=labels)  # fmt: skip
            report = with_prediction(report, store.with_span("post_instruction"),
                                     base.with_span("post_instruction"), refused,
                                     n_boot=n_boot, seed=seed)  # fmt: skip
        return replace(report, notes=(*report.notes, *notes)), store.n_rows


def _latent_audit(
    folders: dict[str, Path], specs: dict[str, ModelSpec], prompts: Any,
    refused: dict[str, bool | None], settings: dict[str, Any], show: RunDisplay,
    log: list[PhaseRecord], *, thresholds: Any, n_boot: int, seed: int, judge: Any,
    verify: int, progress: bool | None, rebuild: bool, limit: int | None,
) -> tuple[AuditReport, int]:  # fmt: skip
    """Capture the audited model's prompts (no generation) and predict its refusal."""
    from .activations import open_store
    from .probes import predicted_refusal

    a, b = specs["audited"], specs["baseline"]
    folder = folders["audited"]
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "model.json", json.dumps({**a.to_dict(), "identity": a.identity()},
                                                   indent=2, default=str))  # fmt: skip
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


def _same_source(a: ModelSpec, b: ModelSpec) -> bool:
    ra, rb = a.resolved(), b.resolved()
    pa, pb = Path(ra.source), Path(rb.source)
    same = pa.resolve() == pb.resolve() if pa.exists() and pb.exists() else ra.source == rb.source
    return same and all(ra.options.get(k) == rb.options.get(k) for k in _MODEL_SPECIFIC)


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
