"""One job skeleton: a long write, written once.

Every long write of aqi does the same seven things: it guards its target, takes the
writer's lock, finds what an earlier run did, runs the rest batch by batch, commits,
reports progress, and on Ctrl-C says how far it got. :func:`run_job` does them in that
order; a :class:`Job` says only what its batches are and what its rows hold:

* capture (:mod:`aqi.activations.capture`): a window of prompts (``commit_rows``) is
  encoded and run in forward passes that fit a token budget; its rows are pooled
  activations, committed as one part file of the store;
* generation (:mod:`aqi.behaviour.generate`): a batch of length-sorted prompts is one
  ``generate`` call; its rows are responses, appended to the JSONL file at once.

A job's writer (``StoreWriter``, ``ResponseWriter``) is the guard and the lock: made by
:meth:`Job.open`, it refuses a target aqi did not write, takes ``<path>.lock`` and reads
what is done; :func:`run_job` holds it until the job has finished or failed.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

from .._progress import step_bar
from .interrupted import JobInterrupted

__all__ = ["Job", "Window", "run_job"]

B = TypeVar("B")  # what a batch is (a job's own)
R = TypeVar("R")  # what a finished job returns


class Window(ABC, Generic[B]):
    """Rows that are committed together: run batch by batch, then committed at once.

    ``with window:`` opens it (and discards what it holds on any error); :meth:`run`
    runs one of its :attr:`batches` and :meth:`commit` makes its rows durable.
    """

    #: The batches to run, in order (known once the window is open).
    batches: Sequence[B]

    def __enter__(self) -> Window[B]:
        return self

    def __exit__(self, et: object, e: object, tb: object) -> None:
        return None

    @abstractmethod
    def run(self, batch: B) -> int:
        """Run one batch and keep its rows for the commit; the rows it ran."""

    @abstractmethod
    def commit(self) -> None:
        """Make the window's rows durable (all of them, or none)."""


class Job(ABC, Generic[B, R]):
    """A long write, said in its own terms; :func:`run_job` runs it.

    A subclass names its progress bar (:attr:`desc`, :attr:`unit`) and its interruption
    (:attr:`interrupted`), and says what its output is (:meth:`open`), what is left
    (:meth:`pending`), how far it got (:meth:`rows_done`) and what it returns
    (:meth:`finish`).
    """

    desc: ClassVar[str]  # the progress bar's label
    unit: ClassVar[str]  # what the progress bar counts
    interrupted: ClassVar[type[JobInterrupted]]  # raised on Ctrl-C, with the rows done

    #: Rows this job writes.
    total: int

    @abstractmethod
    def open(self) -> contextlib.AbstractContextManager[Any]:
        """Guard the target and take its lock: the writer, which reads what is done."""

    @abstractmethod
    def pending(self) -> Sequence[Window[B]]:
        """What is left to do, as windows (empty when an earlier run did it all)."""

    @abstractmethod
    def rows_done(self) -> int:
        """Rows committed so far (asked when the bar opens, and after Ctrl-C)."""

    @abstractmethod
    def finish(self) -> R:
        """The finished output (asked with the writer still open)."""

    def running(self) -> contextlib.AbstractContextManager[Any]:
        """What is held while batches run (capture: the model's hooks)."""
        return contextlib.nullcontext()

    def postfix(self) -> dict[str, str]:
        """Figures shown beside the progress bar after each batch (capture: tokens/s)."""
        return {}


def run_job(job: Job[Any, R], *, progress: bool | None) -> R:
    """Run ``job``: guard and lock (its writer), resume, batches, commits, progress.

    Parameters
    ----------
    job : Job
        The job.
    progress : bool, optional
        Show a progress bar (see :func:`aqi._progress.step_bar`); none when nothing is
        left to do.

    Returns
    -------
    The job's :meth:`Job.finish`.

    Raises
    ------
    JobInterrupted
        Ctrl-C (the job's own :attr:`Job.interrupted`), with the rows committed so far;
        a window half run is discarded, and a re-run resumes after the last commit.

    Examples
    --------
    >>> from aqi.jobs import JobInterrupted
    >>> class Squares(Window):
    ...     def __init__(self, out, rows):
    ...         self.out, self.batches, self.kept = out, [rows], []
    ...     def run(self, batch):
    ...         self.kept = [i * i for i in batch]
    ...         return len(batch)
    ...     def commit(self):
    ...         self.out.extend(self.kept)
    >>> class Job3(Job):
    ...     desc, unit, interrupted, total = "squares", "row", JobInterrupted, 3
    ...     def __init__(self):
    ...         self.out = []
    ...     def open(self):
    ...         return contextlib.nullcontext()
    ...     def pending(self):
    ...         return [Squares(self.out, [0, 1]), Squares(self.out, [2])]
    ...     def rows_done(self):
    ...         return len(self.out)
    ...     def finish(self):
    ...         return self.out
    >>> run_job(Job3(), progress=False)
    [0, 1, 4]
    """
    with job.open():  # the guard and the lock, released on any error
        left = job.pending()
        if left:
            _run(job, left, progress)
        return job.finish()


def _run(job: Job[Any, Any], windows: Sequence[Window[Any]], progress: bool | None) -> None:
    """Run the windows left under one progress bar; Ctrl-C says how far the job got."""
    bar = step_bar(total=job.total, initial=job.rows_done(), unit=job.unit, desc=job.desc,
                   progress=progress)  # fmt: skip
    try:
        with job.running():
            for window in windows:
                with window:
                    for batch in window.batches:
                        bar.update(window.run(batch))
                        figures = job.postfix()
                        if figures:
                            bar.set_postfix(**figures, refresh=False)
                    window.commit()
    except KeyboardInterrupt:
        bar.close()  # before the rows are counted: the message is not drawn over
        raise job.interrupted(job.rows_done(), job.total) from None
    finally:
        bar.close()
