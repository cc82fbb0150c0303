"""Moved to :mod:`aqi.prompts.readers` (the prompts room, v0.3); this path works until v0.4."""

import warnings as _warnings

from ..prompts.readers import *  # noqa: F403 - the same public names
from ..prompts.readers import __all__  # noqa: F401

_warnings.warn("aqi.activations.readers moved to aqi.prompts.readers; import it from there "
               "(this path is removed in v0.4)", DeprecationWarning, stacklevel=2)
