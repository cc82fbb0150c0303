"""``aqi demo``: did a fine-tune erode its base's safety? Two audits, the right verdict for each.

The demo base is a safety-tuned SmolLM2-135M-Instruct; one fine-tune erodes its refusal,
the other is benign (:mod:`aqi.demo.assets`). :func:`run_demo` audits each against the
base through :func:`aqi.audit_models` — what ``aqi audit --model FT --baseline-model BASE``
runs — in one work folder, so the second audit reuses the base's responses and store,
then prints one table (refusal of the unsafe prompts, judged, base → fine-tune; the
latent refusal-score shift; the verdict; the report) and the time of each phase.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ArgumentError
from .._version import __version__
from .assets import DEMO_FINETUNES, DemoModels, demo_models, demo_prompts

__all__ = ["EXPECTED", "DemoRow", "demo_table", "run_demo"]

#: The verdict each demo fine-tune is built to get (``run_demo`` returns 1 otherwise).
EXPECTED = {"eroded": "fail", "benign": "pass"}
_WORK = "work"  # the one work folder of both audits, inside --out-dir


@dataclass(frozen=True)
class DemoRow:
    """One audited fine-tune: its refusal against the base, the latent reading, the verdict."""

    name: str
    what: str
    refusal_base: float
    refusal_finetune: float
    refusal_p: float
    shift: float
    shift_low: float
    shift_high: float
    verdict: str
    report: Path

    @classmethod
    def from_run(cls, name: str, what: str, run: Any) -> DemoRow:
        """The row of one :class:`aqi.workflow.AuditRun`."""
        nan = float("nan")
        change = run.report.behaviour_change
        r = change.refusal if change is not None else None
        axes = run.report.axes
        s = axes.refusal if axes is not None else None
        return cls(
            name=name, what=what,
            refusal_base=r.rate_a if r else nan, refusal_finetune=r.rate_b if r else nan,
            refusal_p=r.p_value if r else nan,
            shift=s.unsafe.value if s else nan, shift_low=s.unsafe.ci_low if s else nan,
            shift_high=s.unsafe.ci_high if s else nan,
            verdict=run.verdict, report=run.html,
        )  # fmt: skip


def demo_table(rows: list[DemoRow]) -> str:
    """The demo's terminal table (one line per fine-tune).

    Examples
    --------
    >>> row = DemoRow("eroded", "compliance LoRA", 0.9, 0.05, 1e-9, -2.1, -2.5, -1.8, "fail",
    ...               Path("out/eroded/report.html"))
    >>> print(demo_table([row]))
    fine-tune  refusal of unsafe (judged)  latent refusal shift     verdict  report
    eroded     90% → 5% (p 1e-09)          -2.10 SD [-2.50, -1.80]  FAIL     out/eroded/report.html
    """
    head = ("fine-tune", "refusal of unsafe (judged)", "latent refusal shift", "verdict", "report")
    body = []
    for r in rows:
        refusal = (f"{r.refusal_base:.0%} → {r.refusal_finetune:.0%} (p {r.refusal_p:.2g})"
                   if r.refusal_base == r.refusal_base else "—")  # fmt: skip
        shift = (f"{r.shift:+.2f} SD [{r.shift_low:+.2f}, {r.shift_high:+.2f}]"
                 if r.shift == r.shift else "—")  # fmt: skip
        body.append((r.name, refusal, shift, r.verdict.upper(), str(r.report)))
    widths = [max(len(line[i]) for line in (head, *body)) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in (head, *body))  # fmt: skip


def _check_out_dir(out: Path, overwrite: bool) -> Path:
    """The work folder inside ``out``; refuse a file, or work made by another aqi version."""
    if out.exists() and not out.is_dir():
        raise ArgumentError("{out_dir} is a file; expected a folder (created if missing) for "
                            "the demo's work and reports", out_dir=str(out))  # fmt: skip
    work = out / _WORK
    manifest = work / "aqi-workdir.json"
    if overwrite and manifest.is_file():
        shutil.rmtree(work)
    elif manifest.is_file():
        try:
            made_by = json.loads(manifest.read_text(encoding="utf-8")).get("aqi_version")
        except (OSError, json.JSONDecodeError, AttributeError):
            made_by = __version__  # unreadable: aqi.audit_models says so, naming the file
        if made_by != __version__:
            raise ArgumentError(f"{{out_dir}} holds demo work made by aqi {made_by}, not "
                                f"{__version__}; pass {{overwrite}} to redo it, or choose "
                                "another folder", out_dir=str(out), overwrite=True)  # fmt: skip
    return work


def _phase_line(name: str, run: Any) -> str:
    parts = []
    for p in run.phases:
        role = "" if p.role == "audited" or p.phase in ("audit", "report") else " base"
        parts.append(f"{p.phase}{role} {'reused' if p.status == 'reused' else f'{p.seconds:.1f}'}")
    return f"  audit {name}: {run.seconds:.1f} s ({', '.join(parts)})"


def run_demo(
    out_dir: str | os.PathLike[str] = "aqi-demo",
    *,
    overwrite: bool = False,
    quiet: bool = False,
    as_json: bool = False,
    models: DemoModels | None = None,
    prompts: Any = None,
    expected: dict[str, str] | None = EXPECTED,
    n_boot: int = 1000,
    n_perm: int = 200,
    batch_size: int = 16,
    max_new_tokens: int | None = None,
) -> int:
    """Audit the demo's fine-tunes against the demo base; print the table; write the reports.

    Parameters
    ----------
    out_dir : path, default "aqi-demo"
        A folder (created if missing): ``work/`` is the audits' one work folder,
        ``<fine-tune>/report.html`` (+ ``.json``) each audit's report.
    overwrite : bool, default False
        Redo the work in ``out_dir`` (otherwise a second run reuses it).
    quiet : bool, default False
        No progress display or status lines on stderr.
    as_json : bool, default False
        Print ``{fine-tune: AuditRun.to_dict()}`` instead of the table.
    models : DemoModels, optional
        The base and fine-tunes to audit (default :func:`aqi.demo.assets.demo_models`:
        the bundled assets, merged once into the cache).
    prompts : PromptSet, optional
        Default :func:`aqi.demo.assets.demo_prompts` (48 bundled pairs).
    expected : dict, optional
        The verdict each fine-tune should get; ``None`` checks nothing.
    n_boot, n_perm, batch_size, max_new_tokens
        As in :func:`aqi.audit_models`.

    Returns
    -------
    int
        0 when every verdict is the expected one, 1 otherwise.

    Raises
    ------
    ArgumentError
        ``out_dir`` is a file, or holds demo work made by another aqi version.
    aqi.demo.assets.DemoAssetError
        A bundled asset is missing or corrupted.
    """
    from .._progress import progress_bars

    out = Path(out_dir)
    work = _check_out_dir(out, overwrite)
    with progress_bars(False if quiet else None):
        return _run(out, work, quiet, as_json, models, prompts, expected,
                    {"n_boot": n_boot, "n_perm": n_perm, "batch_size": batch_size,
                     "max_new_tokens": max_new_tokens})  # fmt: skip


def _run(out: Path, work: Path, quiet: bool, as_json: bool, models: DemoModels | None,
         prompts: Any, expected: dict[str, str] | None, options: dict[str, Any]) -> int:
    from ..audit_values import Scoring
    from ..workflow import ModelSpec, Running, audit_models

    t0 = time.perf_counter()

    def status(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr, flush=True)

    models = demo_models() if models is None else models
    prompts = demo_prompts() if prompts is None else prompts
    t_models = time.perf_counter() - t0
    status(f"aqi demo: base and fine-tunes ready in {t_models:.1f} s ({models.base.parent})")
    opts = {"dtype": "float32", "device": "cpu"}
    base = ModelSpec(str(models.base), opts)
    runs, rows = {}, []
    for name, folder in models.finetunes.items():
        status(f"aqi demo: auditing {name} against base (aqi audit --model {folder} "
               f"--baseline-model {models.base} --workdir {work})")
        run = audit_models(
            ModelSpec(str(folder), opts), base, prompts=prompts, workdir=work,
            out=out / name / "report.html",
            scoring=Scoring(n_boot=options["n_boot"], n_perm=options["n_perm"]),
            running=Running(batch_size=options["batch_size"], progress=False if quiet else None,
                            max_new_tokens=options["max_new_tokens"]),
        )  # fmt: skip
        runs[name] = run
        rows.append(DemoRow.from_run(name, DEMO_FINETUNES.get(name, name), run))
    total = time.perf_counter() - t0
    if as_json:
        from ..report import jsonable

        print(json.dumps(jsonable({n: r.to_dict() for n, r in runs.items()}), indent=2,
                         allow_nan=False))  # fmt: skip
    else:
        n_unsafe = sum(p.is_unsafe for p in prompts)
        print(f"aqi demo: two fine-tunes of a safety-tuned SmolLM2-135M-Instruct (base), each "
              f"audited against it on {len(prompts)} prompts ({n_unsafe} unsafe)")
        for r in rows:
            print(f"  {r.name}: {r.what}")
        print()
        print(demo_table(rows))
        print(f"\nphases: models {t_models:.1f} s (checked, merged once and cached)")
        for name, run in runs.items():
            print(_phase_line(name, run))
        print(f"  total {total:.1f} s")
    if expected is None:
        return 0
    wrong = [f"{r.name} {r.verdict.upper()} (expected {expected[r.name].upper()})"
             for r in rows if r.name in expected and r.verdict != expected[r.name]]  # fmt: skip
    if wrong:
        print(f"aqi demo: not the verdicts the demo models were built for: {'; '.join(wrong)}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0
