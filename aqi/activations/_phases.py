"""Where a capture's time goes: an optional timer of its phases, for the speed benchmark.

``benchmarks/speed/capture.py --phases`` runs one capture inside :func:`timing_phases`
and prints the seconds of each phase (:data:`PHASES`). Capture and its hooks look for a
timer once, when they are made; without one they hold :data:`OFF`, whose phases are one
shared do-nothing context, so an ordinary capture computes and writes exactly what it
did, at the cost of a few no-op context entries per batch. Nothing here is public API.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar

__all__ = ["OFF", "PHASES", "PhaseTimer", "current_timer", "timing_phases"]

#: The timed phases of a capture, in the order a window meets them: the writer's opening
#: (provenance, weights fingerprint, lock, resume), tokenisation and batch planning of a
#: window, padding and masks of a batch (and its inputs' copy to the device), the model's
#: forward pass (hooks included, their pooling excepted), the pooling in the hooks, the
#: pooled tensors' copy to the host, the part file's writes, its commit, and the
#: consolidation of the parts into the store.
PHASES = ("setup", "tokenise", "batching", "forward", "pooling", "device copy",
          "hdf5 write", "commit", "consolidation")  # fmt: skip

_NOTHING: contextlib.nullcontext[None] = contextlib.nullcontext()


class PhaseTimer:
    """Seconds spent in each phase of :data:`PHASES`, each exclusive of the phases nested in
    it (the hooks' pooling runs inside the forward pass and is not counted twice).

    Parameters
    ----------
    sync : callable, optional
        Called at every phase boundary (``torch.cuda.synchronize`` on a GPU), so that work
        queued on an accelerator is charged to the phase that queued it. Synchronising
        takes away the overlap of the host's work with the device's, so a timed capture
        may take longer than an untimed one; the shares are what the timer reports.
    on : bool
        ``False``: every phase is a shared do-nothing context (:data:`OFF`).
    """

    def __init__(self, sync: Callable[[], None] | None = None, *, on: bool = True) -> None:
        self.sync = sync
        self.on = on
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self._open: list[list[float]] = []  # [start, seconds of the phases nested in it]

    def phase(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A context whose time is charged to ``name`` (nothing at all when off)."""
        if not self.on:
            return _NOTHING
        if name not in self.seconds:
            raise ValueError(f"phase {name!r}; expected one of {', '.join(PHASES)}")
        return self._timed(name)

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        if self.sync is not None:
            self.sync()  # the work queued before this phase is not its own
        frame = [time.perf_counter(), 0.0]
        self._open.append(frame)
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            self._open.pop()
            elapsed = time.perf_counter() - frame[0]
            self.seconds[name] += elapsed - frame[1]
            if self._open:
                self._open[-1][1] += elapsed


#: The timer of every capture run outside :func:`timing_phases`: it times nothing.
OFF = PhaseTimer(on=False)

_CURRENT: ContextVar[PhaseTimer] = ContextVar("aqi_capture_phases", default=OFF)


def current_timer() -> PhaseTimer:
    """The timer of the enclosing :func:`timing_phases` block, else :data:`OFF`."""
    return _CURRENT.get()


@contextlib.contextmanager
def timing_phases(sync: Callable[[], None] | None = None) -> Iterator[PhaseTimer]:
    """Time the phases of every capture started inside the block.

    Examples
    --------
    >>> with timing_phases() as timer:
    ...     with current_timer().phase("forward"):
    ...         with current_timer().phase("pooling"):
    ...             pass
    >>> timer.seconds["forward"] >= 0 and timer.seconds["pooling"] >= 0
    True
    >>> current_timer() is OFF
    True
    """
    timer = PhaseTimer(sync)
    token = _CURRENT.set(timer)
    try:
        yield timer
    finally:
        _CURRENT.reset(token)
