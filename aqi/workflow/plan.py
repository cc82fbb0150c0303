"""The plan of one audit run: check every argument before any model loads, resolve the
prompts once, then generate, capture and judge per model, audit, report and log the run."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._errors import ArgumentError, NamedArguments
from .._progress import RunDisplay
from .._version import __version__
from ..checks import AuditThresholds
from ..prompts.encoding import MAX_PROMPT_TOKENS
from .records import AuditRun, PhaseRecord
from .spec import ModelSpec, _cached_commit, _same_source
from .steps import SPANS, _full_audit, _judge_step, _latent_audit, _model_work
from .workdir import _RUN_LOG, _check_outputs, _check_workdir

#: The phases of one run, in order.
PHASES = ("generate", "capture", "judge", "audit", "report")


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
    from ..behaviour import can_stop_early, resolve_judge
    from ..checks import configured_judge

    t0 = time.perf_counter()
    _check_mode(generate, verify, labels, early_stop)
    judge = resolve_judge(configured_judge() if judge is None else judge)
    stop = judge if early_stop and can_stop_early(judge) else None
    if labels is not None and not Path(labels).is_file():
        raise FileNotFoundError(f"labels={str(labels)!r}: no such file (write one with "
                                "`aqi label`)")  # fmt: skip
    specs = _model_specs(model, baseline)
    a, b = specs["audited"], specs["baseline"]
    _check_sources(a, b)
    prompt_file, prompts = _resolve_prompts(prompts, verify)
    settings = _settings(prompts, layers=layers, pooling=pooling, max_new_tokens=max_new_tokens,
                         batch_size=batch_size, chat=chat)  # fmt: skip
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
    refused = _judge_step(responses, specs, folders, judge, show, log)
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
    js = _report_step(report, html, show, log, overwrite=overwrite)
    tokens = {role: rs.token_use() for role, rs in responses.items()}
    run = AuditRun(report=report, html=html, json=js, workdir=work, phases=tuple(log),
                   seconds=time.perf_counter() - t0, tokens=tokens)  # fmt: skip
    _log_run(run, specs, judge)
    return run


def _check_mode(generate: Any, verify: Any, labels: Any, early_stop: Any) -> None:
    """Refuse a mode (full or latent) and its options that do not go together."""
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


def _settings(
    prompts: Any, *, layers: Any, pooling: str, max_new_tokens: int | None, batch_size: int,
    chat: bool | None,
) -> dict[str, Any]:  # fmt: skip
    """The work folder's settings: what generation and capture of every model share."""
    from .._vocab import check_poolings
    from ..behaviour import JUDGE_NEW_TOKENS

    scored = check_poolings(pooling)
    return {
        "prompts": {"name": prompts.name, "n": len(prompts), "sha256": prompts.fingerprint()},
        "max_new_tokens": JUDGE_NEW_TOKENS if max_new_tokens is None else max_new_tokens,
        "batch_size": batch_size, "chat": chat, "layers": layers,
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
