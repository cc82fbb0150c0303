"""The plan of one audit run: check every argument before any model loads, resolve the
prompts once, then generate, capture and judge per model, audit, report and log the run."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._errors import ArgumentError, NamedArguments
from .._progress import RunDisplay
from .._settings import moved_keywords, settings_value
from .._version import __version__
from ..audit_values import Judging, Scoring
from .records import AuditRun, PhaseRecord
from .running import Running
from .spec import ModelSpec, _cached_commit, _same_source
from .steps import SPANS, _full_audit, _judge_step, _latent_audit, _model_work
from .workdir import _RUN_LOG, _check_outputs, _check_workdir

#: The phases of one run, in order.
PHASES = ("generate", "capture", "judge", "audit", "report")

#: The keyword arguments of :func:`audit_models` that became fields of its settings
#: values (accepted with a ``DeprecationWarning`` until v0.4).
_MOVED: dict[str, tuple[type, tuple[str, ...]]] = {
    "scoring": (Scoring, ("layers", "pooling", "n_boot", "n_perm", "seed", "thresholds")),
    "judging": (Judging, ("judge", "labels", "generate", "verify", "early_stop")),
    "running": (Running, ("batch_size", "chat", "max_new_tokens", "max_prompt_tokens",
                          "progress", "overwrite", "rebuild", "response_text")),
}  # fmt: skip


@moved_keywords(_MOVED)
def audit_models(
    model: str | ModelSpec,
    baseline: str | ModelSpec,
    *,
    prompts: Any = None,
    workdir: str | Path = "aqi-audit",
    out: str | Path | None = None,
    scoring: Scoring | None = None,
    judging: Judging | None = None,
    running: Running | None = None,
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
    scoring : Scoring, optional
        Layers captured and scored (default ``"blocks"``), pooling (default ``"mean"``),
        resamples, seed, thresholds (:class:`aqi.Scoring`).
    judging : Judging, optional
        The judge (both models are judged by it on every run), a person's labels, or a
        **latent** audit (``generate=False``, ``verify=``: :class:`aqi.Judging`).
    running : Running, optional
        Batches, rendering, lengths, progress, what may be replaced (:class:`aqi.Running`).

    Returns
    -------
    AuditRun
        ``run.report`` (:class:`aqi.AuditReport`), ``run.html`` / ``run.json``, each
        phase's time and status (``"ran"`` / ``"reused"``), ``run.tokens``: each model's
        tokens generated against the maximum (:class:`aqi.behaviour.TokenUse`).

    Examples
    --------
    >>> import aqi
    >>> aqi.audit_models("./ft", "./ft")
    Traceback (most recent call last):
    ...
    ValueError: model and baseline are the same model ('./ft'); audit a fine-tune against ...
    """
    t0 = time.perf_counter()
    sc, jd, rn = (settings_value(name, v, kind) for name, v, kind in (
        ("scoring", scoring, Scoring), ("judging", judging, Judging),
        ("running", running, Running)))  # fmt: skip
    judge, stop = _judge(jd)
    specs, prompts, settings, work, html = _prepare(model, baseline, prompts, workdir, out,
                                                    sc, jd, rn)  # fmt: skip
    a, b = specs["audited"], specs["baseline"]
    show = RunDisplay("aqi audit", 8 if jd.generate else 6 + bool(jd.verify), rn.progress)
    log: list[PhaseRecord] = []
    folders = {r: work / "models" / s.key() for r, s in specs.items()}
    roles = ("audited", "baseline") if jd.generate else ("baseline",)  # latent: the baseline
    responses = {r: _model_work(specs[r], r, folders[r], prompts, settings, show, log,
                                rn.progress, rn.rebuild, rn.max_prompt_tokens, stop)
                 for r in roles}  # fmt: skip
    refused = _judge_step(responses, specs, folders, judge, show, log)
    t0_audit = time.perf_counter()
    report, n_rows = _audit_step(folders, specs, prompts, responses, refused, settings, show,
                                 log, sc, replace(jd, judge=judge), rn)  # fmt: skip
    report = replace(report, model=a.name, baseline_model=b.name, flips=report.flips
                     if rn.response_text else tuple(f.without_text() for f in report.flips))
    log.append(PhaseRecord("audit", "audited", "ran", time.perf_counter() - t0_audit, n_rows))
    js = _report_step(report, html, show, log, overwrite=rn.overwrite)
    run = AuditRun(report=report, html=html, json=js, workdir=work, phases=tuple(log),
                   seconds=time.perf_counter() - t0,
                   tokens={role: rs.token_use() for role, rs in responses.items()})
    _log_run(run, specs, judge)
    return run


def _prepare(
    model: Any, baseline: Any, prompts: Any, workdir: Any, out: Any, sc: Scoring, jd: Judging,
    rn: Running,
) -> tuple[dict[str, ModelSpec], Any, dict[str, Any], Path, Path]:  # fmt: skip
    """Everything checked before any model loads: the two models (found, not the same), the
    prompts (resolved once), the work folder's settings, the report's path (writable, not
    an input). The specs, the prompt set, the settings, the work folder and the HTML path."""
    specs = _model_specs(model, baseline)
    a, b = specs["audited"], specs["baseline"]
    _check_sources(a, b)
    prompt_file, prompt_set = _resolve_prompts(prompts, jd.verify)
    settings = _settings(prompt_set, sc, rn)
    work = Path(workdir)
    html = (Path(out) if out is not None
            else work / "reports" / f"{a.key()}-vs-{b.key()}" / "report.html")  # fmt: skip
    _check_outputs(html, work, [prompt_file, a.source, b.source], rn.overwrite)
    _check_workdir(work, settings)
    return specs, prompt_set, settings, work, html


def _judge(jd: Judging) -> tuple[Any, Any]:
    """The resolved judge (``[tool.aqi] judge`` when none is given) and the judge that stops
    generation early (``None`` unless ``early_stop`` and the judge can); a labels file must
    exist."""
    from ..behaviour import can_stop_early, resolve_judge
    from ..checks import configured_judge

    judge = resolve_judge(configured_judge() if jd.judge is None else jd.judge)
    if jd.labels is not None and not Path(jd.labels).is_file():
        raise FileNotFoundError(f"labels={str(jd.labels)!r}: no such file (write one with "
                                "`aqi label`)")  # fmt: skip
    return judge, judge if jd.early_stop and can_stop_early(judge) else None


def _audit_step(
    folders: dict[str, Path], specs: dict[str, ModelSpec], prompts: Any,
    responses: dict[str, Any], refused: dict[str, Any], settings: dict[str, Any],
    show: RunDisplay, log: list[PhaseRecord], sc: Scoring, jd: Judging, rn: Running,
) -> tuple[Any, int]:  # fmt: skip
    """The full audit of both stores, or the latent audit of the audited model's prompts."""
    if jd.generate:
        return _full_audit(folders, specs, responses, refused["baseline"], settings, show,
                           scoring=sc, judging=jd)  # fmt: skip
    return _latent_audit(folders, specs, prompts, refused["baseline"], settings, show, log,
                         thresholds=sc.thresholds, n_boot=sc.n_boot, seed=sc.seed,
                         judge=jd.judge, verify=jd.verify, progress=rn.progress,
                         rebuild=rn.rebuild, limit=rn.max_prompt_tokens)  # fmt: skip


def _model_specs(model: Any, baseline: Any) -> dict[str, ModelSpec]:
    """The audited and baseline models as :class:`ModelSpec`; refuse the same model twice."""
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
    return {r: s for r, s in specs.items() if s is not None}


def _check_sources(a: ModelSpec, b: ModelSpec) -> None:
    """Check both models can be found (a folder, a GGUF file, a reachable hub id) before the
    first one loads (no transformers: well under a second)."""
    from ..loading import check_hub_model, check_model_source

    for arg, spec in (("model", a.resolved()), ("baseline", b.resolved())):
        try:
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


def _resolve_prompts(prompts: Any, verify: int) -> tuple[Any, Any]:
    """The prompt file given (``None`` for none: checked as an input of the report) and the
    :class:`aqi.PromptSet` (set names, a file, a set, or the bundled set); it needs both
    classes, and ``verify`` at most its unsafe prompts."""
    from ..prompts.resolve import resolve_prompts

    prompt_file = prompts if isinstance(prompts, (str, Path)) and Path(prompts).is_file() else None
    prompts = resolve_prompts(prompts, both_classes=True)
    n_unsafe = sum(p.is_unsafe for p in prompts)
    if verify > n_unsafe:
        raise ArgumentError(f"{{verify}}: the prompt set has {n_unsafe} unsafe prompts; "
                            f"expected at most {n_unsafe}", verify=verify)
    return prompt_file, prompts


def _settings(prompts: Any, sc: Scoring, rn: Running) -> dict[str, Any]:
    """The work folder's settings: what generation and capture of every model share."""
    from .._vocab import check_poolings
    from ..behaviour import JUDGE_NEW_TOKENS

    scored = check_poolings("mean" if sc.pooling is None else sc.pooling)
    return {
        "prompts": {"name": prompts.name, "n": len(prompts), "sha256": prompts.fingerprint()},
        "max_new_tokens": JUDGE_NEW_TOKENS if rn.max_new_tokens is None else rn.max_new_tokens,
        "batch_size": rn.batch_size, "chat": rn.chat,
        "layers": "blocks" if sc.layers is None else sc.layers,
        "pooling": scored, "spans": list(SPANS),
        # the decision point is read at the last prompt token, whatever is scored
        "capture_pooling": list(dict.fromkeys([*scored, "last"])),
    }  # fmt: skip


def _report_step(report: Any, html: Path, show: RunDisplay, log: list[PhaseRecord], *,
                 overwrite: bool) -> Path:  # fmt: skip
    """Write the HTML report and the JSON beside it; the JSON's path."""
    from ..report import write_html, write_json

    t = time.perf_counter()
    with show.phase("report", "audited", report.model, len(report.flips)):
        write_html(report, html, overwrite=overwrite)
        js = write_json(report, html.with_suffix(".json"), overwrite=overwrite)
    log.append(PhaseRecord("report", "audited", "ran", time.perf_counter() - t))
    return js


def _log_run(run: AuditRun, specs: dict[str, ModelSpec], judge: Any) -> None:
    """Append the run's line to ``<workdir>/runs.jsonl`` (see the module docstring)."""
    from ..behaviour import judge_identity

    report = run.report
    entry = {"model": report.model, "baseline_model": report.baseline_model,
             "verdict": report.verdict, "html": str(run.html), "seconds": run.seconds,
             "aqi_version": __version__, "judge": judge_identity(judge), "mode": report.mode,
             "phases": [vars(p) for p in run.phases],
             "tokens": {role: {"model": specs[role].name, **use.to_dict()}
                        for role, use in run.tokens.items()}}  # fmt: skip
    with (run.workdir / _RUN_LOG).open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, default=str) + "\n")
