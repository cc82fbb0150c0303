"""The unfinished-capture protocol: the ``<path>.partial/`` folder and what may touch a path.

While a capture runs, the rows it has committed live next to the store in
``<path>.partial/``: ``manifest.h5`` written once, and one
``part-<start>-<stop>.h5`` per committed window, each written under a
temporary name, fsync'ed and atomically renamed (:func:`publish`). A part file
therefore exists whole or not at all. On resume every part is read back
(:func:`damaged_parts`); one that cannot be read back whole (truncated, missing a
dataset, rows short) is moved beside the store as ``<store>.<part>.damaged``
and its rows are captured again.

Two writers never share a path: :class:`WriterLock` holds ``<path>.lock``
(pid and host inside) for as long as a writer lives. And a writer replaces only
what is ours (:func:`remove_ours`): an aqi store, or its partial folder. The input
check, the temporary name and the atomic rename are :mod:`aqi._outputs`' (shared with the
reports, figures and tables), re-exported here.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import socket
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import h5py

from .._outputs import check_not_input, publish, tmp_name
from ._format import ROW_COLUMNS, is_aqi_store

__all__ = [
    "MANIFEST",
    "StoreLockedError",
    "WriterLock",
    "atomic_h5",
    "check_not_input",
    "check_ours",
    "damaged_parts",
    "list_parts",
    "manifest_path",
    "part_path",
    "partial_dir",
    "publish",
    "remove_ours",
    "set_aside",
    "tmp_name",
]

MANIFEST = "manifest.h5"
_PART_RE = re.compile(r"^part-(\d{10})-(\d{10})\.h5$")
# Names a partial folder of ours may hold; anything else means it is not ours.
_OURS_RE = re.compile(r"^(manifest\.h5|part-\d{10}-\d{10}\.h5)(\.tmp-\d+)?$")


class Closing:
    """``with obj:`` closes ``obj`` on exit (the protocol of stores and writers, in one place)."""

    def close(self) -> None:  # pragma: no cover - every user defines it
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, et: object, e: object, tb: object) -> None:
        self.close()


_C = TypeVar("_C", bound=Closing)


class StoreLockedError(RuntimeError):
    """Another process is writing the same store (its lock file names the pid and host)."""



def partial_dir(path: Path) -> Path:
    """Where the committed parts of an unfinished capture of ``path`` live."""
    return path.with_name(path.name + ".partial")


def manifest_path(path: Path) -> Path:
    """The manifest of an unfinished capture of ``path``."""
    return partial_dir(path) / MANIFEST


def part_path(d: Path, start: int, stop: int) -> Path:
    """The part file holding rows ``[start, stop)`` in the partial folder ``d``."""
    return d / f"part-{start:010d}-{stop:010d}.h5"


def list_parts(d: Path) -> list[tuple[int, int, Path]]:
    """Committed parts of an unfinished capture, sorted; overlapping parts are an error."""
    parts = []
    for p in d.iterdir() if d.is_dir() else ():
        m = _PART_RE.match(p.name)
        if m:
            parts.append((int(m.group(1)), int(m.group(2)), p))
    parts.sort()
    for (_a0, a1, pa), (b0, _, pb) in itertools.pairwise(parts):
        if b0 < a1:
            raise ValueError(f"store parts overlap: {pa.name} and {pb.name}; the store is damaged")
    return parts


def atomic_h5(final: Path, fill: Callable[[h5py.File], Any]) -> None:
    """Write an HDF5 file under a temporary name, fsync it and rename it into place."""
    tmp = tmp_name(final)
    try:
        with h5py.File(tmp, "w") as f:
            fill(f)
        publish(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _part_problem(path: Path, n: int, keys: Sequence[str]) -> str | None:
    """Why the part at ``path`` (``n`` rows, datasets ``keys``) is damaged; ``None`` if whole."""
    try:
        with h5py.File(path, "r") as f:
            for key in [*keys, *(f"rows/{k}" for k in ROW_COLUMNS)]:
                if key not in f:
                    return f"{key} is missing"
                data = f[key][()]  # reads every chunk: truncation and checksums surface here
                if data.shape[0] != n:
                    return f"{key} has {data.shape[0]} rows, expected {n}"
    except (OSError, ValueError, KeyError) as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


def damaged_parts(d: Path, datasets: Iterable[str]) -> list[tuple[Path, str]]:
    """Parts in ``d`` that cannot be read back whole (``datasets``: the activation datasets
    each must hold, :func:`~._format.dataset_name`), with the reason for each."""
    keys = list(datasets)
    out = []
    for a, b, path in list_parts(d):
        problem = _part_problem(path, b - a, keys)
        if problem is not None:
            out.append((path, problem))
    return out


def set_aside(path: Path, reason: str) -> Path:
    """Move a damaged part beside the store as ``<store>.<part>.damaged`` and warn naming it.

    It is kept (outside the partial folder, which is removed once the capture
    completes) so that the damage can be inspected.
    """
    stem = path.parent.name.removesuffix(".partial")
    target = path.parent.parent / f"{stem}.{path.name}.damaged"
    for i in itertools.count(1):
        if not target.exists():
            break
        target = path.parent.parent / f"{stem}.{path.name}.damaged-{i}"
    os.replace(path, target)
    warnings.warn(
        f"part file {str(path)!r} is damaged ({reason}); moved it to {str(target)!r} and "
        "its rows will be captured again",
        stacklevel=3,
    )
    return target


def _is_our_partial(d: Path) -> bool:
    return d.is_dir() and all(_OURS_RE.match(p.name) for p in d.iterdir())


def check_ours(path: Path) -> None:
    """Refuse (``ValueError`` naming it) a ``path`` or partial folder that aqi may not replace.

    Replaceable: nothing, an aqi store, a partial folder holding only aqi's files.
    Anything else (a JSONL, a foreign or unreadable HDF5 file, a folder of other
    files) is not ours: ``overwrite`` never destroys it.
    """
    d = partial_dir(path)
    if path.is_dir():
        raise IsADirectoryError(f"store path {str(path)!r} is a directory; name a file")
    if path.exists() and not is_aqi_store(path):
        raise ValueError(
            f"refusing to overwrite {str(path)!r}: it is not an aqi activation store (no "
            "readable 'format' attribute); choose another path, or delete it yourself"
        )
    if d.exists() and not _is_our_partial(d):
        raise ValueError(
            f"refusing to overwrite {str(d)!r}: it holds files an aqi capture did not write; "
            "choose another path, or delete it yourself"
        )


def remove_ours(path: Path) -> None:
    """Delete the store at ``path`` and its partial folder, after :func:`check_ours`."""
    check_ours(path)
    path.unlink(missing_ok=True)
    shutil.rmtree(partial_dir(path), ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


_HELD: set[str] = set()  # lock paths held by live writers of this process


class WriterLock:
    """``<path>.lock``: one writer per store path, across processes and within one.

    The lock file holds the owner's pid and host. A second writer gets a
    ``RuntimeError`` naming the lock and its owner; a lock left by a dead
    process on this host (``kill -9``) is taken over with a warning.
    """

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self.held = False
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale(me)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            _HELD.add(str(self.path))
            return
        raise RuntimeError(f"could not take the lock {str(self.path)!r}; try again")

    def _take_over_if_stale(self, me: dict[str, Any]) -> None:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except FileNotFoundError:
            return  # released meanwhile: try again
        except (OSError, ValueError):
            owner = {}
        pid, host = owner.get("pid"), owner.get("host")
        ours = str(self.path) in _HELD
        if host == me["host"] and isinstance(pid, int):
            if pid == me["pid"] and not ours:
                stale = True  # left by a writer of this process that was never closed
            else:
                stale = pid != me["pid"] and not _pid_alive(pid)
            if stale:
                warnings.warn(
                    f"taking over the stale lock {str(self.path)!r} (pid {pid} on {host} "
                    "is no longer running)",
                    stacklevel=4,
                )
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                return
        raise StoreLockedError(
            f"another writer holds {str(self.path)!r} (pid {pid} on host {host}); wait for it "
            "to finish, or if it is gone, delete the lock file and run again"
        )

    def release(self) -> None:
        """Give the lock back (idempotent)."""
        if self.held:
            self.held = False
            _HELD.discard(str(self.path))
            self.path.unlink(missing_ok=True)
