"""Fixtures for every test and doctest of the repository (``tests/`` and ``aqi/``).

Temporary files: code under test, and the docstring examples, make folders with
:mod:`tempfile` (``tempfile.mkdtemp()`` in the examples). Each test gets its own
temporary folder under pytest's base temporary directory instead of ``/tmp``, so a
run leaves nothing behind outside the folders pytest manages and prunes.
"""

from __future__ import annotations

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _tempfile_under_pytest(tmp_path_factory: pytest.TempPathFactory,
                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    folder = str(tmp_path_factory.mktemp("tempfile"))
    monkeypatch.setattr(tempfile, "tempdir", folder)
    monkeypatch.setenv("TMPDIR", folder)  # subprocesses (the CLI tests) too
