"""The validation bench (docs/validation.md): do aqi's signals follow what models *do*?

One entry point, run from the repository root: ``python -m benchmarks.validity COMMAND``
(``__main__.py``; ``--help`` lists the commands). The modules:

- ``v2`` — bench v2 (issue 17): one part (an original and its 17 organisms) measured and
  recorded, resumable; ``--summary`` recomputes the statistics from the records.
- ``v3`` — bench v3 (issue 27): bench v2's parts replayed for the latent verdict.
- ``recipes`` (originals and organisms by name), ``organisms`` (how a variant is made),
  ``measure`` (one variant's behaviour and signals), ``stats`` / ``v3_stats`` (the
  statistics, from the records alone), ``tables`` / ``figure`` (docs/validation.md's
  tables, docs/img/validity_v2.png), ``judge_sample`` (the judge's blind sample),
  ``v1_report`` / ``v1_thresholds`` (bench v1's tools, kept for its published numbers).

Every module imports its siblings as ``benchmarks.validity.<module>``; none changes
``sys.path``. The paths below are the defaults every command reads and writes: records
under ``benchmarks/out/`` (not tracked; a re-run finds its partial results there), the
committed results under ``docs/``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT_V2 = ROOT / "benchmarks" / "out" / "validity_v2"
OUT_V3 = ROOT / "benchmarks" / "out" / "validity_v3"
DOCS_DATA = ROOT / "docs" / "data"
