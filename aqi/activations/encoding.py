"""Moved to :mod:`aqi.prompts.encoding` (the prompts room, v0.3); this path works until v0.4."""

import warnings as _warnings

from ..prompts.encoding import *  # noqa: F403 - the same public names
from ..prompts.encoding import __all__  # noqa: F401

_warnings.warn("aqi.activations.encoding moved to aqi.prompts.encoding; import it from there "
               "(this path is removed in v0.4)", DeprecationWarning, stacklevel=2)
