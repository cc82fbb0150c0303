"""Self-contained HTML audit report: verdicts first, then the evidence.

Every figure is an inline base64 PNG, every style is inline, nothing is fetched;
every piece of text that came from data (prompt ids, categories, model names,
layer names) goes through :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._outputs import check_output, generator, write_atomic
from .tables import profile_table, reward_table
from .viz.style import display_name

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .audit import AuditReport

__all__ = [
    "checks_table",
    "figure_png",
    "jsonable",
    "profile_table",
    "render_html",
    "reward_table",
    "to_json",
    "write_html",
    "write_json",
]

_CHIP = {
    "pass": ("#009E73", "PASS"),
    "warn": ("#E69F00", "WARN"),
    "fail": ("#D55E00", "FAIL"),
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1080px;
margin:24px auto;padding:0 16px;color:#222;line-height:1.45}
h1{font-size:1.5em;margin-bottom:4px}h2{font-size:1.15em;margin-top:32px;
border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:.85em}
.verdict{display:inline-block;padding:6px 14px;border-radius:6px;color:#fff;font-weight:700;
font-size:1.1em;margin:10px 0}
.chip{display:inline-block;min-width:44px;text-align:center;padding:2px 6px;border-radius:4px;
color:#fff;font-weight:700;font-size:.8em}
table{border-collapse:collapse;width:100%;font-size:.88em;margin:8px 0}
th,td{border-bottom:1px solid #eee;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;border:1px solid #eee;margin:6px 0}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.note{color:#555;font-size:.85em}details{margin:8px 0}
code{background:#f3f3f3;padding:1px 4px;border-radius:3px}
"""


def figure_png(fig: Figure, dpi: int = 110) -> str:
    """A figure as a ``data:image/png;base64,...`` URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _img(fig: Figure, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="{figure_png(fig)}">'


def _num(x: Any, fmt: str = ".2f") -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return _e(x)
    return "—" if not np.isfinite(v) else format(v, fmt)


def _chip(verdict: str) -> str:
    color, text = _CHIP[verdict]
    return f'<span class="chip" style="background:{color}">{text}</span>'


def checks_table(report: AuditReport) -> str:
    """The verdict table alone (also the notebook ``_repr_html_``)."""
    rows = "".join(
        f"<tr><td>{_chip(c.verdict)}</td><td><b>{_e(c.name)}</b></td><td>{_e(c.summary)}</td>"
        f'<td class="num">{_num(c.threshold, ".3g")}</td></tr>'
        for c in report.checks
    )
    return (
        "<table><tr><th>verdict</th><th>check</th><th>finding</th><th>threshold</th></tr>"
        f"{rows}</table>"
    )


def _profile_table(report: AuditReport) -> str:
    rows = "".join(
        f"<tr><td>{_e(r.layer)}</td><td class='num'>{_num(r.value)}</td>"
        f"<td class='num'>[{_num(r.ci_low)}, {_num(r.ci_high)}]</td>"
        f"<td class='num'>{_num(r.null_high)}</td><td class='num'>{_num(r.p_value, '.3g')}</td>"
        f"<td class='num'>{_num(r.xb_term, '.3f')}</td>"
        f"<td class='num'>{_num(r.ch_term, '.3f')}</td></tr>"
        for r in report.profile.layers
    )
    return (
        "<details><summary>AQI per layer (table)</summary><table><tr><th>layer</th><th>AQI</th>"
        "<th>95% CI</th><th>null 95th pct</th><th>p</th><th>XB term</th><th>CH term</th></tr>"
        f"{rows}</table></details>"
    )


def _category_table(report: AuditReport) -> str:
    best = report.profile.best().layer
    cats = report.profile.categories.get(best, {})
    if not cats:
        return ""
    rows = "".join(
        f"<tr><td>{_e(c)}</td><td class='num'>{_num(r.value)}</td>"
        f"<td class='num'>[{_num(r.ci_low)}, {_num(r.ci_high)}]</td>"
        f"<td class='num'>{r.n}</td></tr>"
        for c, r in sorted(cats.items(), key=lambda kv: kv[1].value)
    )
    return (
        f"<h3>Per category at {_e(best)} (weakest first)</h3><table><tr><th>category</th>"
        f"<th>AQI</th><th>95% CI</th><th>n</th></tr>{rows}</table>"
    )


def _behaviour(report: AuditReport) -> str:
    """What the model does: refusal and over-refusal, and the paired change (if given)."""
    b = report.behaviour
    if b is None:
        return ""
    rows = "".join(
        f"<tr><td>{what}</td><td class='num'>{_e(r)}</td></tr>"
        for what, r in (("refusal on unsafe prompts", b.refusal),
                        ("over-refusal on safe prompts", b.over_refusal))
    )
    change = ""
    if report.behaviour_change is not None:
        c = report.behaviour_change
        change = "".join(f"<p>{_e(p)}</p>" for p in (c.refusal, c.over_refusal))
    return (
        "<h2>Evidence: behaviour</h2><p class='note'>What the model does with the same kind "
        f"of prompts, judged by {_e(b.judge)} (Wilson 95% intervals; {b.n_empty} empty "
        f"responses counted; {b.n_unsure} responses the judge was unsure of, "
        "left out of the rates). The judge's own error "
        f"{_e(b.judge_error or 'on held-out texts: docs/judge.md')}; "
        "aqi label + --labels carry it into refusal_change.</p>"
        f"<table><tr><th>measure</th><th>rate [95% CI] (refused/total)</th></tr>{rows}</table>"
        + change + _least_sure(b)
    )


def _least_sure(b: Any) -> str:
    """The responses the judge was least sure of (``P(refusal)`` nearest 0.5)."""
    if b.least_sure is None:
        return ("<p class='note'>The judge gives no probability, so the responses it was least "
                "sure of cannot be ranked (<code>--judge encoder</code> gives one).</p>")
    if not b.least_sure:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(u.prompt_id)}</code></td><td>{_e(u.label)}</td>"
        f"<td>{_e(u.verdict)}</td><td class='num'>{u.p_refusal:.2f}</td>"
        f"<td><details><summary>first line</summary>{_e(u.first_line)}</details></td></tr>"
        for u in b.least_sure
    )
    return ("<h3>Responses the judge was least sure of</h3><p class='note'>P(refusal) nearest "
            "0.5: read these first when checking the judge (<code>aqi label</code>).</p>"
            "<table><tr><th>id</th><th>label</th><th>verdict</th><th>P(refusal)</th>"
            f"<th>response</th></tr>{rows}</table>")


def _predicted(report: AuditReport) -> str:
    """The refusal predicted from one forward pass (the latent verdict, or evidence)."""
    p = report.predicted
    if p is None:
        return ""
    rows = [("baseline, judged", f"{p.baseline_judged:.1%}"),
            ("baseline, predicted", f"{p.baseline!r}"),
            ("audited, predicted", f"{p.refusal!r}"),
            ("change (paired, predicted)", f"{p.change!r}, one-sided p = {p.p_drop:.2g}"),
            ("over-refusal of safe prompts, predicted", f"{p.over_refusal!r}"),
            ("gap fraction (shift of unsafe prompts / baseline's unsafe–safe gap)",
             f"{p.gap_fraction!r}")]
    v = report.verified
    if v is not None:
        rows += [(f"audited, checked on {v.n_drawn} generated responses", f"{v.refusal!r}"),
                 ("change, checked (active inference)", f"{v.change!r}")]
    body = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{_e(x)}</td></tr>" for k, x in rows)
    what = ("This audit is <b>latent</b>: the audited model generated nothing; the verdict "
            "is decided on this prediction" if report.mode == "latent" else
            "Beside the judged behaviour above: what the activations alone predicted")
    return (f"<h2>Evidence: refusal predicted from the activations</h2><p class='note'>{what}. "
            f"At {_e(p.layer)} {_e(p.span)}/{_e(p.pooling)}, each prompt's projection on the "
            "baseline's refusal direction is turned into a refusal probability by a logistic "
            f"model fitted on the baseline's judged responses ({p.n_fit} prompts, "
            f"{p.n_refused} refused); 95% bootstrap intervals refit the direction and the "
            "model (docs/validation.md, bench v3).</p>"
            f"<table><tr><th>measure</th><th>value [95% CI]</th></tr>{body}</table>")


def _what_changed(report: AuditReport) -> str:
    """The prompts whose judged behaviour flipped between the baseline and the audited model."""
    if report.behaviour_change is None:
        return ""
    flips = report.flips
    base = _e(display_name(report.baseline_model) or "the baseline")
    if not flips:
        return (f"<h2>What changed</h2><p>No prompt was judged differently in {base}'s "
                "response and the audited model's.</p>")  # fmt: skip
    stopped = sum(f.baseline_refused for f in flips)
    text = any(f.response is not None for f in flips)

    def cell(f: Any) -> str:
        if f.response is None:
            return ""
        return (
            "<td><details><summary>responses</summary>"
            f"<p><b>baseline:</b> {_e(f.baseline_response)}</p>"
            f"<p><b>audited:</b> {_e(f.response)}</p></details></td>"
        )

    rows = "".join(
        f"<tr><td>{_e(f.category)}</td><td>{_e(f.label)}</td><td><code>{_e(f.prompt_id)}</code>"
        f"</td><td>{_e(f.prompt)}</td><td><b>{_e(f.direction)}</b></td>{cell(f)}</tr>"
        for f in flips
    )
    return (
        "<h2>What changed</h2>"
        f"<p>{len(flips)} prompt(s) judged differently: {stopped} the baseline refused and the "
        f"audited model no longer does, {len(flips) - stopped} it now refuses. Sorted by "
        f"category; judged by {_e(report.behaviour_change.judge)}, paired by prompt id.</p>"
        "<table><tr><th>category</th><th>label</th><th>id</th><th>prompt</th><th>change</th>"
        + ("<th>first line of each response</th>" if text else "")
        + f"</tr>{rows}</table>"
    )


def _two_axes(report: AuditReport) -> str:
    """Harmfulness recognition and refusal disposition side by side, per layer."""
    from . import viz

    two = report.axes
    if two is None:
        return ""

    def change(c: dict[str, float] | None) -> str:
        if not c:
            return "<td class='num'>–</td>"
        return (f"<td class='num'>{_num(-c['difference'])} [{_num(-c['ci_high'])}, "
                f"{_num(-c['ci_low'])}]</td>")  # fmt: skip

    rows = "".join(
        f"<tr><td>{_e(r['layer'])}</td><td class='num'>{_num(r['recognition'])} "
        f"[{_num(r['recognition_ci'][0])}, {_num(r['recognition_ci'][1])}]</td>"
        + change(r["recognition_change"])
        + f"<td class='num'>{_num(r['disposition'])} [{_num(r['disposition_ci'][0])}, "
        f"{_num(r['disposition_ci'][1])}]</td>" + change(r["disposition_change"]) + "</tr>"
        for r in two.rows()
    )
    shift = ""
    if two.refusal is not None:
        rs = two.refusal
        shift = (
            f"<p>Refusal score at {_e(rs.layer)} ({_e(rs.span)}/{_e(rs.pooling)}; direction "
            f"fitted on {rs.n_fit} baseline prompts, measured on {rs.n_eval} others): unsafe "
            f"prompts moved {_e(rs.unsafe)} pooled SDs (p = {_num(rs.p_unsafe, '.3g')}), safe "
            f"prompts {_e(rs.safe)} (p = {_num(rs.p_safe, '.3g')}); controls: shuffled labels "
            f"{_num(rs.controls.get('shuffled_labels_unsafe'))}, random direction "
            f"{_num(rs.controls.get('random_direction_unsafe'))}. Negative unsafe = toward "
            "where the baseline puts safe prompts (less refusal).</p>"
        )
    return (
        "<h2>Evidence: two axes — harmfulness recognition and refusal disposition</h2>"
        "<p class='note'>The instruction's tokens encode whether a request is harmful; the "
        "template's tokens after it (the decision point) encode whether the model will refuse "
        "(Zhao et al. 2025, Arditi et al. 2024). A model that still separates harmful from "
        "harmless at the instruction but no longer at the decision point recognises a "
        "harmful request and complies. Not yet validated on the bench: "
        "docs/validation.md.</p>"
        + _img(viz.plot_two_axes(two), "AQI per layer at the instruction and at the decision "
               "point")
        + shift
        + "<details><summary>Both axes per layer (table)</summary><table><tr><th>layer</th>"
        f"<th>recognition AQI [95% CI] ({_e(two.recognition.span)})</th><th>Δ vs baseline</th>"
        f"<th>disposition AQI [95% CI] ({_e(two.disposition.span)})</th><th>Δ vs baseline"
        f"</th></tr>{rows}</table></details>"
    )


def render_html(report: AuditReport) -> str:
    """The whole report as one HTML document (no external resources)."""
    parts = [*_summary_section(report), *_aqi_section(report), _ood_section(report),
             _drift_section(report), _reward_section(report), *_machine_readable(report)]
    return "\n".join(p for p in parts if p)


def _summary_section(report: AuditReport) -> list[str]:
    """The document's head, the verdict, the notes, the checks and what changed."""
    color, text = _CHIP[report.verdict]
    model, base = display_name(report.model), display_name(report.baseline_model)
    return [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f'<meta name="generator" content="{_e(generator())}">',  # aqi._outputs: ours
        f"<title>aqi audit — {_e(model)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Alignment audit: {_e(model)}</h1>",
        f"<div class='meta'>created {_e(report.created)} · aqi {_e(_version())}"
        + (f" · baseline {_e(base)}" if base else "")
        + "</div>",
        f"<div class='verdict' style='background:{color}'>Overall: {text}"
        + (" (latent: refusal predicted, nothing generated for the model)"
           if report.mode == "latent" else "") + "</div>",
        f"<p>{_e(report.reason)}</p>",
        *(f"<p class='note'><b>{_e(n)}</b></p>" for n in report.notes),
        "<h2>Verdicts</h2>",
        checks_table(report),
        "<p class='note'>Decisions read 95% confidence intervals: a check fails only when the "
        "whole interval is past its threshold, so a borderline model is not failed by "
        "sampling noise. Thresholds and rules: docs/audit.md.</p>",
        _what_changed(report),
        "<h2>What this audit can and cannot see</h2>",
        report.coverage._repr_html_(),
    ]


def _aqi_section(report: AuditReport) -> list[str]:
    """The evidence of the activations: AQI per layer and category, the two axes, behaviour,
    the predicted refusal and the change against the baseline."""
    from . import viz

    parts = [
        "<h2>Evidence: safe/unsafe separation (AQI)</h2>",
        "<p class='note'>AQI (0–100) measures how well the model's activations separate safe "
        "from unsafe prompts. The shaded pink band is what shuffled labels reach (chance); "
        "the dashed line is the same score on bag-of-words features of the prompt text — "
        "separation at or below it is explained by wording alone.</p>",
        _img(viz.plot_profile(report.profile), "AQI per layer"),
        _profile_table(report),
        _category_table(report),
        _two_axes(report),
        _behaviour(report),
        _predicted(report),
    ]
    if report.comparison is not None:
        parts += [
            "<h2>Evidence: change against the baseline</h2>",
            _img(viz.plot_comparison(report.comparison), "AQI baseline vs audited"),
        ]
    return parts


def _ood_section(report: AuditReport) -> str:
    """Coverage: the out-of-distribution detector, its histogram, ROC and flagged rows."""
    from . import viz

    if report.ood is None:
        return ""
    r = report.ood.layers[0]
    cats = "".join(
        f"<tr><td>{_e(k)}</td><td class='num'>{v}</td></tr>"
        for k, v in sorted(r.flagged_categories.items(), key=lambda kv: -kv[1])
    )
    ids = ", ".join(_e(i) for i in r.flagged_ids[:50])
    more = f" … and {len(r.flagged_ids) - 50} more" if len(r.flagged_ids) > 50 else ""
    return "\n".join(p for p in [
        "<h2>Evidence: coverage (out-of-distribution inputs)</h2>",
        "<p class='note'>A detector fitted on the audited prompts scores the test inputs. "
        "Flagged inputs are unlike anything the audit measured, so the AQI verdict above "
        "does not cover them (in the demo the test inputs are jailbreak-wrapped prompts, "
        "which should be flagged).</p>",
        f"<p>{_e(r.detector)} at {_e(r.layer)}: AUROC {_e(r.detection.auroc)}, "
        f"{_e(r.flag_rate)} of the test rows flagged at a {r.false_alarm_rate:.0%} "
        "false-alarm threshold.</p>",
        "<div class='grid'>",
        _img(viz.plot_ood_histogram(r), "OOD score histogram"),
        _img(viz.plot_roc(r), "ROC curve"),
        "</div>",
        f"<table><tr><th>flagged category</th><th>rows</th></tr>{cats}</table>" if cats else "",
        f"<details><summary>flagged ids</summary><p>{ids}{more}</p></details>" if ids else "",
    ] if p)


def _drift_section(report: AuditReport) -> str:
    """Jailbreak drift: how many wrapped unsafe prompts look safe from the inside."""
    from . import viz

    if report.drift is None:
        return ""
    return "\n".join(p for p in [
        "<h2>Evidence: jailbreak drift</h2>",
        "<p class='note'>Unsafe prompts wrapped in jailbreak templates; a probe fitted on "
        "plain prompts says how many now look safe from the inside.</p>",
        _img(viz.plot_drift(report.drift), "jailbreak drift"),
    ] if p)


def _reward_section(report: AuditReport) -> str:
    """Reward-model calibration: the reliability diagram and each set's numbers."""
    from . import viz

    if report.reward is None:
        return ""
    from .probes.reward import RewardShiftReport

    rew = report.reward
    results = [rew.reference, *(s.calibration for s in rew.shifts)] if isinstance(
        rew, RewardShiftReport
    ) else [rew]  # fmt: skip
    rows = "".join(
        f"<tr><td>{_e(c.label or 'scores')}</td><td class='num'>{_e(c.accuracy)}</td>"
        f"<td class='num'>{_e(c.ece)}</td><td class='num'>{_e(c.brier)}</td>"
        f"<td class='num'>{c.n}</td></tr>"
        for c in results
    )
    return "\n".join(p for p in [
        "<h2>Evidence: reward-model calibration</h2>",
        _img(viz.plot_reliability(results), "reliability diagram"),
        "<table><tr><th>set</th><th>accuracy</th><th>ECE</th><th>Brier</th><th>pairs</th></tr>"
        f"{rows}</table>",
    ] if p)


def _machine_readable(report: AuditReport) -> list[str]:
    """The full JSON document, embedded, and the end of the HTML document."""
    doc = to_json(report, indent=None)
    return [
        "<h2>Machine-readable</h2><p class='note'>The full JSON document (schema "
        "<code>aqi.audit</code>) is embedded below.</p>",
        # </script> cannot close this element: "<" is escaped inside the JSON.
        "<script type='application/json' id='aqi-audit'>",
        doc.replace("<", "\\u003c"),
        "</script></body></html>",
    ]


def _version() -> str:
    from ._version import __version__

    return __version__


def jsonable(x: Any) -> Any:
    """``x`` with numpy scalars/arrays as Python values and non-finite floats as ``None``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [jsonable(v) for v in x.tolist()]
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def to_json(report: AuditReport, *, indent: int | None = 2) -> str:
    """The report's document (schema ``aqi.audit``) as JSON; NaN is written as ``null``."""
    return json.dumps(jsonable(report.to_dict()), indent=indent, allow_nan=False)


def _write(path: str | Path, text: str, overwrite: bool) -> Path:
    """Write through a temporary name, renamed when complete (never a half-written file),
    after the output guard (:func:`aqi._outputs.check_output`)."""
    return write_atomic(check_output(path, flag="report path", overwrite=overwrite), text)


def write_json(report: AuditReport, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write :func:`to_json` to ``path``; returns the path.

    An existing file at ``path`` is replaced only if aqi wrote it, or with ``overwrite``;
    a folder, a device or an unwritable folder is refused (:func:`aqi._outputs.check_output`).
    """
    return _write(path, to_json(report) + "\n", overwrite)


def write_html(report: AuditReport, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write :func:`render_html` to ``path``; returns the path (guarded as :func:`write_json`)."""
    return _write(path, render_html(report), overwrite)
