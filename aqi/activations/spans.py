"""Moved to :mod:`aqi.prompts.spans` (the prompts room, v0.3); this path works until v0.4."""

import warnings as _warnings

from ..prompts.spans import *  # noqa: F403 - the same public names
from ..prompts.spans import __all__  # noqa: F401

_warnings.warn("aqi.activations.spans moved to aqi.prompts.spans; import it from there "
               "(this path is removed in v0.4)", DeprecationWarning, stacklevel=2)
