"""A person's labels for an audit's responses: a blind sample, a sheet, the labels read back.

The labels let :mod:`aqi.behaviour.ppi` carry the judge's error into the refusal
rates and their change. :func:`draw_label_sample` draws *prompts* — both models'
responses to each — at random within each prompt label (unsafe / safe) in
proportion to their counts, so that the labelled prompts of a class are a uniform
sample of that class (what PPI needs). The items are shuffled and anonymised: the
sheet does not say which model wrote a response. :func:`write_label_sheet` writes
one self-contained HTML page to label them in a browser; :func:`label_in_terminal`
asks in a terminal. :func:`read_labels` reads a labels file back, refusing one
drawn from other responses or for another judge version.

Labels file (JSON, ``aqi-refusal-labels`` version 1)::

    {
      "schema": "aqi-refusal-labels",
      "version": 1,
      "audit_id": "<64 hex digits: SHA-256 of both response sets, see audit_id()>",
      "judge": "<the judge's name>",
      "judge_version": "<its version>",
      "rule_version": 1,                      # the labelling rule the person read
      "n_prompts": 50, "seed": 0, "sample": 0,   # how the sample was drawn (a record)
      "labels": {"<item id>": "refusal" | "compliance", ...},
      "skipped": ["<item id>", ...]           # optional: items passed over
    }

An item id (``"i"`` and 12 hex digits) is a hash of the audit id, the model's role
and the response's ``(prompt_id, sample)``: it names one response without saying
whose it is, and means the same response in any sample drawn from the same audit.
Items without a label are unlabelled; a skipped item is one a person chose not to
label (label it, or report how many were skipped: items skipped for a reason are
not missing at random).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import NAME_ONLY, ArgumentError
from .._stats import DegenerateInputWarning
from ..activations import LABELS
from ._label_items import (
    LABEL_VALUES,
    LABELLING_RULE,
    LABELS_SCHEMA,
    LABELS_VERSION,
    MODELS,
    RULE_VERSION,
    LabelItem,
    Labels,
    LabelSample,
    audit_id,
    make_item_id,
    responses_of,
)
from ._label_sheet import render_sheet
from .responses import Response, Responses

__all__ = [
    "LABELLING_RULE",
    "LABELS_SCHEMA",
    "LABELS_VERSION",
    "LABEL_VALUES",
    "MODELS",
    "LabelItem",
    "LabelSample",
    "Labels",
    "audit_id",
    "draw_label_sample",
    "label_in_terminal",
    "read_labels",
    "write_label_sheet",
]


def _allocate(sizes: Sequence[int], n: int) -> list[int]:
    """``n`` split in proportion to ``sizes`` (largest remainder), at least 2 per stratum when
    ``n`` allows (PPI within a class needs two labelled prompts), never more than a size."""
    total = sum(sizes)
    quota = [n * s / total for s in sizes]
    out = [int(q) for q in quota]
    for k in sorted(range(len(sizes)), key=lambda k: out[k] - quota[k])[: n - sum(out)]:
        out[k] += 1
    for k, s in enumerate(sizes):
        while out[k] < min(2, s):
            donor = max(range(len(sizes)), key=lambda j: out[j] - (2 if sizes[j] else 0))
            if out[donor] <= 2:
                break
            out[donor] -= 1
            out[k] += 1
    return out


def _paired(
    baseline: Responses, audited: Responses, sample: int
) -> dict[str, tuple[Response, Response]]:
    by = [{r.prompt_id: r for r in rs if r.sample == sample} for rs in (baseline, audited)]
    if set(by[0]) != set(by[1]):
        only = sorted(set(by[0]) ^ set(by[1]))
        raise ArgumentError(
            f"{{baseline}} and {{audited}} must answer the same prompts (sample {sample}); "
            f"{len(only)} differ (e.g. {', '.join(map(repr, only[:5]))})",
            baseline=NAME_ONLY, audited=NAME_ONLY,
        )  # fmt: skip
    for pid, r in by[0].items():
        if r.label != by[1][pid].label:
            raise ArgumentError(f"prompt {pid!r} is {r.label!r} in {{baseline}} and "
                                f"{by[1][pid].label!r} in {{audited}}",
                                baseline=NAME_ONLY, audited=NAME_ONLY)  # fmt: skip
    return {pid: (by[0][pid], by[1][pid]) for pid in sorted(by[0])}


def draw_label_sample(
    baseline: Responses,
    audited: Responses,
    n_prompts: int,
    *,
    judge: str,
    judge_version: str,
    seed: int = 0,
    sample: int = 0,
) -> LabelSample:
    """A blind sample of prompts to label: both models' responses to each, shuffled.

    Prompts are drawn without replacement, uniformly within each prompt label, the
    labels in proportion to their counts (largest remainder; at least two prompts of
    each label when ``n_prompts`` allows). The sample is a function of the
    responses, ``n_prompts``, ``seed`` and ``sample`` only: drawing again gives the
    same items.

    Parameters
    ----------
    baseline, audited : Responses
        The two models' responses to the same prompts.
    n_prompts : int
        Prompts to draw; the sheet holds ``2 * n_prompts`` responses.
    judge, judge_version : str
        The judge whose verdicts the labels will correct; recorded, and checked
        when the labels are read back.
    seed : int, default 0
    sample : int, default 0
        Which sample to label when several were drawn per prompt.

    Examples
    --------
    >>> base = [Response(f"u{i}", 0, "No.", "unsafe", prompt_text="?") for i in range(8)]
    >>> base += [Response(f"s{i}", 0, "Yes.", "safe", prompt_text="?") for i in range(4)]
    >>> tuned = [Response(r.prompt_id, 0, "Sure.", r.label) for r in base]
    >>> s = draw_label_sample(base, tuned, 6, judge="rules", judge_version="3")
    >>> s.strata, len(s.items)
    ({'safe': (2, 4), 'unsafe': (4, 8)}, 12)
    """
    if isinstance(n_prompts, bool) or not isinstance(n_prompts, (int, np.integer)) or n_prompts < 1:
        raise ArgumentError("{n_prompts}; expected a whole number >= 1", n_prompts=n_prompts)
    for name, v in (("judge", judge), ("judge_version", judge_version)):
        if not isinstance(v, str):
            raise ArgumentError(f"{{{name}}}; expected a string", **{name: v})
    rs_a, rs_b = responses_of(baseline, "baseline"), responses_of(audited, "audited")
    pairs = _paired(rs_a, rs_b, sample)
    if n_prompts > len(pairs):
        raise ArgumentError(f"{{n_prompts}} but the responses answer {len(pairs)} prompts "
                            f"(sample {sample})", n_prompts=n_prompts)  # fmt: skip
    groups = [*LABELS, *sorted({p[0].label for p in pairs.values()} - set(LABELS))]
    ids = {lab: [pid for pid, p in pairs.items() if p[0].label == lab] for lab in groups}
    ids = {lab: v for lab, v in ids.items() if v}
    rng = np.random.default_rng(seed)
    counts = _allocate([len(v) for v in ids.values()], int(n_prompts))
    audit = audit_id(rs_a, rs_b)
    items = []
    for (lab, pids), k in zip(ids.items(), counts, strict=True):
        for pid in rng.choice(pids, size=k, replace=False).tolist():
            for model, r in zip(MODELS, pairs[pid], strict=True):
                items.append(LabelItem(
                    item_id=make_item_id(audit, model, pid, sample), model=model, prompt_id=pid,
                    sample=sample, prompt_label=lab, prompt=r.prompt_text or "", response=r.text,
                ))  # fmt: skip
    order = rng.permutation(len(items))
    return LabelSample(
        audit_id=audit, judge=judge, judge_version=judge_version,
        items=tuple(items[i] for i in order), n_prompts=int(n_prompts), seed=seed, sample=sample,
        strata={lab: (k, len(v)) for (lab, v), k in zip(ids.items(), counts, strict=True)},
    )  # fmt: skip


def write_label_sheet(sample: LabelSample, path: str | os.PathLike[str]) -> Path:
    """Write the HTML labelling sheet: one self-contained file, no network needed.

    It shows the labelling rule, then every item (prompt, response, a refusal /
    compliance choice) in the sample's shuffled order, without saying whose response
    it is; *Download labels* saves the labels file (schema in the module docstring).
    Returns the path written.
    """
    if not isinstance(sample, LabelSample):
        raise TypeError(f"sample must be a LabelSample, got {type(sample).__name__}")
    p = Path(path)
    items = [(it.item_id, it.prompt or "(prompt text not recorded)", it.response)
             for it in sample.items]  # fmt: skip
    _atomic_write(p, render_sheet(sample.header(), items, LABELLING_RULE))
    return p


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _write_labels(sample: LabelSample, labels: Mapping[str, str], skipped: Sequence[str],
                  path: Path) -> None:  # fmt: skip
    out = {**sample.header(), "labels": dict(labels), "skipped": list(skipped)}
    _atomic_write(path, json.dumps(out, indent=1, ensure_ascii=False) + "\n")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")


def _printable(text: str) -> str:
    """``text`` with control characters (terminal escapes) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


_ANSWERS = {"r": "refusal", "c": "compliance"}


def label_in_terminal(
    sample: LabelSample,
    path: str | os.PathLike[str],
    *,
    input: Callable[[str], str] = input,
    output: Callable[[str], Any] = print,
) -> Labels:
    """Label the sample in a terminal, saving to ``path`` after every answer.

    Each unlabelled item is shown (prompt, response, never whose); answer ``r``
    (refusal), ``c`` (compliance), ``s`` (skip) or ``q`` (quit; end of input quits
    too). An existing labels file at ``path`` is read first (:func:`read_labels`)
    and only the items it does not label are asked: a session can stop and resume.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> base = [Response(f"u{i}", 0, "No.", "unsafe", prompt_text="?") for i in range(3)]
    >>> s = draw_label_sample(base, base, 1, judge="rules", judge_version="3")
    >>> answers = iter(["r", "x", "q"])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels.json"
    >>> label_in_terminal(s, path, input=lambda _: next(answers), output=lambda _: None)
    Labels(1 labelled: 1 refusal, 0 compliance; 0 skipped; audit ...)
    """
    p = Path(path)
    if p.exists():
        with warnings.catch_warnings():  # a partial file may well hold one class so far
            warnings.simplefilter("ignore", DegenerateInputWarning)
            old = read_labels(p, sample)
        labels, skipped = dict(old.labels), list(old.skipped)
    else:
        labels, skipped = {}, []
    todo = [it for it in sample.items if it.item_id not in labels]
    output(f"Labelling rule (version {RULE_VERSION}):\n{LABELLING_RULE}")
    output(f"{len(labels)} of {len(sample.items)} labelled; {len(todo)} to go. "
           "Answer r = refusal, c = compliance, s = skip, q = quit.")  # fmt: skip
    for k, it in enumerate(todo, start=1):
        output(f"\n[{k}/{len(todo)}] {it.item_id}\nPROMPT:\n{_printable(it.prompt)}\n"
               f"RESPONSE:\n{_printable(it.response)}")  # fmt: skip
        answer = _ask(input, output)
        if answer == "q":
            break
        if answer == "s":
            skipped = [*dict.fromkeys([*skipped, it.item_id])]
        else:
            labels[it.item_id] = _ANSWERS[answer]
            skipped = [i for i in skipped if i != it.item_id]
        _write_labels(sample, labels, skipped, p)
    return _labels_of(sample, labels, skipped, str(p))


def _ask(input: Callable[[str], str], output: Callable[[str], Any]) -> str:
    while True:
        try:
            answer = input("r/c/s/q> ").strip().lower()
        except EOFError:
            return "q"
        if answer in ("r", "c", "s", "q"):
            return answer
        output("type r (refusal), c (compliance), s (skip) or q (quit)")


def _labels_of(sample: LabelSample, labels: Mapping[str, str], skipped: Sequence[str],
               source: str) -> Labels:  # fmt: skip
    by_id = sample.by_id()
    return Labels(audit_id=sample.audit_id, judge=sample.judge, judge_version=sample.judge_version,
                  labels=dict(labels), skipped=tuple(skipped),
                  items={i: by_id[i] for i in [*labels, *skipped]}, source=source)  # fmt: skip


def _load_json(p: Path) -> dict[str, Any]:
    if not p.is_file():
        raise FileNotFoundError(f"no labels file at {str(p)!r}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not a labels file (not JSON: {e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: not a labels file (a JSON {type(data).__name__}, not an object)")
    if data.get("schema") != LABELS_SCHEMA:
        raise ValueError(f"{p}: not a labels file (schema={data.get('schema')!r}; expected "
                         f"{LABELS_SCHEMA!r})")  # fmt: skip
    v = data.get("version")
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= LABELS_VERSION:
        raise ValueError(f"{p}: {LABELS_SCHEMA} version {v!r}; this aqi reads versions "
                         f"1 to {LABELS_VERSION}")  # fmt: skip
    return data


def _check_identity(p: Path, data: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    differ = [f"{k} {data.get(k)!r} in the file, {expected[k]!r} here"
              for k in ("audit_id", "judge", "judge_version")
              if k in expected and data.get(k) != expected[k]]  # fmt: skip
    if not differ:
        return
    if data.get("audit_id") != expected["audit_id"]:
        what = "another audit (other responses)"
    else:
        what = "another judge" if data.get("judge") != expected.get("judge") else (
            "another judge version")  # fmt: skip
    raise ValueError(f"{p}: these labels are for {what}: {'; '.join(differ)}; draw and label "
                     "a sample of these responses for this judge")  # fmt: skip


def read_labels(path: str | os.PathLike[str], sample_or_expected: LabelSample | Mapping[str, str]
                ) -> Labels:  # fmt: skip
    """Read a labels file and check that it belongs to this audit and this judge.

    Parameters
    ----------
    path : path
        A labels file (schema in the module docstring).
    sample_or_expected : LabelSample or mapping
        The sample the labels were drawn as (then every item id must be one of
        its items, and :meth:`Labels.verdicts` knows whose each response is), or
        ``{"audit_id": ..., "judge_version": ...}`` (and optionally ``"judge"``)
        to check a file without its sample.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a labels file or a newer version; labels for another audit or another
        judge (saying which fields differ); unknown item ids; a value other than
        ``"refusal"`` or ``"compliance"``.

    Warns
    -----
    DegenerateInputWarning
        The labels cover one class only: the judge's error on the other class is
        not measured.
    """
    p = Path(path)
    data = _load_json(p)
    if isinstance(sample_or_expected, LabelSample):
        sample: LabelSample | None = sample_or_expected
        expected: Mapping[str, Any] = sample_or_expected.header()
    elif isinstance(sample_or_expected, Mapping) and "audit_id" in sample_or_expected:
        sample, expected = None, sample_or_expected
    else:
        raise TypeError(
            "sample_or_expected must be a LabelSample or a mapping with 'audit_id' "
            f"(and 'judge_version'), got {type(sample_or_expected).__name__}"
        )
    _check_identity(p, data, expected)
    labels, skipped = data.get("labels"), data.get("skipped", [])
    if not isinstance(labels, dict):
        raise ValueError(f"{p}: 'labels' must be an object of item id -> label, got "
                         f"{type(labels).__name__}")  # fmt: skip
    if not isinstance(skipped, list) or not all(isinstance(i, str) for i in skipped):
        raise ValueError(f"{p}: 'skipped' must be a list of item ids")
    known = sample.by_id() if sample is not None else None
    unknown = [
        i
        for i in [*labels, *skipped]
        if (i not in known if known is not None else not re.fullmatch(r"i[0-9a-f]{12}", i))
    ]
    if unknown:
        where = "this sample's items" if known is not None else "item ids (i + 12 hex digits)"
        raise ValueError(f"{p}: {len(unknown)} id(s) are not {where}: "
                         f"{', '.join(map(repr, unknown[:5]))}")  # fmt: skip
    bad = [(i, v) for i, v in labels.items() if v not in LABEL_VALUES]
    if bad:
        raise ValueError(f"{p}: item {bad[0][0]!r} has label {bad[0][1]!r}; expected 'refusal' "
                         f"or 'compliance' ({len(bad)} such)")  # fmt: skip
    values = set(labels.values())
    if len(values) == 1:
        warnings.warn(f"{p}: the labels cover one class only ({len(labels)} of {len(labels)} "
                      f"are {values.pop()!r}); the judge's error on the other is not measured",
                      DegenerateInputWarning, stacklevel=2)  # fmt: skip
    skipped = [i for i in dict.fromkeys(skipped) if i not in labels]
    if sample is not None:
        return _labels_of(sample, labels, skipped, str(p))
    return Labels(audit_id=data["audit_id"], judge=str(data.get("judge", "")),
                  judge_version=str(data.get("judge_version", "")), labels=dict(labels),
                  skipped=tuple(skipped), source=str(p))  # fmt: skip
