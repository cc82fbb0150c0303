"""Moved to :mod:`aqi.prompts.public_sets` (the prompts room, v0.3); this path works until v0.4."""

import warnings as _warnings

from ..prompts.public_sets import *  # noqa: F403 - the same public names
from ..prompts.public_sets import __all__  # noqa: F401

_warnings.warn("aqi.activations.public_sets moved to aqi.prompts.public_sets; import it from there "
               "(this path is removed in v0.4)", DeprecationWarning, stacklevel=2)
