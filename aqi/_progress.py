"""Progress bars for long steps: on a terminal by default, never in CI or when switched off.

One switch for the whole library: :func:`progress_bars` (a context manager; the
command line's ``--quiet`` uses it). A step's own ``progress=`` argument, where it
has one (:func:`aqi.capture`, :func:`aqi.generate_responses`), wins over the switch.

Resampling (bootstraps, permutation nulls) shows a bar only over more than
:data:`ROWS_FOR_A_BAR` rows — below that it takes well under a second a layer — and
never inside another bar (e.g. the per-layer bar of a profile already counts it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

__all__ = [
    "ROWS_FOR_A_BAR",
    "RunDisplay",
    "bar",
    "progress_bars",
    "reporting_to",
    "show_progress",
    "step_bar",
    "transformers_bars",
    "umap_progress",
]

T = TypeVar("T")

#: Resampling over more rows than this gets a progress bar (bootstraps, permutations).
ROWS_FOR_A_BAR = 10_000

_SWITCH: ContextVar[bool | None] = ContextVar("aqi_progress", default=None)
_open_bars = 0  # bars alive now: an inner step stays silent inside an outer bar
# A run's own display (aqi audit's): steps report their rows to it instead of drawing a bar.
_SINK: ContextVar[Any] = ContextVar("aqi_progress_sink", default=None)


@contextlib.contextmanager
def progress_bars(enabled: bool | None) -> Iterator[None]:
    """Switch aqi's progress bars on (``True``), off (``False``) or to automatic (``None``).

    Automatic shows them when standard error is a terminal and the ``CI`` environment
    variable is unset.

    Examples
    --------
    >>> import aqi
    >>> with aqi.progress_bars(False):
    ...     show_progress()
    False
    """
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"enabled={enabled!r}; expected True, False or None (automatic)")
    token = _SWITCH.set(enabled)
    try:
        yield
    finally:
        _SWITCH.reset(token)


def show_progress(progress: bool | None = None) -> bool:
    """Whether a step shows a bar: its own ``progress`` argument, else the switch, else auto.

    Examples
    --------
    >>> show_progress(True), show_progress(False)
    (True, False)
    """
    if progress is not None:
        return bool(progress)
    switch = _SWITCH.get()
    if switch is not None:
        return switch
    return sys.stderr.isatty() and not os.environ.get("CI")


def bar(
    iterable: Iterable[T],
    *,
    desc: str,
    total: int | None = None,
    unit: str = "it",
    rows: int | None = None,
    weight: Callable[[T], int] | None = None,
    progress: bool | None = None,
) -> Iterable[T]:
    """``iterable`` with a progress bar on standard error when one should show.

    Parameters
    ----------
    iterable : iterable
        The steps.
    desc, total, unit : str, int, str
        The bar's label, its length (in units) and the unit's name.
    rows : int, optional
        Rows the work covers: below :data:`ROWS_FOR_A_BAR` no bar (resampling steps).
    weight : callable, optional
        Units one item counts for (e.g. ``len`` of a chunk of resamples); default 1.
    progress : bool, optional
        The step's own switch (see :func:`show_progress`).

    Examples
    --------
    >>> list(bar(range(3), desc="demo", progress=False))
    [0, 1, 2]
    """
    if _open_bars or not show_progress(progress):
        return iterable
    if rows is not None and rows <= ROWS_FOR_A_BAR:
        return iterable
    return _with_bar(iterable, desc, total, unit, weight)


def _with_bar(
    iterable: Iterable[T], desc: str, total: int | None, unit: str,
    weight: Callable[[T], int] | None,
) -> Iterator[T]:  # fmt: skip
    global _open_bars
    from tqdm.auto import tqdm

    _open_bars += 1
    try:
        with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False) as t:
            for item in iterable:
                yield item
                t.update(1 if weight is None else weight(item))
    finally:
        _open_bars -= 1


def umap_progress(progress: bool | None = None) -> dict[str, Any]:
    """``tqdm_kwds`` for ``umap.UMAP``: its layout epochs as a bar, without its verbose log."""
    return {"disable": _open_bars > 0 or not show_progress(progress), "desc": "UMAP layout",
            "file": sys.stderr, "leave": False}  # fmt: skip


@contextlib.contextmanager
def transformers_bars() -> Iterator[None]:
    """Hide transformers' own bars ("Loading weights") where aqi's would not show.

    transformers draws them whatever the output is; this follows :func:`show_progress`
    and restores transformers' setting afterwards.
    """
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and not show_progress():
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def reporting_to(sink: Any) -> Iterator[None]:
    """Inside this block, :func:`step_bar` reports to ``sink`` instead of drawing a bar.

    ``sink`` has ``begin(total, initial)`` (a step starts: its rows, and those already done
    by an earlier run) and ``advance(n)`` (``n`` more rows done). A multi-step run (``aqi
    audit``) uses it to draw one display for all its steps.
    """
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


class _Forward:
    """A step's bar inside a run's display: the rows go to the display; nothing is drawn."""

    def __init__(self, sink: Any, total: int, initial: int) -> None:
        self.sink = sink
        sink.begin(total, initial)

    def update(self, n: int = 1) -> None:
        self.sink.advance(n)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def step_bar(*, total: int, desc: str, unit: str, progress: bool | None = None,
             initial: int = 0) -> Any:  # fmt: skip
    """The bar of one long step (generation, capture): ``update(n)``, ``close()``.

    Inside :func:`reporting_to`, the rows go to the run's display; else a tqdm bar on
    standard error when :func:`show_progress` says so (``initial``: rows an earlier run
    did, counted without skewing the rate).

    Examples
    --------
    >>> b = step_bar(total=3, desc="demo", unit="row", progress=False)
    >>> b.update(3); b.close()
    """
    sink = _SINK.get()
    if sink is not None:
        return _Forward(sink, total, initial)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                disable=not show_progress(progress))  # fmt: skip


class RunDisplay:
    """One progress display for the whole run, on standard error; silent under
    ``progress=False`` / ``--quiet`` / CI.

    One bar, redrawn per phase: ``title [step/steps] phase role (model)``, the phase's rows done
    of its total with its rate and ETA, and the time the run has taken. Generation and
    capture report their rows to it (:func:`aqi._progress.reporting_to`) instead of
    drawing bars of their own; a phase whose work was already in the work folder shows
    ``reused``. When the run ends the bar is removed and the summary table follows.

    Examples
    --------
    >>> show = RunDisplay("aqi audit", 1, progress=False)
    >>> with show.phase("judge", "model", "m", rows=4):
    ...     pass
    >>> show.step
    1
    """

    def __init__(self, title: str, steps: int, progress: bool | None) -> None:
        self.title, self.steps, self.step, self.on = title, steps, 0, show_progress(progress)
        self.t0 = time.perf_counter()
        self.bar: Any = None

    # the sink interface of aqi._progress.reporting_to
    def begin(self, total: int | None, initial: int) -> None:
        if self.bar is not None:
            self.bar.refresh()  # the phase that ends, drawn as it ended (tqdm skips redraws)
            self.bar.reset()
            self.bar.total = total  # (reset(total=None) keeps the old total)
            # a phase without rows shows its time only (not "0row")
            self.bar.bar_format = None if total is not None else "{desc} [{elapsed}{postfix}]"
            self.bar.update(initial)  # rows an earlier run did
            self.bar.unpause()

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix_str(f"run {time.perf_counter() - self.t0:.0f} s", refresh=False)

    @contextlib.contextmanager
    def phase(self, phase: str, role: str, name: str, rows: int,
              reused: bool = False) -> Iterator[None]:  # fmt: skip
        self.step += 1
        if not self.on:
            yield
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=rows, unit="row", file=sys.stderr, leave=False,
                            dynamic_ncols=True)  # fmt: skip
        state = " reused" if reused else ""
        self.bar.set_description_str(f"{self.title} [{self.step}/{self.steps}] {phase} {role} "
                                     f"({name}){state}", refresh=False)  # fmt: skip
        counted = phase in ("generate", "capture")  # the others have no rows to count
        self.begin(rows if counted else None, rows if reused else 0)
        self.advance(0)
        try:
            with reporting_to(self):
                yield
        except BaseException:  # an error or Ctrl-C: its one line is not drawn over
            self.close()
            raise
        if self.step == self.steps:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
