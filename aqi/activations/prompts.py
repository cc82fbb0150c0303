"""Moved to :mod:`aqi.prompts.prompt_set` (the prompts room, v0.3); this path works until v0.4."""

import warnings as _warnings

from ..prompts.prompt_set import *  # noqa: F403 - the same public names
from ..prompts.prompt_set import __all__  # noqa: F401

_warnings.warn("aqi.activations.prompts moved to aqi.prompts.prompt_set; import it from there "
               "(this path is removed in v0.4)", DeprecationWarning, stacklevel=2)
