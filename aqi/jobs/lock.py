"""``<path>.lock``: one writer per output path, with a dead owner's lock taken over.

Activation stores, their shard merges and responses files are written under this
lock; a second writer is refused with :class:`StoreLockedError` naming the lock and
its owner (pid and host).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any

__all__ = ["StoreLockedError", "WriterLock"]


class StoreLockedError(RuntimeError):
    """Another process is writing the same store (its lock file names the pid and host)."""


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

    Parameters
    ----------
    path : Path
        The output the lock guards; the lock file is ``<path>.lock``.
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
