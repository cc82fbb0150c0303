"""The writer of a responses file: one at a time, resumable, never over what is not ours.

It holds ``<path>.lock`` (the jobs room's :class:`~aqi.jobs.lock.WriterLock`:
a second writer is refused naming the lock, a dead owner's lock is taken over
with a warning), resumes a file of the same identity, refuses duplicated
records, and replaces a file only if it is an aqi responses file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..jobs.closing import Closing
from ..jobs.guard import check_target
from ..jobs.lock import WriterLock
from .responses import Response, _full_header, _head, _header_problem, _read_jsonl

__all__ = ["ResponseWriter", "check_responses_target"]


def check_responses_target(path: str | os.PathLike[str]) -> None:
    """Refuse an output path aqi may not write responses to (``ValueError`` naming it).

    Writable: nothing yet, or an aqi responses file (resumed, or replaced with
    ``overwrite``). A folder, a prompt file, another JSONL or an activation
    store is refused whatever ``overwrite`` says.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_responses_target(d / "new.jsonl")
    >>> _ = (d / "p.jsonl").write_text('{"id": "a", "text": "Hi", "label": "safe"}\\n')
    >>> check_responses_target(d / "p.jsonl")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: refusing to write '...p.jsonl': it is not an aqi responses file ...
    """
    check_target(Path(path), noun="responses", problem=lambda p: _header_problem(_head(p)),
                 refusal="refusing to write {path}: it is not an aqi responses file "
                         "({problem}); choose another output path, or delete it yourself")


class ResponseWriter(Closing):
    """Append-only, crash-safe writer of a responses file (used by ``generate_responses``).

    Holds ``<path>.lock`` until :meth:`close` (a second writer gets
    :class:`~aqi.jobs.StoreLockedError` naming the lock; a dead owner's
    lock is taken over with a warning). Resumes a file of the same identity,
    replaces one only with ``overwrite`` and only if it is an aqi responses file.
    """

    def __init__(self, path: str | os.PathLike[str], header: Mapping[str, Any], *,
                 overwrite: bool = False) -> None:  # fmt: skip
        self.path = Path(path)
        self.header = dict(header)
        self.done: list[Response] = []
        check_responses_target(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = WriterLock(self.path)
        try:
            self._open(overwrite)
        except BaseException:
            self._lock.release()
            raise

    def _open(self, overwrite: bool) -> None:
        if overwrite or not self.path.exists():
            self._create()
            return
        old, records = _read_jsonl(self.path, repair=True)
        if old is None:  # crashed before the header was written
            self._create()
            return
        mismatch = {
            k: (old.get("identity", {}).get(k), v)
            for k, v in self.header["identity"].items()
            if old.get("identity", {}).get(k) != v
        }
        if mismatch:
            shown = "; ".join(f"{k}: file has {a!r}, this call {b!r}" for k, (a, b) in
                              list(mismatch.items())[:4])  # fmt: skip
            raise ValueError(
                f"{self.path} was generated with other settings ({shown}); pass "
                "overwrite=True (CLI: --overwrite) to replace it, or another out path"
            )
        seen: set[tuple[str, int]] = set()
        for r in records:
            if r.key in seen:
                raise ValueError(
                    f"{self.path} holds two records for prompt {r.prompt_id!r}, sample "
                    f"{r.sample} (written by two writers at once?); pass overwrite=True "
                    "(CLI: --overwrite) to generate it again"
                )
            seen.add(r.key)
        self.done = records

    def _create(self) -> None:
        tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                f.write(json.dumps(_full_header(self.header), ensure_ascii=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def append(self, records: Iterable[Response]) -> None:
        text = "".join(json.dumps(r.to_record(), ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        """Release the lock (idempotent); what was appended stays for a resume."""
        self._lock.release()

    def __del__(self) -> None:  # pragma: no cover - best effort
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
