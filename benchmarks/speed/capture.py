"""Benchmark: aqi.capture on SmolLM2-135M-Instruct (CPU), against the bare forward and the
usual ``output_hidden_states`` pipeline, run in this one process.

    python benchmarks/speed/capture.py            # full run (~20 min on 2 cores)
    python benchmarks/speed/capture.py --rss-max 3000   # shorter memory check
    python benchmarks/speed/capture.py --rss-only --rss-repeats 3   # only the memory figure
    python benchmarks/speed/capture.py --long-prompt    # one 60,000-character prompt among 200
    python benchmarks/speed/capture.py --device cuda --dtype bfloat16   # on a GPU (ratios, memory)
    python benchmarks/speed/capture.py --spans          # two spans in one forward vs one span
    python benchmarks/speed/capture.py --phases         # where capture's time goes, phase by phase
    python benchmarks/speed/capture.py --phases --n 64 --device cuda --dtype bfloat16

Prints:
1. capture time / bare forward time over the same batches (target <= 1.10);
2. reference pipeline time (unsorted batches of 8, output_hidden_states=True, pooling
   afterwards, written to HDF5) / capture time (target >= 1.3);
3. peak RSS growth from 600 to 6,000 prompts (each a fresh subprocess, ``--rss-repeats``
   times, medians compared; target <= 100 MB), with the within-run slope of the big runs;
4. tokens/s and prompts/s;
5. with ``--long-prompt`` only: one 60,000-character prompt among 200 normal ones / the 200
   alone (target <= 1.5);
6. with ``--spans`` only: capture of two spans (instruction, post_instruction: the default)
   / capture of one (instruction), same prompts, layers and poolings, best of ``--repeats``
   alternating runs (target <= 1.05);
7. with ``--phases`` only: one capture (``--n`` prompts, default all; ``--device``,
   ``--dtype``) with its phases timed, seconds and share of the capture's wall time each:
   setup (provenance and weights fingerprint, lock, resume), tokenise (encoding and batch
   planning), batching (padding, span masks, inputs to the device), forward (the model
   with its hooks, their pooling excepted), pooling, device copy (pooled tensors to the
   host), HDF5 write, commit (a window's part file), consolidation (the parts into the
   store), and the rest (prompt loading, layer resolution, the finite check, progress);
   then the bare forward over the same batches (backbone only, and with the LM head) and
   capture / backbone forward, forward + pooling / backbone forward. The phases are timed
   through ``aqi.activations._phases.timing_phases`` (a capture run without it times
   nothing); on a GPU the timer synchronises at every phase boundary, which takes away
   the overlap of host and device work, so read the shares, and compare the ratio with
   that of an untimed run (``--device``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import aqi
from aqi.activations import PromptEncoder, PromptSet
from aqi.demo import load_demo_model
from aqi.prompts.batching import pad_batch
from benchmarks.real_prompts import real_prompts, repeated

POOLINGS = ("mean", "last")
BATCH = 16
QUIET = aqi.Writing(batch_size=BATCH, progress=False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward(model, tok, prompts, backbone_only: bool = False) -> tuple[float, int]:
    """The model's own forward over exactly the batches capture runs (sorted, batch 16)."""
    enc = PromptEncoder(tok, span="user").encode(list(prompts))
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i].input_ids))
    net = model.model if backbone_only else model
    device = next(model.parameters()).device
    tokens = 0
    _sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), BATCH):
            ids, attn, _ = pad_batch(
                [enc[i] for i in order[b : b + BATCH]], tok.pad_token_id, "right"
            )
            ids, attn = ids.to(device), attn.to(device)
            net(
                input_ids=ids,
                attention_mask=attn,
                position_ids=(attn.cumsum(-1) - 1).clamp(min=0),
                use_cache=False,
            )
            tokens += int(attn.sum())
    _sync(device)
    return time.perf_counter() - t0, tokens


def reference_pipeline(model, tok, prompts, out: Path) -> tuple[float, dict[str, np.ndarray]]:
    """What users write by hand: unsorted batches of 8, output_hidden_states, pool afterwards."""
    enc_all = PromptEncoder(tok, span="user").encode(list(prompts))
    texts = [PromptEncoder(tok, span="user").render(p)[0] for p in prompts]
    tok.padding_side = "right"
    pooled: dict[str, list[np.ndarray]] = {}
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(texts), 8):
            batch = tok(
                texts[b : b + 8], padding=True, add_special_tokens=False, return_tensors="pt"
            )
            hs = model(**batch, output_hidden_states=True, use_cache=False).hidden_states
            span = np.zeros(batch["input_ids"].shape, bool)
            for i, e in enumerate(enc_all[b : b + 8]):
                span[i, e.start : e.stop] = True
            last = span.shape[1] - 1 - np.argmax(span[:, ::-1], axis=1)
            for layer, h in enumerate(hs[1:-1]):  # block outputs 0 .. L-2 (HF's last is post-norm)
                h = h.numpy()
                mean = (h * span[..., None]).sum(1) / span.sum(1, keepdims=True)
                pooled.setdefault(f"{layer}/mean", []).append(mean)
                pooled.setdefault(f"{layer}/last", []).append(h[np.arange(len(h)), last])
    arrays = {k: np.concatenate(v) for k, v in pooled.items()}
    with h5py.File(out, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, chunks=True, compression="lzf", shuffle=True)
    return time.perf_counter() - t0, arrays


def _statm_mb() -> tuple[float, float]:
    """Resident size and its file-backed part (mapped weights, libraries), in MB."""
    with open("/proc/self/statm") as f:
        fields = f.read().split()
    page = os.sysconf("SC_PAGE_SIZE") / 2**20
    return int(fields[1]) * page, int(fields[2]) * page


def _rss_mb() -> float:
    return _statm_mb()[0]


def _slope_per_1000(rows: np.ndarray, mb: np.ndarray) -> float:
    """Least-squares slope of ``mb`` against ``rows``, in MB per 1,000 prompts (nan if flat)."""
    if len(rows) < 2 or np.ptp(rows) == 0:
        return float("nan")
    return float(np.polyfit(rows, mb, 1)[0] * 1000)


def like_the_whole_set(ps: PromptSet, n: int, tok: Any) -> PromptSet:
    """``n`` prompts with the length profile of the whole real set, longest included.

    Above the set's size the set is repeated; below it, every k-th prompt in token-length
    order is kept (in the set's order). The first ``n`` prompts alone would leave out the
    longest ones, so a small run's batches would be shorter than a big run's and part of
    the "growth" with ``n`` would be batch length, not ``n``.
    """
    if n >= len(ps):
        return repeated(ps, n)
    lengths = [len(tok(p.text).input_ids) for p in ps]
    by_length = np.argsort(lengths, kind="stable")
    # n < len(ps): the spacing exceeds 1, so the rounded positions are distinct
    keep = sorted(by_length[np.linspace(0, len(ps) - 1, n).round().astype(int)].tolist())
    return PromptSet([ps[i] for i in keep], name=ps.name)


def rss_child(n: int, warm: int) -> None:
    """Capture ``n`` prompts (like the real set: see :func:`like_the_whole_set`); print RSS
    figures in MB as JSON.

    ``peak_mb`` is the highest resident size sampled (every 5 ms) *during* the capture;
    ``before_mb`` the resident size just before it (model loaded, prompts built), so
    loading the model does not mask what the capture itself uses. ``peak_rows`` is how
    many rows had been written when the peak was sampled (``n``: during the final
    consolidation) and ``peak_file_mb`` the file-backed part of the peak (the model's
    memory-mapped weights, libraries; the rest is anonymous memory).

    ``slope_mb_per_1000`` is the least-squares slope of the resident size against the
    rows written, over the samples after the first ``warm`` rows and before the
    consolidation; ``slope_anon_mb_per_1000`` the same for the anonymous part. Within
    one process it is far less noisy than peaks of separate processes.
    """
    from aqi.activations import writer

    model, tok = load_demo_model()
    ps = like_the_whole_set(real_prompts(), n, tok)
    done = [0]
    write = writer.PartWriter.write

    def counting_write(self, rows, arrays):  # the rows written so far, for the slope
        write(self, rows, arrays)
        done[0] += len(rows)

    writer.PartWriter.write = counting_write
    before = _rss_mb()
    peak = (0, before, 0.0)
    # every 20th sample (100 ms) kept for the slope: all of them would add ~15 MB at 6,000
    samples: list[tuple[int, float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        k = 0
        while not stop.is_set():
            s = (done[0], *_statm_mb())
            peak = max(peak, s, key=lambda x: x[1])
            if k % 20 == 0:
                samples.append(s)
            k += 1
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    with tempfile.TemporaryDirectory() as d:
        sampler.start()
        t0 = time.perf_counter()
        aqi.capture(
            model, tok, ps, Path(d) / "rss.h5", pooling=POOLINGS, writing=QUIET
        ).close()
        elapsed = time.perf_counter() - t0
        stop.set()
        sampler.join()
    writer.PartWriter.write = write
    lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows, rss, file = (np.array(c) for c in zip(*samples, strict=True))
    steady = (rows >= warm) & (rows < n)
    print(
        json.dumps(
            {
                "n": n,
                "peak_mb": peak[1],
                "before_mb": before,
                "peak_rows": peak[0],
                "peak_file_mb": peak[2],
                "slope_mb_per_1000": _slope_per_1000(rows[steady], rss[steady]),
                "slope_anon_mb_per_1000": _slope_per_1000(rows[steady], rss[steady] - file[steady]),
                "lifetime_peak_mb": lifetime,
                "seconds": elapsed,
            }
        )
    )


def rss_run(n: int, warm: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(n), "--rss-min", str(warm)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_report(n_small: int, n_big: int, repeats: int = 2) -> None:
    """Peak RSS growth from ``n_small`` to ``n_big`` prompts: medians of ``repeats`` runs each.

    The peak of one process varies by about +-100 MB from run to run for the same ``n``, so
    each size runs ``repeats`` times (fresh processes, alternating) and the medians are
    compared; the figure held against the target is that difference. The within-run slope
    of the big runs (MB per 1,000 prompts after the first ``n_small``) is printed beside it,
    with the growth it implies from ``n_small`` to ``n_big``.
    """
    small: list[dict] = []
    big: list[dict] = []
    for _ in range(repeats):
        small.append(rss_run(n_small, n_small))
        big.append(rss_run(n_big, n_small))
    for name, runs in ((n_small, small), (n_big, big)):
        print(
            f"   {name} prompts: peaks "
            + ", ".join(
                f"{r['peak_mb']:.0f} MB (+{r['peak_mb'] - r['before_mb']:.0f} over the loaded "
                f"model, {r['peak_mb'] - r['peak_file_mb']:.0f} anonymous, at row "
                f"{r['peak_rows']}/{name}, {r['seconds']:.0f} s)"
                for r in runs
            )
        )
    slopes = [r["slope_mb_per_1000"] for r in big]
    anon = [r["slope_anon_mb_per_1000"] for r in big]
    implied = float(np.median(slopes)) * (n_big - n_small) / 1000
    print(
        f"   within-run slope of the {n_big}-prompt runs after {n_small} rows: "
        + ", ".join(f"{s:+.1f}" for s in slopes)
        + " MB per 1,000 prompts (anonymous memory: "
        + ", ".join(f"{s:+.1f}" for s in anon)
        + f") -> {implied:+.0f} MB over {n_big - n_small} prompts"
    )
    p_small = float(np.median([r["peak_mb"] for r in small]))
    p_big = float(np.median([r["peak_mb"] for r in big]))
    print(
        f"3. peak RSS during capture (median of {repeats}): {n_small} prompts {p_small:.0f} MB, "
        f"{n_big} prompts {p_big:.0f} MB -> growth {p_big - p_small:+.0f} MB (target <= 100 MB; "
        f"the within-run slope implies {implied:+.0f} MB)"
    )


def _demo_model_on(device_name: str, dtype_name: str) -> tuple[torch.device, Any, Any]:
    """The demo model and its tokenizer on ``device_name`` in ``dtype_name`` (a CUDA device
    that is not visible is refused)."""
    from aqi.loading import resolve_dtype

    device = torch.device(device_name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device_name}: no CUDA device is visible")
    model, tok = load_demo_model()
    return device, model.to(device=device, dtype=resolve_dtype(dtype_name, device.type)), tok


def device_report(device_name: str, dtype_name: str) -> None:
    """Capture on an accelerator (or the CPU) in a given dtype: the headline ratios there.

    Prints capture / backbone-only forward (the fair floor: capture exits before the LM
    head), capture / forward with the LM head, tokens/s, and the peak accelerator memory
    of the capture (CUDA only). Where no GPU is available, ``--device cpu --dtype
    bfloat16`` runs the same code.
    """
    device, model, tok = _demo_model_on(device_name, dtype_name)
    prompts = real_prompts()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"SmolLM2-135M-Instruct on {name} in {dtype_name}, {len(prompts)} prompts, "
          f"30 blocks x {len(POOLINGS)} poolings, batch {BATCH}")
    bare_forward(model, tok, prompts[:64])  # warm-up (kernels, allocator)
    with tempfile.TemporaryDirectory() as d:
        aqi.capture(model, tok, prompts[:64], Path(d) / "warm.h5", pooling=POOLINGS,
                    writing=QUIET).close()  # fmt: skip
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        t0 = time.perf_counter()
        aqi.capture(model, tok, prompts, Path(d) / "cap.h5", pooling=POOLINGS,
                    writing=QUIET).close()  # fmt: skip
        _sync(device)
        t_capture = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    t_bare, tokens = bare_forward(model, tok, prompts)
    t_backbone, _ = bare_forward(model, tok, prompts, backbone_only=True)
    print(f"capture {t_capture:.2f} s; forward with LM head {t_bare:.2f} s; backbone only "
          f"{t_backbone:.2f} s")
    print(f"1. capture / backbone forward = {t_capture / t_backbone:.3f} (target <= 1.10); "
          f"capture / forward with LM head = {t_capture / t_bare:.3f}")
    print(f"4. throughput: {tokens / t_capture:,.0f} tokens/s"
          + (f"; peak GPU memory during capture {peak:.0f} MiB" if peak is not None else ""))


def long_prompt_report(max_length: int | None, max_tokens_per_batch: int | None) -> None:
    """One 60,000-character prompt among 200 normal ones, against the 200 alone (target <= 1.5).

    The long prompt is truncated to ``max_length`` tokens (default: the model's context)
    on its own, and batches are bounded by ``max_tokens_per_batch`` padded tokens, so it
    runs alone instead of padding a batch of 16 to its length.
    """
    model, tok = load_demo_model()
    normal = aqi.bundled_prompts()[:200]
    long = aqi.Prompt("long", ("Tell me a long story about a lighthouse keeper. " * 1250)[:60_000],
                      "safe", "long")  # fmt: skip
    rows = aqi.PromptSet([*normal[:100], long, *normal[100:]])
    kw = {"pooling": POOLINGS, "rendering": aqi.Rendering(max_length=max_length),
          "writing": aqi.Writing(batch_size=BATCH, progress=False,
                                 max_tokens_per_batch=max_tokens_per_batch)}  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        aqi.capture(model, tok, normal[:16], Path(d) / "warm.h5", **kw).close()
        t0 = time.perf_counter()
        aqi.capture(model, tok, normal, Path(d) / "normal.h5", **kw).close()
        t_normal = time.perf_counter() - t0
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the truncation warning
            store = aqi.capture(model, tok, rows, Path(d) / "long.h5", **kw)
        t_long = time.perf_counter() - t0
        n_tok = int(store.token_counts[100])
        store.close()
    print(
        f"5. one 60,000-character prompt ({n_tok} tokens after truncation, max_length="
        f"{max_length or 'model default'}, max_tokens_per_batch={max_tokens_per_batch}) among "
        f"200: {t_long:.1f} s vs the 200 alone {t_normal:.1f} s -> ratio "
        f"{t_long / t_normal:.2f} (target <= 1.5)"
    )


def spans_report(repeats: int, n: int | None) -> None:
    """Two spans pooled from one forward pass against one span (ratio of best times)."""
    model, tok = load_demo_model()
    prompts = real_prompts()
    if n is not None:
        prompts = like_the_whole_set(prompts, n, tok)
    print(f"SmolLM2-135M-Instruct, CPU ({torch.get_num_threads()} threads), {len(prompts)} "
          f"prompts, 30 blocks x {len(POOLINGS)} poolings, batch {BATCH}, best of {repeats}")
    bare_forward(model, tok, prompts[:32])  # warm-up
    settings = {"one span": ("instruction",), "two spans": ("instruction", "post_instruction")}
    times: dict[str, list[float]] = {k: [] for k in settings}
    with tempfile.TemporaryDirectory() as d:
        for r in range(repeats):
            for name, spans in (settings.items() if r % 2 == 0 else reversed(settings.items())):
                path = Path(d) / f"{r}-{len(spans)}.h5"
                t0 = time.perf_counter()
                aqi.capture(model, tok, prompts, path, spans=spans, pooling=POOLINGS,
                            writing=QUIET).close()  # fmt: skip
                times[name].append(time.perf_counter() - t0)
                path.unlink()
    for name, ts in times.items():
        print(f"  {name:9s}: best {min(ts):7.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ts)})")
    ratio = min(times["two spans"]) / min(times["one span"])
    print(f"6. two spans / one span       = {ratio:.3f}  (target <= 1.05)")


def phases_report(device_name: str, dtype_name: str, n: int | None) -> None:
    """One capture with its phases timed (:data:`aqi.activations._phases.PHASES`), against
    the bare forward over the same batches: where capture's time beyond the forward lives."""
    from aqi.activations._phases import timing_phases
    device, model, tok = _demo_model_on(device_name, dtype_name)
    prompts = real_prompts()
    if n is not None:
        prompts = like_the_whole_set(prompts, n, tok)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU ({torch.get_num_threads()} threads)")  # fmt: skip
    print(f"SmolLM2-135M-Instruct on {name} in {dtype_name}, {len(prompts)} prompts, "
          f"30 blocks x {len(POOLINGS)} poolings, batch {BATCH}: capture's phases")
    bare_forward(model, tok, prompts[:32])  # warm-up (kernels, allocator)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    with tempfile.TemporaryDirectory() as d:
        aqi.capture(model, tok, prompts[:32], Path(d) / "warm.h5", pooling=POOLINGS,
                    writing=QUIET).close()  # fmt: skip
        with timing_phases(sync) as timer:
            _sync(device)
            t0 = time.perf_counter()
            aqi.capture(model, tok, prompts, Path(d) / "cap.h5", pooling=POOLINGS,
                        writing=QUIET).close()  # fmt: skip
            _sync(device)
            total = time.perf_counter() - t0
    t_backbone, tokens = bare_forward(model, tok, prompts, backbone_only=True)
    t_bare, _ = bare_forward(model, tok, prompts)
    seconds = {**timer.seconds, "rest": total - sum(timer.seconds.values())}
    for phase, s in seconds.items():
        print(f"  {phase:14s} {s:8.2f} s  {s / total:6.1%}")
    print(f"  {'capture':14s} {total:8.2f} s  ({tokens / total:,.0f} tokens/s)")
    print(f"bare forward, same batches: backbone only {t_backbone:.2f} s, with LM head "
          f"{t_bare:.2f} s")
    fwd = seconds["forward"] + seconds["pooling"]
    print(f"7. capture / backbone forward = {total / t_backbone:.3f}; forward + pooling / "
          f"backbone forward = {fwd / t_backbone:.3f}; the rest of capture's time is "
          f"{(total - fwd) / t_backbone:.3f} x the backbone forward")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--long-prompt", action="store_true",
        help="only the case of one 60,000-character prompt among 200 normal ones",
    )  # fmt: skip
    ap.add_argument("--max-length", type=int, default=None, help="for --long-prompt")
    ap.add_argument(
        "--max-tokens-per-batch", type=int, default=8192,
        help="for --long-prompt (0: unbounded, the batching before 0.2)",
    )  # fmt: skip
    ap.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--rss-min", type=int, default=600)
    ap.add_argument("--rss-max", type=int, default=6000)
    ap.add_argument(
        "--rss-repeats", type=int, default=2,
        help="fresh processes per size for the RSS figure (medians are compared)",
    )  # fmt: skip
    ap.add_argument("--skip-rss", action="store_true")
    ap.add_argument("--rss-only", action="store_true", help="only the memory measurement")
    ap.add_argument("--device", default=None,
                    help="cuda, cuda:N or cpu: the device report (ratios, tokens/s, GPU memory); "
                         "with --phases, where the phases are timed")
    ap.add_argument("--dtype", default="auto",
                    help="with --device (or --phases): float32, bfloat16, float16")
    ap.add_argument("--spans", action="store_true",
                    help="only: two spans in one forward pass vs one span")
    ap.add_argument("--repeats", type=int, default=3, help="for --spans: alternating runs each")
    ap.add_argument("--phases", action="store_true",
                    help="only: one capture with its phases timed (forward, pooling, device "
                         "copy, HDF5 write, commit, consolidation, ...) vs the bare forward")
    ap.add_argument("--n", type=int, default=None,
                    help="for --spans and --phases: prompts (default all; a subset keeps the "
                         "length profile)")
    args = ap.parse_args()
    if args.spans:
        spans_report(args.repeats, args.n)
        return
    if args.phases:
        phases_report(args.device or "cpu", args.dtype, args.n)
        return
    if args.device:
        device_report(args.device, args.dtype)
        return
    if args.rss_child:
        rss_child(args.rss_child, args.rss_min)
        return
    if args.long_prompt:
        long_prompt_report(args.max_length, args.max_tokens_per_batch or None)
        return
    if args.rss_only:
        rss_report(args.rss_min, args.rss_max, args.rss_repeats)
        return
    torch.manual_seed(0)
    model, tok = load_demo_model()
    prompts = real_prompts()
    n_unsafe = sum(p.is_unsafe for p in prompts)
    print(
        f"SmolLM2-135M-Instruct, CPU ({torch.get_num_threads()} threads), {len(prompts)} prompts "
        f"({n_unsafe} unsafe), 30 blocks x {len(POOLINGS)} poolings, batch {BATCH}"
    )
    bare_forward(model, tok, prompts[:32])  # warm-up
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        store = aqi.capture(
            model,
            tok,
            prompts,
            Path(d) / "cap.h5",
            pooling=POOLINGS,
            writing=QUIET,
        )
        t_capture = time.perf_counter() - t0
        size_mb = (Path(d) / "cap.h5").stat().st_size / 2**20
        t_bare, tokens = bare_forward(model, tok, prompts)
        t_backbone, _ = bare_forward(model, tok, prompts, backbone_only=True)
        t_ref, ref = reference_pipeline(model, tok, prompts, Path(d) / "ref.h5")
        diff = max(
            float(np.abs(store.activations(f"model.layers.{i}", p) - ref[f"{i}/{p}"]).max())
            for i in range(29)
            for p in POOLINGS
        )
        store.close()
    print(f"capture (all 30 blocks, 2 poolings, HDF5 {size_mb:.0f} MB): {t_capture:8.2f} s")
    print(f"bare forward, same batches (with LM head):    {t_bare:8.2f} s")
    print(f"bare forward, same batches (backbone only):   {t_backbone:8.2f} s")
    print(
        f"reference pipeline (batches of 8, unsorted):  {t_ref:8.2f} s  "
        f"(max |diff| vs capture: {diff:.2e})"
    )
    r1 = t_capture / t_bare
    r1b = t_capture / t_backbone
    r2 = t_ref / t_capture
    print(
        f"1. capture / bare forward     = {r1:.3f}  (target <= 1.10)  [vs backbone only: {r1b:.3f}]"
    )
    print(f"2. reference / capture        = {r2:.2f}   (target >= 1.3)")
    if not args.skip_rss:
        rss_report(args.rss_min, args.rss_max, args.rss_repeats)
    print(
        f"4. throughput: {tokens / t_capture:,.0f} tokens/s, "
        f"{len(prompts) / t_capture:.1f} prompts/s ({tokens / len(prompts):.1f} tokens per prompt)"
    )


if __name__ == "__main__":
    main()
