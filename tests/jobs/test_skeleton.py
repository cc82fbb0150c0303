"""The job skeleton (aqi.jobs.run_job) on a job of plain lists: the order of its steps,
resume, the progress it reports, and what Ctrl-C or an error leaves behind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from aqi._progress import reporting_to
from aqi.jobs import Job, JobInterrupted, Window, run_job


class Stopped(JobInterrupted):
    unit = "squares"


class Squares(Window):
    """Rows ``[start, stop)`` in batches of two; the squares are kept until the commit."""

    def __init__(self, job: ListJob, start: int, stop: int) -> None:
        self.job, self.start, self.stop, self.kept = job, start, stop, []

    def __enter__(self) -> Squares:
        self.job.log.append(f"open {self.start}")
        self.batches = [list(range(a, min(a + 2, self.stop)))
                        for a in range(self.start, self.stop, 2)]  # fmt: skip
        return self

    def __exit__(self, et: object, e: object, tb: object) -> None:
        if et is not None:
            self.job.log.append(f"discard {self.start}")

    def run(self, batch: list[int]) -> int:
        if batch[0] == self.job.fail_at:
            raise self.job.error
        self.kept += [i * i for i in batch]
        return len(batch)

    def commit(self) -> None:
        self.job.out[self.start : self.stop] = self.kept
        self.job.log.append(f"commit {self.start}")


class ListJob(Job):
    desc, unit, interrupted = "squares", "row", Stopped

    def __init__(self, n: int, done: int = 0, fail_at: int | None = None,
                 error: BaseException | None = None) -> None:  # fmt: skip
        self.total, self.fail_at = n, fail_at
        self.error = KeyboardInterrupt() if error is None else error
        self.out: list[int | None] = [i * i for i in range(done)] + [None] * (n - done)
        self.log: list[str] = []

    def open(self) -> contextlib.AbstractContextManager[None]:
        self.log.append("lock")

        @contextlib.contextmanager
        def held() -> Iterator[None]:
            try:
                yield
            finally:
                self.log.append("unlock")

        return held()

    def pending(self) -> list[Squares]:
        first = self.rows_done()
        return [Squares(self, a, min(a + 4, self.total)) for a in range(first, self.total, 4)]

    def rows_done(self) -> int:
        return sum(v is not None for v in self.out)

    def running(self) -> contextlib.AbstractContextManager[None]:
        self.log.append("hooks")
        return contextlib.nullcontext()

    def finish(self) -> list[int | None]:
        self.log.append("finish")
        return self.out


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, int | None]] = []

    def begin(self, total: int | None, initial: int) -> None:
        self.calls.append(("begin", total, initial))

    def advance(self, n: int) -> None:
        self.calls.append(("advance", n, None))


def test_a_job_runs_its_windows_in_order_and_resumes_after_what_is_done():
    job, sink = ListJob(10, done=3), Sink()
    with reporting_to(sink):
        out = run_job(job, progress=False)
    assert out == [i * i for i in range(10)]
    assert job.log == ["lock", "hooks", "open 3", "commit 3", "open 7", "commit 7", "finish",
                       "unlock"]  # fmt: skip
    assert sink.calls[0] == ("begin", 10, 3)  # rows an earlier run did
    assert [n for kind, n, _ in sink.calls[1:]] == [2, 2, 2, 1]  # one per batch


def test_nothing_left_opens_no_bar_and_runs_nothing():
    job, sink = ListJob(4, done=4), Sink()
    with reporting_to(sink):
        assert run_job(job, progress=False) == [0, 1, 4, 9]
    assert job.log == ["lock", "finish", "unlock"] and sink.calls == []


def test_ctrl_c_discards_the_open_window_and_says_how_far_the_job_got():
    job = ListJob(10, fail_at=6)  # the second batch of the second window
    with pytest.raises(Stopped, match="interrupted after 4 of 10 squares") as e:
        run_job(job, progress=False)
    assert (e.value.rows_done, e.value.rows_total) == (4, 10)
    assert job.log[-4:] == ["commit 0", "open 4", "discard 4", "unlock"]
    assert job.out[4:] == [None] * 6  # nothing of the half-run window


def test_an_error_propagates_as_it_is_and_releases_the_lock():
    job = ListJob(6, fail_at=2, error=FloatingPointError("non-finite activation"))
    with pytest.raises(FloatingPointError, match="non-finite activation"):
        run_job(job, progress=False)
    assert job.log == ["lock", "hooks", "open 0", "discard 0", "unlock"]
