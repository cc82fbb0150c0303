"""How a job writes: :class:`Writing`, one value for the settings every long write shares."""

from __future__ import annotations

from dataclasses import dataclass

from .._settings import check_bool, check_choice, check_positive_int

__all__ = ["CAPTURE_ONLY", "DEFAULT_MAX_TOKENS_PER_BATCH", "Writing"]

#: Most padded tokens (rows x longest row) per forward pass of a capture, by default.
DEFAULT_MAX_TOKENS_PER_BATCH = 8192
#: The fields of :class:`Writing` that shape an activation store and its forward passes;
#: generation (a JSONL file, batches of ``batch_size``) refuses them unless left at default.
CAPTURE_ONLY = ("max_tokens_per_batch", "padding_side", "commit_rows", "compression")


@dataclass(frozen=True, kw_only=True)
class Writing:
    """How a job writes: its batches, its output, its progress bar.

    One value for :func:`aqi.capture` and :func:`aqi.generate_responses` (and the steps of
    :func:`aqi.audit_models`), checked when it is made. The first three fields are
    shared; the other four shape a capture's forward passes and store, and generation
    refuses them unless they keep their defaults.

    Parameters
    ----------
    batch_size : int, default 16
        Most prompts per forward pass (capture) or ``generate`` call (generation).
    overwrite : bool, default False
        Replace an existing output (finished or not) instead of resuming it. Only an aqi
        output is ever replaced (a store and its ``.partial`` folder, or a responses
        file); any other file is refused, as is an output that is the call's own input.
    progress : bool, optional
        Show a progress bar (default: :func:`aqi.progress_bars`, else only on a terminal
        outside CI).
    max_tokens_per_batch : int or None, default 8192
        Capture: most padded tokens (rows x longest row) per forward pass; batches of
        long prompts hold fewer rows, and a prompt longer than this runs alone. Bounds
        memory and time per batch whatever the inputs. ``None``: no bound (batches of
        ``batch_size``). Results do not depend on it.
    padding_side : {"left", "right"}, optional
        Capture: the padding side (default: the tokenizer's). Results do not depend on it;
        generation always pads on the left.
    commit_rows : int, optional
        Capture: rows per committed window (default 2048), the unit of length sorting and
        of the work a crash can lose. Memory does not grow with it.
    compression : {"lzf", "gzip", None}, default "lzf"
        Capture: compression of the finished store's datasets.

    Raises
    ------
    aqi._errors.ArgumentError
        A field that is not what it may be, named with its value and what is accepted.

    Examples
    --------
    >>> import aqi
    >>> w = aqi.Writing(batch_size=8, progress=False)
    >>> w.batch_size, w.overwrite, w.compression
    (8, False, 'lzf')
    >>> aqi.Writing(batch_size=0)
    Traceback (most recent call last):
    ...
    aqi._errors.ArgumentError: batch_size=0; expected a positive int
    """

    batch_size: int = 16
    overwrite: bool = False
    progress: bool | None = None
    max_tokens_per_batch: int | None = DEFAULT_MAX_TOKENS_PER_BATCH
    padding_side: str | None = None
    commit_rows: int | None = None
    compression: str | None = "lzf"

    def __post_init__(self) -> None:
        check_positive_int("batch_size", self.batch_size)
        check_bool("overwrite", self.overwrite)
        check_bool("progress", self.progress, none="automatic")
        check_positive_int("max_tokens_per_batch", self.max_tokens_per_batch, none="")
        check_choice("padding_side", self.padding_side, ("left", "right", None))
        check_positive_int("commit_rows", self.commit_rows, none="")
        check_choice("compression", self.compression, ("lzf", "gzip", None))
