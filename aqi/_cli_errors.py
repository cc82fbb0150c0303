"""How the command line speaks to a person: Python arguments spelled as flags
(:func:`cli_spelling`), an interruption (how far it got, whether running again resumes) and
a user's error, each on one line of stderr with what to do about it."""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import Any

from ._cli_parser import EXIT_INTERRUPTED, EXIT_USAGE
from ._errors import NAME_ONLY, NamedArguments

#: Python arguments whose flag is not ``--`` + their name with dashes.
_FLAGS = {"name_or_path": "--model", "do_sample": "--sample", "model": "--model"}
#: Python (argument, value) pairs that are a switch on the command line.
_SWITCHES = {("on_empty", "drop"): "--drop-empty", ("do_sample", True): "--sample",
             ("allow_partial", True): "--partial", ("include_response", True): "--include-response"}


def cli_spelling(name: str, value: Any) -> str:
    """How the command line spells the Python argument ``name=value`` (its flag).

    >>> cli_spelling("on_empty", "drop"), cli_spelling("batch_size", 0)
    ('--drop-empty', '--batch-size 0')
    """
    if isinstance(value, (str, bool, int)) and (name, value) in _SWITCHES:
        return _SWITCHES[(name, value)]
    flag = _FLAGS.get(name, "--" + name.replace("_", "-"))
    return flag if value is NAME_ONLY or value is True else f"{flag} {value}"


#: What to lower when a command runs out of memory: batches for the model commands,
#: resamples (which the statistics hold ``n_boot × classes × dim`` of) for the others.
_OOM_HINT = {
    "capture": "lower --batch-size or --max-tokens-per-batch",
    "generate": "lower --batch-size",
    "score": "lower --n-boot or --n-perm",
    "report": "lower --n-boot, --n-perm or --reward-n-boot",
    "gate": "lower --n-boot, --n-perm or --reward-n-boot",
    "audit": "lower --batch-size, --n-boot or --n-perm",
    "compare": "lower --n-boot",
    "probe": "lower --n-boot",
}


def _interrupted(args: argparse.Namespace, e: KeyboardInterrupt) -> int:
    """Say how far an interrupted command got, and whether running it again resumes."""
    if args.debug:
        traceback.print_exc()
    done, total = getattr(e, "rows_done", None), getattr(e, "rows_total", None)
    unit = getattr(e, "unit", "rows")
    where = f" after {done} of {total} {unit}" if done is not None else ""
    resumable = args.command in ("capture", "generate", "audit")
    again = "; run the same command again to resume" if resumable else ""
    print(f"aqi {args.command}: interrupted{where}{again}", file=sys.stderr)
    return EXIT_INTERRUPTED


#: What to do about an OS error on a user's path, by errno name.
_OS_HINTS = {
    "ENOENT": "check the path (a missing folder is not created for it)",
    "EEXIST": "it is in the way: remove it or choose another path",
    "ENOTDIR": "a part of the path is a file, not a folder: choose another path",
    "EISDIR": "it is a folder: give a file path in it",
    "EACCES": "choose a path you may read and write, or change its permissions",
    "EPERM": "choose a path you may read and write, or change its permissions",
    "EROFS": "the file system is read-only: choose a path on a writable one",
    "ENOSPC": "the disk is full: free space or choose another folder",
    "ENAMETOOLONG": "shorten the path",
}


def _os_error(e: OSError) -> str:
    """An OS error as ours: which path, what is wrong with it, what to do (no ``[Errno N]``)."""
    import errno as errno_names

    name = errno_names.errorcode.get(e.errno or 0, "")
    paths = " → ".join(repr(str(p)) for p in (e.filename, e.filename2) if p is not None)
    what = e.strerror[0].lower() + e.strerror[1:] if e.strerror else type(e).__name__
    hint = _OS_HINTS.get(name, "check the path and its permissions")
    return f"{paths or 'a path'}: {what}; {hint}"


def _user_error(args: argparse.Namespace, e: BaseException) -> int:
    """Print the one line of a user error (``--debug``: after the traceback); return 2."""
    oom = isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError"
    if args.debug:
        traceback.print_exc()
    if isinstance(e, NamedArguments):
        text = " ".join(e.render(cli_spelling).split())
    elif isinstance(e, OSError) and e.errno is not None and e.strerror:
        text = _os_error(e)
    elif isinstance(e, KeyError) and e.args:
        text = str(e.args[0])
    else:
        text = " ".join(str(e).split())
    if oom:
        text = f"out of memory ({text}); {_OOM_HINT.get(args.command, _OOM_HINT['score'])}"
    print(f"aqi {args.command}: error: {text or type(e).__name__}", file=sys.stderr)
    return EXIT_USAGE
