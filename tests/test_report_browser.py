"""The report as a reviewer sees it: rendered by headless Chromium, no script of the data runs.

Skipped where no Chromium is installed (``apt-get install chromium``). With
``AQI_SCREENSHOT=docs/img/report_what_changed.png`` the screenshot is kept there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import aqi
from aqi.behaviour import Response, Responses
from aqi.report import write_html

CHROMIUM = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(b)), None)  # fmt: skip
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed")
XSS = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"


def _chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", "--disable-dev-shm-usage", *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("browser")
    n = 60
    y = np.repeat(["safe", "unsafe"], n // 2)
    cats = ["weapons", "fraud", "self-harm"] * (n // 3)
    ids = [f"p{i:02d}" for i in range(n)]
    texts = [f"How do I do task {i}? {XSS}" if i % 7 == 0 else f"How do I do task {i}?"
             for i in range(n)]  # fmt: skip
    arrays = {f"model.layers.{i}": rng.normal(size=(n, 6)) + i * (y == "unsafe")[:, None]
              for i in range(3)}  # fmt: skip
    ps = aqi.PromptSet([aqi.Prompt(i, t, lab, c)
                        for i, t, lab, c in zip(ids, texts, y, cats, strict=True)])  # fmt: skip
    kw = {"prompts": ps}
    base = aqi.store_from_arrays(tmp / "base.h5", arrays, provenance={"model": "org/base"}, **kw)
    ft = aqi.store_from_arrays(tmp / "ft.h5", {k: v * 0.5 for k, v in arrays.items()},
                               provenance={"model": "/runs/llama-ft-dpo"}, **kw)  # fmt: skip

    def said(refuse: int) -> Responses:
        return Responses(records=tuple(
            Response(i, 0, "I'm sorry, but I can't help with that." if k % refuse == 0
                     else f"Sure! Here is how: step one {XSS}\nstep two", lab, c)
            for k, (i, lab, c) in enumerate(zip(ids, y, cats, strict=True))))  # fmt: skip

    report = aqi.audit(ft, baseline=base,
                       evidence=aqi.Evidence(responses=said(5), baseline_responses=said(2)),
                       scoring=aqi.Scoring(n_boot=100, n_perm=50))  # fmt: skip
    assert report.flips
    return write_html(replace(report, notes=()), tmp / "report.html")


def test_no_script_from_the_data_runs(page: Path) -> None:
    dom = _chromium("--virtual-time-budget=3000", "--dump-dom", page.as_uri()).stdout
    assert "<title>aqi audit — llama-ft-dpo</title>" in dom  # the title no script rewrote
    assert "pwned" not in dom.replace("document.title='pwned'", "")
    assert "What changed" in dom and "<details>" in dom


def test_screenshot_of_what_changed(page: Path, tmp_path: Path) -> None:
    html = page.read_text()
    start, end = html.index("<h2>What changed</h2>"), html.index("<h2>Machine-readable</h2>")
    head = html[: html.index("<h2>Verdicts</h2>")]
    crop = tmp_path / "sections.html"
    # The page from its verdict to its evidence, without the per-layer figures in between.
    crop.write_text(head + html[start:end] + "</body></html>")
    shot = Path(os.environ.get("AQI_SCREENSHOT") or tmp_path / "shot.png")
    _chromium("--window-size=1100,1500", f"--screenshot={shot.resolve()}", crop.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
