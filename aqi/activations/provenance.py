"""Moved to :mod:`aqi.jobs.provenance` (the jobs room, v0.3); this path works until v0.4."""

import warnings as _warnings

from ..jobs.provenance import *  # noqa: F403 - the same public names
from ..jobs.provenance import __all__  # noqa: F401

_warnings.warn("aqi.activations.provenance moved to aqi.jobs.provenance; import it from there "
               "(this path is removed in v0.4)", DeprecationWarning, stacklevel=2)
