"""``aqi track``: the callback's measurements over saved checkpoint folders.

The baseline model is measured first (the reference, step 0: it alone generates and is
judged, unless ``generate=True`` / ``--generate``); every checkpoint folder is then loaded
in turn (sorted by step: ``trainer_state.json``'s ``global_step``, else the
last number of the folder name), measured against it with the baseline's tokenizer, and
freed. A folder without weights is named on stderr and skipped. Writes
``aqi_track.jsonl`` (the records of :class:`~aqi.integrations.AlignmentWatch`, one per
line, the baseline first) and ``aqi_track.png`` (:func:`aqi.viz.training.plot_alignment_series`).
Nothing here imports torch or transformers until a command runs.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._outputs import check_output, png_metadata, write_atomic

__all__ = ["TrackResult", "add_parser", "checkpoint_step", "run", "track_checkpoints"]

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "pytorch_model.bin.index.json")  # fmt: skip


@dataclass(frozen=True)
class TrackResult:
    """The series (baseline first), the folders skipped with why, and the files written."""

    records: tuple[dict[str, Any], ...]
    skipped: tuple[tuple[str, str], ...]
    jsonl: Path
    figure: Path


def checkpoint_step(folder: str | os.PathLike[str]) -> int | None:
    """The training step of a checkpoint folder: ``trainer_state.json``'s ``global_step``,
    else the last number in the folder's name, else ``None``.

    Examples
    --------
    >>> checkpoint_step("runs/checkpoint-250")
    250
    >>> checkpoint_step("final") is None
    True
    """
    p = Path(folder)
    state = p / "trainer_state.json"
    if state.is_file():
        try:
            step = json.loads(state.read_text(encoding="utf-8")).get("global_step")
            if isinstance(step, int) and not isinstance(step, bool):
                return step
        except (OSError, json.JSONDecodeError):
            pass
    nums = re.findall(r"\d+", p.name)
    return int(nums[-1]) if nums else None


def _why_skip(folder: Path) -> str | None:
    if not folder.is_dir():
        return "not a folder"
    if not any((folder / w).is_file() for w in _WEIGHTS):
        if (folder / "adapter_model.safetensors").is_file():
            return "adapter weights only (merge the adapter into the model first)"
        return f"no weights ({' / '.join(_WEIGHTS[::2])})"
    if checkpoint_step(folder) is None:
        return "no step (no trainer_state.json and no number in the folder name)"
    return None


def _is_track_series(path: Path) -> bool:
    """Whether ``path`` is a series aqi track wrote (its first line a record with a step and
    a checkpoint): replaced by the next run."""
    try:
        with path.open(encoding="utf-8") as f:
            first = json.loads(f.readline())
    except (OSError, ValueError):
        return False
    return isinstance(first, dict) and {"step", "checkpoint"} <= set(first)


def track_checkpoints(
    checkpoints: Sequence[str | os.PathLike[str]],
    baseline: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] = "aqi-track",
    *,
    dtype: str = "auto",
    device: str | None = None,
    pairs: int = 16,
    n_unsafe: int = 8,
    n_safe: int = 4,
    max_new_tokens: int | None = None,
    layer: str | int | None = None,
    generate: bool = False,
    judge: Any = None,
    warn: Callable[[str], None] | None = None,
) -> TrackResult:
    """Measure the baseline, then every checkpoint against it; write the series and figure.

    Parameters
    ----------
    checkpoints : sequence of path-like
        Checkpoint folders of one run (``output_dir/checkpoint-*``), in any order.
    baseline : path-like or str
        The model training started from (folder, hub id in the local cache, or ``"demo"``).
    out_dir : path-like, default "aqi-track"
    dtype, device :
        As in :func:`aqi.load_model`, for the baseline and every checkpoint.
    pairs, n_unsafe, n_safe, max_new_tokens, layer, generate, judge :
        As in :class:`aqi.integrations.AlignmentCallback`: by default only the baseline
        generates (every prompt, judged) and each checkpoint's refusal is predicted from
        one forward pass per prompt (``predicted_*``); ``generate=True`` also generates
        and judges ``n_unsafe`` + ``n_safe`` prompts for every checkpoint.
    warn : callable, optional
        Called with one line per skipped folder (default: print to stderr).

    Raises
    ------
    ValueError
        When no checkpoint folder holds weights (each is named with why).

    Examples
    --------
    >>> track_checkpoints([], "demo")
    Traceback (most recent call last):
    ...
    ValueError: checkpoints is empty; give the checkpoint folders of a run (e.g. out/checkpoint-*)
    """
    from ..loading import resolve_dtype
    from .watch import WATCH_NEW_TOKENS, AlignmentWatch, watch_prompts

    if not checkpoints:
        raise ValueError("checkpoints is empty; give the checkpoint folders of a run "
                         "(e.g. out/checkpoint-*)")  # fmt: skip
    keep, skipped = _sort_out(checkpoints, warn or (lambda line: print(line, file=sys.stderr)))
    prompts = watch_prompts(pairs)  # its checks before a model loads
    out = Path(out_dir)
    jsonl, png = out / "aqi_track.jsonl", out / "aqi_track.png"
    inputs = [baseline, *checkpoints]
    check_output(jsonl, flag="out_dir", inputs=inputs, ours=_is_track_series)
    check_output(png, flag="out_dir", inputs=inputs)
    model, tok = _load_baseline(baseline, dtype, device)
    dev = str(next(model.parameters()).device)
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="aqi-track-") as work:
        watch = AlignmentWatch(work, prompts=prompts, n_unsafe=n_unsafe,
                               n_safe=n_safe, layer=layer, generate=generate, judge=judge,
                               max_new_tokens=max_new_tokens or WATCH_NEW_TOKENS)  # fmt: skip
        try:
            rec = watch.measure(model, tok, step=0)
            records.append({**rec, "checkpoint": str(baseline)})
            del model
            for step, folder in sorted(keep, key=lambda t: (t[0], str(t[1]))):
                ckpt = _load_checkpoint(folder, dtype, dev, resolve_dtype)
                records.append({**watch.measure(ckpt, tok, step=step), "checkpoint": str(folder)})
                del ckpt
        finally:
            watch.close()
    _write_series(records, jsonl, png, baseline)
    return TrackResult(records=tuple(records), skipped=tuple(skipped), jsonl=jsonl, figure=png)


def _sort_out(checkpoints: Sequence[str | os.PathLike[str]], say: Callable[[str], None],
              ) -> tuple[list[tuple[int, Path]], list[tuple[str, str]]]:  # fmt: skip
    """The checkpoint folders that hold weights (with their steps) and those skipped (with
    why, each said); refuse when none holds weights."""
    keep: list[tuple[int, Path]] = []
    skipped: list[tuple[str, str]] = []
    for c in checkpoints:
        why = _why_skip(Path(c))
        if why is None:
            keep.append((checkpoint_step(c) or 0, Path(c)))
        else:
            skipped.append((str(c), why))
    if not keep:  # one line: the error names every folder and why
        raise ValueError("no checkpoint folder holds weights: " + "; ".join(
            f"{c}: {why}" for c, why in skipped))  # fmt: skip
    for c, why in skipped:
        say(f"aqi track: skipping {c}: {why}")
    return keep, skipped


def _load_baseline(baseline: str | os.PathLike[str], dtype: str,
                   device: str | None) -> tuple[Any, Any]:  # fmt: skip
    """The baseline model and its tokenizer (``"demo"``: the bundled demo model)."""
    from ..loading import load_model

    if str(baseline) == "demo":
        from ..demo import load_demo_model

        return load_demo_model()
    return load_model(baseline, dtype=dtype, device=device)


def _write_series(records: list[dict[str, Any]], jsonl: Path, png: Path,
                  baseline: str | os.PathLike[str]) -> None:  # fmt: skip
    """Write the series (one JSON line per checkpoint, NaN as null) and its figure."""
    from ..viz.training import plot_alignment_series

    lines = []
    for r in records:
        clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
        lines.append(json.dumps(clean, allow_nan=False) + "\n")
    write_atomic(jsonl, "".join(lines))
    fig = plot_alignment_series(records, title=f"{Path(str(baseline)).name} → checkpoints")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, metadata=png_metadata())
    write_atomic(png, buf.getvalue())


def _load_checkpoint(folder: Path, dtype: str, dev: str, resolve_dtype: Any) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    want = resolve_dtype(dtype, dev, getattr(config, "dtype", None))
    return AutoModelForCausalLM.from_pretrained(folder, dtype=want).to(dev).eval()


# -- the command line ------------------------------------------------------------------
def add_parser(sub: Any, positive_int: Callable[[str], int]) -> None:
    """Add ``aqi track`` to the ``aqi`` parser's subcommands."""
    p = sub.add_parser(
        "track", help="alignment over saved checkpoints against the base model (series + PNG)",
        description="Measure the base model, then every checkpoint folder against it: AQI at "
        "one layer on the instruction and post-instruction spans, refusal-score shift, and "
        "refusal predicted from one forward pass (fitted on the base model's judged greedy "
        "generations; --generate also generates and judges for every checkpoint). Writes "
        "aqi_track.jsonl and aqi_track.png.")
    p.add_argument("checkpoints", nargs="+", help="checkpoint folders (e.g. out/checkpoint-*)")
    p.add_argument("--baseline-model", required=True,
                   help="the model training started from (folder, cached hub id, or 'demo')")
    p.add_argument("--out-dir", default="aqi-track", help="folder for the series and figure")
    p.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps")
    p.add_argument("--layer", default=None, help="layer to read (default: block at 2/3 depth)")
    p.add_argument("--pairs", type=positive_int, default=16, help="prompt pairs captured")
    p.add_argument("--max-new-tokens", type=positive_int, default=None,
                   help="tokens per judged generation (default 32)")
    p.add_argument("--generate", action="store_true",
                   help="generate and judge for every checkpoint too (default: the base "
                        "model only; checkpoints get the predicted refusal)")
    p.add_argument("--judge", default=None,
                   help="refusal judge of the generated responses, as aqi generate --judge "
                        "(default: [tool.aqi] judge, else the phrase rules)")
    p.add_argument("--json", action="store_true", help="print the records as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``aqi track``; returns the exit code (0; input errors raise ValueError)."""
    layer: str | int | None = args.layer
    if isinstance(layer, str) and re.fullmatch(r"-?\d+", layer):
        layer = int(layer)
    from ..behaviour import resolve_judge
    from ..checks import configured_judge

    name = getattr(args, "judge", None)  # else [tool.aqi] judge, else the default
    # resolved once: a bad --judge is refused before any model loads
    judge = resolve_judge(configured_judge(getattr(args, "config", None)) if name is None
                          else name)  # fmt: skip
    res = track_checkpoints(args.checkpoints, args.baseline_model, args.out_dir,
                            dtype=args.dtype, device=args.device, pairs=args.pairs,
                            max_new_tokens=args.max_new_tokens, layer=layer,
                            generate=args.generate, judge=judge)  # fmt: skip
    if args.json:
        print(json.dumps([{k: None if isinstance(v, float) and math.isnan(v) else v
                           for k, v in r.items()} for r in res.records], indent=2))  # fmt: skip
        return 0
    print(f"{'step':>7}  {'AQI instr':>9}  {'AQI post':>8}  {'judged':>6}  {'predicted':>9}  "
          f"{'shift':>6}  verdict")
    for r in res.records:
        print(f"{r['step']:>7}  {r['aqi_instruction']:>9.1f}  {r['aqi_post_instruction']:>8.1f}  "
              f"{_share(r['refusal']):>6}  {_share(r['predicted_refusal']):>9}  "
              f"{r['refusal_shift_unsafe']:>+6.2f}  {r['verdict']}")
    print(f"series: {res.jsonl}\nfigure: {res.figure}")
    return 0


def _share(v: float) -> str:
    """A rate as a percentage; ``-`` when it was not measured (NaN)."""
    return "-" if isinstance(v, float) and math.isnan(v) else f"{v:.0%}"
