"""What may be written where: the one output guard and the one atomic write.

Every file aqi writes — activation stores, responses files, reports (HTML, JSON,
markdown), figures, tables — goes through :func:`check_not_input` and, for the files
that are written whole, :func:`check_output` then :func:`write_atomic`:

* a path that is an input of the same run is refused (writing it would destroy it);
* a path that exists but is not a regular file (a folder, a device such as
  ``/dev/full``, a FIFO, a socket) is refused, and so is a path under ``/proc``,
  ``/sys`` or ``/dev``;
* an existing regular file that aqi did not write is refused unless ``overwrite``;
* a folder that cannot be written is refused — probed by creating (and removing) a
  file in it, which also catches read-only mounts where :func:`os.access` says yes;
* the file is written under a temporary name in its own folder, fsync'ed and renamed
  into place (:func:`publish`): it exists whole or not at all.

How aqi recognises its own files (:func:`written_by_aqi`): a marker inside the file,
in the first 64 KiB, where each format allows one —

* HTML: ``<meta name="generator" content="aqi …">`` in the head;
* JSON: the document's first key is ``"schema": "aqi.…"`` (``aqi.audit``, …);
* JSON Lines: the first line is a JSON object with ``"generator": "aqi …"`` or
  ``"schema": "aqi.…"``;
* markdown, CSV and other text: a first line ``<!-- generator: aqi … -->`` or
  ``# generator: aqi …``;
* PNG: a ``Software`` text chunk beginning ``aqi`` (matplotlib's ``metadata=``).

Stores and responses files carry their own marks (the store's ``format`` attribute,
the responses file's header) and keep their own checks; they share this module's
input check and atomic rename.

This module is a leaf (it imports only aqi's version), so every layer may use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "GENERATOR",
    "OutputError",
    "check_not_input",
    "check_output",
    "file_sha256",
    "generator",
    "png_metadata",
    "publish",
    "tmp_name",
    "write_atomic",
    "written_by_aqi",
]

#: The generator mark: ``aqi`` and its version.
GENERATOR = "aqi"
_HEAD = 64 * 1024
_SYSTEM = ("/proc", "/sys", "/dev")  # pseudo-filesystems: no user file belongs there
_MARKS = (b'<meta name="generator" content="aqi', b'"schema": "aqi.', b'"schema":"aqi.',
          b'"generator": "aqi', b'"generator":"aqi', b"<!-- generator: aqi",
          b"# generator: aqi")  # fmt: skip


class OutputError(ValueError):
    """An output path aqi refuses to write (a ``ValueError``: the user's input)."""


def generator() -> str:
    """The mark's text: ``"aqi <version>"``."""
    from ._version import __version__

    return f"{GENERATOR} {__version__}"


def png_metadata() -> dict[str, str]:
    """The metadata to pass to ``savefig(..., metadata=)`` so the PNG is recognised as ours."""
    return {"Software": generator()}


def tmp_name(final: Path) -> Path:
    """The temporary name ``final`` is written under by this process (same folder)."""
    return final.with_name(f"{final.name}.tmp-{os.getpid()}")


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """fsync a finished temporary file, rename it into place, fsync the directory."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, in hex, read in 1 MiB blocks (what every record of
    an artefact's content uses: the audit's work folder, the demo's and the judge's assets)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def written_by_aqi(path: str | os.PathLike[str]) -> bool:
    """Whether the regular file at ``path`` carries aqi's generator mark (module docstring).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "r.json").write_text('{\\n  "schema": "aqi.audit"\\n}')
    >>> _ = (d / "notes.json").write_text('{"schema": "mine"}')
    >>> written_by_aqi(d / "r.json"), written_by_aqi(d / "notes.json")
    (True, False)
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return False
    if head.startswith(b"\x89PNG"):
        return b"Software\x00" + GENERATOR.encode() in head
    return any(m in head for m in _MARKS)


def check_not_input(
    out: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None],
    *, flag: str | None = None,
) -> None:  # fmt: skip
    """Refuse an output path that is one of the inputs (writing it would destroy the input).

    Parameters
    ----------
    out : path-like
        The file about to be written.
    inputs : iterable of path-like or None
        Files being read (``None`` entries are skipped).
    flag : str, optional
        How the caller names ``out`` (``"--out"``); default ``"output"``.

    Examples
    --------
    >>> check_not_input("acts.h5", ["prompts.jsonl", None])
    >>> check_not_input("p.jsonl", ["./p.jsonl"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._outputs.OutputError: output 'p.jsonl' is the input file './p.jsonl'; ...
    """
    o = Path(out)
    for i in inputs:
        if i is None or not isinstance(i, (str, os.PathLike)):
            continue
        p = Path(i)
        try:
            same = o.exists() and p.exists() and o.samefile(p)
        except OSError:  # pragma: no cover - unreadable paths: compare names
            same = False
        if same or o.resolve() == p.resolve():
            raise OutputError(
                f"{flag or 'output'} {str(out)!r} is the input file {str(i)!r}; writing it "
                "would destroy the input — choose another output path"
            )


def _nearest_existing(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _probe_writable(folder: Path, name: str) -> str | None:
    """Why a file cannot be created in ``folder`` (``None``: it can)."""
    probe = folder / f".{name}.aqi-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as e:
        return (e.strerror or type(e).__name__).lower()
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()
    return None


def _check_existing(p: Path, path: str | os.PathLike[str], flag: str, overwrite: bool,
                    ours: Callable[[Path], bool] | None) -> None:
    """An existing output must be a regular file that aqi wrote (or ``overwrite``)."""
    if p.is_symlink() or p.exists():
        try:
            mode = p.stat().st_mode
        except OSError as e:  # a dangling link, a loop: nothing we would replace
            raise OutputError(f"{flag} {str(path)!r} cannot be read ({e.strerror}); choose "
                              "another path") from None  # fmt: skip
        if stat.S_ISDIR(mode):
            raise OutputError(f"{flag} {str(path)!r} is a folder; give a file path in it")
        if not stat.S_ISREG(mode):
            raise OutputError(f"{flag} {str(path)!r} is not a regular file (a device, FIFO or "
                              "socket); choose a file path")  # fmt: skip
        if not overwrite and not (ours or written_by_aqi)(p):
            raise OutputError(
                f"refusing to overwrite {flag} {str(path)!r}: aqi did not write it (it carries "
                "no aqi generator mark, docs/errors.md); choose another path, delete it "
                "yourself, or pass --overwrite"
            )


def _check_folder(p: Path, path: str | os.PathLike[str], flag: str,
                  create_folder: bool) -> None:
    """The output's folder (or its nearest existing ancestor) must be a writable folder."""
    folder = p.absolute().parent
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise NotADirectoryError(f"{flag} {str(path)!r}: {str(base)!r} is a file, not a "
                                 "folder; choose another path")  # fmt: skip
    if base != folder and not create_folder:
        raise FileNotFoundError(f"{flag} {str(path)!r}: the folder {str(folder)!r} does not "
                                "exist; create it first")  # fmt: skip
    why = _probe_writable(base, p.name)
    if why is not None:
        raise PermissionError(f"{flag} {str(path)!r}: the folder {str(base)!r} cannot be "
                              f"written ({why}); choose a writable folder")  # fmt: skip


def check_output(
    path: str | os.PathLike[str],
    *,
    flag: str = "output",
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    overwrite: bool = False,
    ours: Callable[[Path], bool] | None = None,
    create_folder: bool = True,
) -> Path:
    """Refuse an output path aqi may not write, before any work starts; return it as a Path.

    Parameters
    ----------
    path : path-like
        The file about to be written.
    flag : str, default "output"
        How the message names it (``"--out"``, ``"--json-out"``, ``"out"``).
    inputs : iterable of path-like or None
        The run's inputs: none of them may be ``path``.
    overwrite : bool, default False
        Replace an existing regular file that aqi did not write.
    ours : callable, optional
        Whether an existing file is aqi's own (default :func:`written_by_aqi`): ours is
        replaced without ``overwrite``.
    create_folder : bool, default True
        A missing folder will be created by the writer: check that its nearest existing
        ancestor is a writable folder. ``False``: the folder must exist.

    Raises
    ------
    OutputError
        The path is an input, not a regular file, under ``/proc``, ``/sys`` or ``/dev``,
        or an existing file aqi did not write (without ``overwrite``).
    FileNotFoundError, NotADirectoryError, PermissionError
        Its folder is missing (``create_folder=False``), is a file, or cannot be written.

    Examples
    --------
    >>> check_output("/dev/full", flag="--out")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    aqi._outputs.OutputError: --out '/dev/full' is under /dev, not a place for a file aqi ...
    """
    p = Path(path)
    if not str(path):
        raise OutputError(f"{flag} is empty; give a file path")
    check_not_input(p, inputs, flag=flag)
    where = os.path.realpath(p)
    for root in _SYSTEM:
        if where == root or where.startswith(root + "/"):
            raise OutputError(f"{flag} {str(path)!r} is under {root}, not a place for a file aqi "
                              "writes; choose a path in an ordinary folder")  # fmt: skip
    _check_existing(p, path, flag, overwrite, ours)
    _check_folder(p, path, flag, create_folder)
    return p


def write_atomic(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Write ``data`` to ``path`` under a temporary name in its folder, then rename it.

    The folder is created if missing. Readers see the old file or the whole new one,
    never a half-written one; a failure (disk full, Ctrl-C) removes the temporary file.
    The caller runs :func:`check_output` first (before the work that makes ``data``).
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(p)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        publish(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return p
