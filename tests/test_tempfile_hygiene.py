"""A test run writes its temporary files under pytest's base folder, never loose in /tmp."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


def test_tempfile_points_under_pytest_basetemp(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.getbasetemp().resolve()
    made = Path(tempfile.mkdtemp()).resolve()
    assert made.is_relative_to(base), (made, base)
    assert Path(os.environ["TMPDIR"]).resolve().is_relative_to(base)


def test_each_test_gets_its_own_folder(tmp_path_factory: pytest.TempPathFactory):
    # two tests never share one: the fixture is function-scoped
    assert Path(tempfile.gettempdir()).name.startswith("tempfile")
    assert Path(tempfile.gettempdir()).resolve() != tmp_path_factory.getbasetemp().resolve()


def test_subprocess_inherits_it(tmp_path_factory: pytest.TempPathFactory):
    out = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
                         capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert Path(out).resolve().is_relative_to(tmp_path_factory.getbasetemp().resolve())
