"""The jobs room: what every long-running writer of aqi shares.

Capture (:mod:`aqi.activations`), generation (:mod:`aqi.behaviour`) and the audit's
work folder write outputs that take minutes to hours; they share one way of doing it,
and it lives here, below all of them (it imports only aqi's core):

* :mod:`~aqi.jobs.guard` — the overwrite guard: never write over the input, never
  replace what aqi did not write (:func:`check_target`, :func:`check_not_input`);
* :mod:`~aqi.jobs.lock` — ``<path>.lock``, one writer per output, a dead owner's lock
  taken over (:class:`WriterLock`, :class:`StoreLockedError`);
* :mod:`~aqi.jobs.closing` — ``with writer:`` releases it (:class:`Closing`);
* :mod:`~aqi.jobs.parts` — atomic parts in ``<path>.partial/`` and what is left to do on
  resume (:func:`pending_ranges`, :func:`damaged_parts`);
* :mod:`~aqi.jobs.interrupted` — Ctrl-C with how far the job got (:class:`JobInterrupted`);
* :mod:`~aqi.jobs.provenance` — what produced an output; its identity decides a resume;
* :mod:`~aqi.jobs.writing` — how a job writes, as one value (:class:`Writing`: batches,
  overwrite, progress);
* :mod:`~aqi.jobs.skeleton` — the one loop of every long write (:func:`run_job`): guard
  and lock, resume, batches, commits, progress, the interruption; a :class:`Job` says
  only what its batches are and what its rows hold.

Only the light modules are imported here; :mod:`~aqi.jobs.parts` (h5py) and
:mod:`~aqi.jobs.provenance` (torch) are imported from where they are used.
"""

from .closing import Closing
from .guard import check_not_input, check_target
from .interrupted import JobInterrupted
from .lock import StoreLockedError, WriterLock
from .skeleton import Job, Window, run_job
from .writing import Writing

__all__ = [
    "Closing",
    "Job",
    "JobInterrupted",
    "StoreLockedError",
    "Window",
    "WriterLock",
    "Writing",
    "check_not_input",
    "check_target",
    "run_job",
]
