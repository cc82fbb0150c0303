"""``with obj:`` closes ``obj``: the protocol of stores and writers, in one place."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["Closing"]


class Closing:
    """``with obj:`` closes ``obj`` on exit (the protocol of stores and writers, in one place)."""

    def close(self) -> None:  # pragma: no cover - every user defines it
        raise NotImplementedError

    def __enter__(self: _C) -> _C:
        return self

    def __exit__(self, et: object, e: object, tb: object) -> None:
        self.close()


_C = TypeVar("_C", bound=Closing)
