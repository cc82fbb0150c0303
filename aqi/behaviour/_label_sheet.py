"""The HTML labelling sheet: one self-contained page (inline CSS and JS, no network).

:func:`render_sheet` takes plain data (the labels file's header, the items' ids and
texts, the labelling rule) so that it imports nothing from :mod:`aqi`. Every text is
HTML-escaped; the header travels to the script as JSON inside a
``<script type="application/json">`` element with ``<``, ``>`` and ``&`` written as
``\\u`` escapes, so no response can end the element or inject markup.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["render_sheet", "rule_html"]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1rem auto;
       padding: 0 1rem; line-height: 1.4; color: #222; }
header { border-bottom: 1px solid #ccc; margin-bottom: 1rem; }
.rule { background: #f6f6f6; border: 1px solid #ddd; padding: .5rem 1rem; }
.item { border: 1px solid #ccc; border-radius: 4px; margin: 1rem 0; padding: .5rem 1rem; }
.item.done { border-color: #6a6; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: ui-monospace, monospace;
        background: #fafafa; border-left: 3px solid #bbb; padding: .25rem .5rem; }
.response { border-left-color: #58a; }
.id { color: #888; font-size: .8rem; }
.bar { position: sticky; top: 0; background: #fff; padding: .5rem 0;
       border-bottom: 1px solid #ddd; }
label { margin-right: 1.5rem; }
"""

_JS = """
(function () {
  const meta = JSON.parse(document.getElementById("aqi-meta").textContent);
  const key = "aqi-labels-" + meta.audit_id;
  const radios = () => document.querySelectorAll("input[type=radio]");
  function collect() {
    const labels = {};
    radios().forEach(r => { if (r.checked) labels[r.name] = r.value; });
    return labels;
  }
  function refresh() {
    const labels = collect();
    document.querySelectorAll(".item").forEach(s => {
      s.classList.toggle("done", s.dataset.item in labels);
    });
    const n = Object.keys(labels).length;
    document.getElementById("progress").textContent =
      n + " of " + meta.n_items + " labelled";
    try { localStorage.setItem(key, JSON.stringify(labels)); } catch (e) {}
  }
  function apply(labels) {
    radios().forEach(r => { r.checked = labels[r.name] === r.value; });
    refresh();
  }
  try { apply(JSON.parse(localStorage.getItem(key) || "{}")); } catch (e) {}
  document.addEventListener("change", refresh);
  document.getElementById("download").addEventListener("click", () => {
    const out = Object.assign({}, meta.header, {labels: collect()});
    const blob = new Blob([JSON.stringify(out, null, 1)], {type: "application/json"});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "labels-" + meta.audit_id.slice(0, 12) + ".json";
    document.body.appendChild(a); a.click(); a.remove();
  });
  document.getElementById("resume").addEventListener("change", ev => {
    const file = ev.target.files[0];
    if (!file) return;
    file.text().then(t => {
      const got = JSON.parse(t);
      if (got.audit_id !== meta.audit_id) {
        alert("This labels file is for another audit (" + got.audit_id + ").");
        return;
      }
      apply(got.labels || {});
    });
  });
})();
"""


def _script_json(obj: Any) -> str:
    """JSON that cannot close a ``<script>`` element or start markup inside it."""
    text = json.dumps(obj, ensure_ascii=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def rule_html(rule: str) -> str:
    """The labelling rule (Markdown paragraphs, ``*`` bullets, ``**bold**``, ``*em*``) as HTML.

    Examples
    --------
    >>> rule_html("**A** <b> *no*\\n\\n* one\\n  more\\n* two")
    '<p><strong>A</strong> &lt;b&gt; <em>no</em></p>\\n<ul><li>one more</li><li>two</li></ul>'
    """
    blocks = []
    for block in re.split(r"\n\s*\n", rule.strip()):
        text = html.escape(block, quote=True)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text, flags=re.S)
        text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
        text = re.sub(r"(?<![*\w])\*(?=\S)(.+?)(?<=\S)\*(?![*\w])", r"<em>\1</em>", text)
        if text.lstrip().startswith("* "):
            bullets = re.split(r"(?m)^\* ", text.strip())[1:]
            blocks.append("<ul>" + "".join(f"<li>{' '.join(b.split())}</li>" for b in bullets)
                          + "</ul>")  # fmt: skip
        else:
            blocks.append(f"<p>{' '.join(text.split())}</p>")
    return "\n".join(blocks)


def _item_html(number: int, item_id: str, prompt: str, response: str) -> str:
    i = html.escape(item_id, quote=True)
    radios = "".join(
        f'<label><input type="radio" name="{i}" value="{v}"> {v}</label>'
        for v in ("refusal", "compliance")
    )
    return (f'<section class="item" data-item="{i}">\n'
            f'<h3>#{number} <span class="id">{i}</span></h3>\n'
            f'<div>Prompt</div><div class="text prompt">{html.escape(prompt, quote=True)}</div>\n'
            f'<div>Response</div><div class="text response">{html.escape(response, quote=True)}'
            f"</div>\n<p>{radios}</p>\n</section>")  # fmt: skip


def render_sheet(header: Mapping[str, Any], items: Sequence[tuple[str, str, str]], rule: str
                 ) -> str:  # fmt: skip
    """The sheet's HTML.

    Parameters
    ----------
    header : mapping
        The labels file's fields other than ``labels`` (schema, version, audit id,
        judge, ...); the download button writes them with the labels.
    items : sequence of (item_id, prompt, response)
        In the order the sheet shows them.
    rule : str
        The labelling rule, in the Markdown subset of :func:`rule_html`.
    """
    audit = str(header["audit_id"])
    meta = {"audit_id": audit, "n_items": len(items), "header": dict(header)}
    body = "\n".join(_item_html(k, *it) for k, it in enumerate(items, start=1))
    e = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="aqi">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>aqi labelling sheet {e(audit[:12])}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>Refusal or compliance?</h1>
<p>Audit <code>{e(audit)}</code> · {len(items)} responses, shuffled; the sheet does not
say which model wrote which. Label each by the rule below, without running any judge on
them; then press <em>Download labels</em> and return the file to whoever runs the audit.
Progress is kept in this browser; a downloaded file can be loaded again to resume.</p>
<div class="rule"><h2>Labelling rule (version {e(str(header.get("rule_version", 1)))})</h2>
{rule_html(rule)}</div>
</header>
<div class="bar"><span id="progress">0 of {len(items)} labelled</span>
<button id="download" type="button">Download labels</button>
<label>Resume from a labels file <input id="resume" type="file" accept=".json"></label></div>
<main>
{body}
</main>
<script type="application/json" id="aqi-meta">{_script_json(meta)}</script>
<script>{_JS}</script>
</body>
</html>
"""
