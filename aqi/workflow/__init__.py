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

The modules: :mod:`~aqi.workflow.plan` (:func:`audit_models`: the arguments checked,
the prompts resolved, the phases in order), :mod:`~aqi.workflow.steps` (each phase),
:mod:`~aqi.workflow.workdir` (the settings record, the artefact hashes, what is
reusable), :mod:`~aqi.workflow.spec` (:class:`ModelSpec`) and
:mod:`~aqi.workflow.records` (:class:`AuditRun`, :class:`PhaseRecord`) and
:mod:`~aqi.workflow.running` (:class:`Running`: how a run does its work).
"""

from __future__ import annotations

from .plan import PHASES, audit_models
from .records import AuditRun, PhaseRecord
from .running import Running
from .spec import ModelSpec, load_options, normalised_options
from .steps import SPANS

__all__ = ["PHASES", "SPANS", "AuditRun", "ModelSpec", "PhaseRecord", "Running",
           "audit_models", "load_options", "normalised_options"]
