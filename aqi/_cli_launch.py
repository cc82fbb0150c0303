"""``aqi capture --nproc N``: the torchrun launch, as one command with one error shape."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["launch", "start_process_group"]

from ._cli_parser import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE


def _without_nproc(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def launch(
    args: argparse.Namespace, argv: Sequence[str], *, count: Callable[[], int],
    user_error: Callable[[argparse.Namespace, BaseException], int],
) -> int:
    """Run this capture as ``--nproc`` processes under torchrun (no home-made launcher).

    ``count()`` reads the prompts here first, so that a split that cannot work is one line before
    any process starts. The ranks' stderr comes through this process: progress as it
    comes, and on a failure one line (the ranks' own error, else the exit status) instead
    of torchrun's report and every rank's traceback; ``--debug`` shows them all.
    """
    import subprocess

    from ._progress import progress_bars

    try:
        with progress_bars(False):
            n = count()
        if args.nproc > n:
            what = "prompt" if n == 1 else "prompts"
            raise ValueError(f"--nproc {args.nproc} is more than the {n} {what} to capture; "
                             f"use --nproc {n} or fewer")
    except (ValueError, TypeError, OSError, KeyError) as e:
        return user_error(args, e)
    except KeyboardInterrupt:
        print("aqi capture: interrupted before any process started", file=sys.stderr)
        return EXIT_INTERRUPTED
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={args.nproc}", "-m", "aqi", *_without_nproc(argv)]
    env = {"OMP_NUM_THREADS": "1", **os.environ}  # torchrun's banner otherwise
    import signal

    # Ctrl-C is ours to handle, not Python's default: a KeyboardInterrupt raised wherever
    # the main thread happens to be (inside Popen, between two reads, after the last one)
    # could be lost or become a traceback under load. The handler records the signal and
    # passes it on to torchrun once (torchrun passes it to its ranks, which commit what
    # they have); the stderr loop reads with a timeout, so the handler runs within a
    # fraction of a second; the exit status comes from the record, not from where the
    # signal landed. torchrun runs in a session of its own, so that a terminal's Ctrl-C
    # reaches this process alone and the ranks get exactly one signal.
    caught: list[int] = []
    forwarded: list[bool] = []
    proc: Any = None

    def forward() -> None:
        if caught and not forwarded and proc is not None and proc.poll() is None:
            forwarded.append(True)
            proc.send_signal(caught[0])

    def on_signal(signum: int, frame: Any) -> None:
        caught.append(signum)
        forward()

    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, on_signal) for s in handled}
    try:
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, start_new_session=True)
        forward()  # a signal that came while the process was being started
        seen: list[str] = []
        _relay(proc, seen, args.debug, stopping=lambda: bool(caught))
        try:
            code = proc.wait(timeout=60 if caught else None)
        except subprocess.TimeoutExpired:  # pragma: no cover - a rank that hangs
            proc.kill()
            code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if caught:
        print(f"aqi capture: interrupted ({_shards(args)}); run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED if caught[0] == signal.SIGINT else 128 + caught[0]
    if code == 0:
        return EXIT_OK
    ours = [ln for ln in seen if ln.startswith("aqi capture: ")]
    line = ours[0] if ours else (f"aqi capture: error: a capture process failed (exit {code}); "
                                 "run again with --debug to see its traceback")
    print(f"{line} [{_shards(args)}]", file=sys.stderr)
    return EXIT_USAGE


def _shards(args: argparse.Namespace) -> str:
    """What a stopped run leaves: its shard stores (kept, they resume) or none."""
    from .activations import shard_path
    from .jobs.parts import partial_dir

    paths = [shard_path(args.out, r, args.nproc) for r in range(args.nproc)]
    left = [str(p) for p in paths if p.exists() or partial_dir(p).exists()]
    return f"shards kept for a resume: {', '.join(left)}" if left else "no shards written"


def _relay(proc: Any, seen: list[str], debug: bool,
           stopping: Callable[[], bool] = lambda: False) -> None:
    """Copy the ranks' stderr to ours as it comes; keep aqi's lines, drop tracebacks.

    Once ``stopping()`` is true (a signal was passed on), nothing more is shown: what a
    process prints as it is stopped (torchrun's report, Python's "Fatal Python error" of
    an interpreter stopped while it starts) is noise; ``--debug`` shows it.
    """
    import re
    import select

    def chunks() -> Any:
        fd = proc.stderr.fileno()
        while True:  # a timeout, so that a signal handler runs promptly (see launch)
            if select.select([fd], [], [], 0.2)[0]:
                data = os.read(fd, 4096)
                if not data:
                    return
                yield data

    buf, quiet = "", False
    for chunk in chunks():
        buf += chunk.decode("utf-8", "replace")
        *done, buf = re.split(r"(?<=[\r\n])", buf)
        for piece in done:
            line = piece.rstrip("\r\n")
            if line.startswith("aqi capture: "):
                seen.append(line)
                continue  # printed once, by the launcher, at the end
            if not debug:
                quiet = quiet or stopping()
                # torchrun's failure report starts with a traceback; ranks prefix theirs
                quiet = quiet or line.startswith(("Traceback", "[rank"))
                if quiet or not line.strip() or re.match(r"[WEI]\d{4} \d\d:", line):
                    continue  # (and torch's own log lines)
            sys.stderr.write(piece)
            sys.stderr.flush()


def start_process_group() -> bool:
    """Join torchrun's process group (gloo: capture only exchanges barriers)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    dist.init_process_group("gloo")
    return True
