"""Ctrl-C during a long write: how far it got, in the job's own unit."""

from __future__ import annotations

__all__ = ["JobInterrupted"]


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C during a long write, with the rows committed so far (a re-run resumes there).

    Subclasses name their rows (:attr:`unit`); the command line prints
    ``interrupted after <rows_done> of <rows_total> <unit>``.

    Attributes
    ----------
    rows_done : int
        Rows committed to the output (they survive; a re-run does not redo them).
    rows_total : int
        Rows this call writes.
    unit : str
        What the rows are, for messages.
    """

    unit = "rows"

    def __init__(self, rows_done: int, rows_total: int) -> None:
        super().__init__(f"interrupted after {rows_done} of {rows_total} {self.unit}")
        self.rows_done = rows_done
        self.rows_total = rows_total
