"""``scsam-lite bench``: how fast is one training step, and how much faster than the stock way of running it.

A benchmark times whole training steps (forward, backward, optimiser) of a method as a run would do them, after
warm-up, with device-synchronised timers, on batches made before the clock starts. It runs two paths in one call:

- ``fast``: the config as given (autocast bf16, or fp16 + GradScaler before Ampere; 4-D SDPA attention; optional
  torch.compile);
- ``stock``: the way the reference runs it: fp32, segment-anything's own attention, autograd anomaly detection on.

and prints ms/step, images/s, peak GPU memory and the ratio, and the counted FLOPs of a step against the device's
matrix-product rate (how far a step is from what the hardware can do). Speed targets are checked here, never in unit
tests. Results are saved as JSON (config, device, versions, figures) under ``runs/bench/``.
"""

from __future__ import annotations

import copy
import gc
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from . import config as C
from .errors import ConfigError
from .methods import METHODS
from .paths import runs_dir
from .runs import write_json
from .runtime import _keep_freed_memory_default, keep_freed_memory, provenance, setup
from .trainer import build_training

#: what the issue asks of the full PEFT-SAM / SC-SAM step on a GPU at the paper's batch
TARGET_SPEEDUP = 8.0
TARGET_PEAK_GIB = 4.0


@dataclass
class BenchRow:
    path: str
    ms_per_step: float
    images_per_s: float
    peak_gib: float | None
    steps: int
    precision: str
    attention: str
    compiled: bool
    anomaly_detection: bool
    allocator: str = "n/a"
    #: matmul and convolution FLOPs of one step (forward and backward) as torch's FlopCounterMode counts them
    #: (attention only on a GPU: it has no formula for the CPU attention kernel); elementwise work is not counted,
    #: so this is a lower bound of the work
    gflop_per_step: float | None = None
    #: that count split over the outermost modules the step called (class names, e.g. ``UNet``,
    #: ``TwoWayTransformer``) and ``elsewhere`` (code outside any of them, such as the fast mask head's products)
    gflop_by_part: dict[str, float] | None = None


#: the paths a benchmark can time, and what each one is
PATHS = {
    "fast": "the config as given",
    "stock": "the reference's way: fp32, stock attention and mask decoder, anomaly detection on, glibc's default "
    "allocator",
    "stock-decoder": "the config as given but segment-anything's own mask decoder (generalist.fast_decoder=false)",
    "stock-allocator": "the config as given but glibc returning large freed blocks to the OS (its default; "
    "runtime.keep_freed_memory)",
    "stock-cpu": "the config as given with none of the package's CPU speed-ups: segment-anything's attention and "
    "mask decoder, glibc's default allocator (the CPU step before / after, without the anomaly detection of stock)",
}

#: the paths that run with the C allocator's default behaviour
_DEFAULT_ALLOCATOR = ("stock", "stock-allocator", "stock-cpu")


def path_config(cfg: C.Config, path: str) -> C.Config:
    """The config of one benchmark path (see :data:`PATHS`)."""
    out = copy.deepcopy(cfg)
    if path == "stock":
        out.train.precision = "fp32"
        out.generalist.fast_attention = False
        out.generalist.fast_decoder = False
        out.generalist.compile = False
    elif path == "stock-decoder":
        out.generalist.fast_decoder = False
    elif path == "stock-cpu":
        out.generalist.fast_attention = False
        out.generalist.fast_decoder = False
    elif path not in ("fast", "stock-allocator"):
        raise ConfigError(f"unknown benchmark path {path!r}", f"use {', '.join(PATHS)}")
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_path(cfg: C.Config, path: str, *, steps: int, warmup: int, verbose: bool = True) -> BenchRow:
    """Build the method fresh for ``path`` and time ``steps`` training steps after ``warmup`` ones."""
    pcfg = path_config(cfg, path)
    rt = setup(
        pcfg.train.seed,
        pcfg.train.device,
        precision=pcfg.train.precision,
        verbose=False,
        keep_memory=path not in _DEFAULT_ALLOCATOR,
    )
    _, _, method, sampler = build_training(pcfg, rt, embed=False)
    batches = [sampler.batch(s) for s in range(warmup + steps)]
    embeddings = getattr(method, "embeddings", None)
    if embeddings is not None:  # stored embeddings: only the timed batches' images, embedded before the clock
        embeddings.ensure(np.concatenate([np.r_[b.labeled_index, b.unlabeled_index] for b in batches]))
    per_step = len(batches[0].labeled_image) + len(batches[0].unlabeled_image)
    anomaly = path == "stock"
    method.train(True)
    with torch.autograd.set_detect_anomaly(anomaly, check_nan=anomaly):
        for s in range(warmup):
            method.train_step(batches[s], s)
        _sync(rt.device)
        if rt.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(rt.device)
        t0 = time.perf_counter()
        for s in range(warmup, warmup + steps):
            method.train_step(batches[s], s)
        _sync(rt.device)
        elapsed = time.perf_counter() - t0
        flops, parts = None, None
        # one more step, untimed (the counter slows it down); a compiled graph hides its ops from the counter
        if not pcfg.generalist.compile:
            with FlopCounterMode(display=False) as counter:
                method.train_step(batches[-1], warmup + steps)
            flops = float(f"{counter.get_total_flops() / 1e9:.4g}")
            parts = flop_parts(counter)
    peak = torch.cuda.max_memory_allocated(rt.device) / 2**30 if rt.device.type == "cuda" else None
    ms = 1000 * elapsed / steps
    row = BenchRow(
        path=path,
        ms_per_step=round(ms, 2),
        images_per_s=round(per_step * steps / elapsed, 1),
        peak_gib=None if peak is None else round(peak, 3),
        steps=steps,
        precision=str(rt.amp_dtype).replace("torch.", "") if rt.amp_dtype else "fp32",
        attention=("sdpa-4d" if pcfg.generalist.fast_attention else "stock")
        + (" / fast decoder" if pcfg.generalist.fast_decoder else " / stock decoder"),
        compiled=pcfg.generalist.compile,
        anomaly_detection=anomaly,
        allocator=rt.allocator,
        gflop_per_step=flops,
        gflop_by_part=parts,
    )
    if verbose:
        print(f"  {path:15s} {row.ms_per_step:9.1f} ms/step  {row.images_per_s:8.1f} images/s", flush=True)
    del method, batches, sampler
    gc.collect()
    if rt.device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def flop_parts(counter: FlopCounterMode) -> dict[str, float]:
    """GFLOP per outermost module of a count (``elsewhere``: the rest), so a step's work can be read by part:
    nested modules are left out, since their work is already in their parent's."""
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    total = counts.pop("Global", 0)
    parts = {name: n for name, n in counts.items() if "." not in name}
    parts["elsewhere"] = total - sum(parts.values())
    return {name: float(f"{n / 1e9:.4g}") for name, n in sorted(parts.items(), key=lambda kv: -kv[1])}


def matmul_rate(
    device: torch.device, dtype: torch.dtype = torch.float32, n: int = 1024, reps: int = 8
) -> float:
    """GFLOP/s of a large dense matrix product on ``device`` with the threads torch has: close to the most this
    device does, so ``gflop_per_step / matmul_rate`` is about the least time the counted work of a step can take."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def _median_rows(runs: list[BenchRow], paths: tuple[str, ...]) -> list[BenchRow]:
    """Each path's median round by ms/step (the faster of the middle two for an even count), in the order of
    ``paths``: one slow round, from a busy CPU or a cold cache, cannot move a median."""
    rows = []
    for p in paths:
        mine = sorted((r for r in runs if r.path == p), key=lambda r: r.ms_per_step)
        rows.append(mine[(len(mine) - 1) // 2])
    return rows


def _speedups(rows: list[BenchRow]) -> dict[str, float]:
    """The ratios of each stock path's ms/step to the fast path's, for the paths that were timed (the keys
    ``speedup``, ``speedup_decoder``, ``speedup_allocator``, ``speedup_cpu``, in that order, as saved)."""
    result: dict[str, float] = {}
    by = {r.path: r for r in rows}
    if "fast" in by and "stock" in by:
        result["speedup"] = round(by["stock"].ms_per_step / by["fast"].ms_per_step, 2)
    if "fast" in by and "stock-decoder" in by:
        result["speedup_decoder"] = round(by["stock-decoder"].ms_per_step / by["fast"].ms_per_step, 2)
    if "fast" in by and "stock-allocator" in by:
        result["speedup_allocator"] = round(by["stock-allocator"].ms_per_step / by["fast"].ms_per_step, 2)
    if "fast" in by and "stock-cpu" in by:
        result["speedup_cpu"] = round(by["stock-cpu"].ms_per_step / by["fast"].ms_per_step, 2)
    return result


def _bench_path(cfg: C.Config, out: str | Path | None) -> Path:
    """Where the result is saved: ``out``, or a file under ``runs/bench/`` named after method, generalist and
    time, so that successive benchmarks never overwrite one another."""
    return (
        Path(out)
        if out
        else runs_dir()
        / "bench"
        / f"bench-{cfg.train.method}-{cfg.generalist.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    )


def bench(
    cfg: C.Config,
    *,
    steps: int = 10,
    warmup: int = 3,
    paths: tuple[str, ...] = ("fast", "stock"),
    repeat: int = 1,
    out: str | Path | None = None,
    verbose: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Time ``cfg``'s training step on each path; print a table, save it as JSON and return it."""
    C.validate(cfg)
    for p in paths:
        if p not in PATHS:
            raise ConfigError(f"unknown benchmark path {p!r}", f"use {', '.join(PATHS)} (comma-separated)")
    rt = setup(cfg.train.seed, cfg.train.device, precision=cfg.train.precision, verbose=False)
    uses_sam = cfg.train.method not in ("unet", "mean-teacher", "entropy-min")
    what = f"{cfg.train.method}" + (f" + {cfg.generalist.name}" if uses_sam else "")
    batch = cfg.data.batch_labeled + (
        cfg.data.batch_unlabeled if METHODS.get(cfg.train.method).needs_unlabeled else 0
    )
    if verbose:
        print(
            f"bench: {what}, {cfg.preset} preset, batch {batch}, {steps} timed steps after {warmup} warm-up, "
            f"{repeat} round(s), on {rt.gpu_name or rt.device}"
        )
    # rounds of all paths, one after the other (A B A B): on a shared or throttled CPU the first path run pays for
    # the allocator's and the cache's warm-up, and drift hits both; each path's median round is reported
    runs = [
        time_path(cfg, p, steps=steps, warmup=warmup, verbose=verbose) for _ in range(repeat) for p in paths
    ]
    rows = _median_rows(runs, paths)
    keep_freed_memory(_keep_freed_memory_default())  # the process as it was before the stock paths
    result: dict[str, Any] = {
        "command": command,
        "what": what,
        "config": cfg.to_dict(),
        "config_hash": C.config_hash(cfg),
        "device": rt.gpu_name or str(rt.device),
        "runtime": rt.as_dict(),
        "provenance": provenance(),
        "rows": [asdict(r) for r in rows],
        "repeat": repeat,
        "rounds": [asdict(r) for r in runs],
        "matmul_gflop_per_s": round(matmul_rate(rt.device, rt.amp_dtype or torch.float32), 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    result.update(_speedups(rows))
    if verbose:
        print(format_bench(result))
    path = _bench_path(cfg, out)
    write_json(path, result)
    result["saved_to"] = str(path)
    if verbose:
        print(f"saved: {path}")
    return result


def format_bench(result: dict[str, Any]) -> str:
    """The benchmark as an aligned table, with the targets where they apply (a GPU, a SAM method)."""
    lines = [
        f"{'path':15s} {'ms/step':>9s} {'images/s':>9s} {'peak GiB':>9s}  precision / attention / compile / anomaly / allocator"
    ]
    for r in result["rows"]:
        peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
        lines.append(
            f"{r['path']:15s} {r['ms_per_step']:9.1f} {r['images_per_s']:9.1f} {peak:>9s}  "
            f"{r['precision']} / {r['attention']} / {'on' if r['compiled'] else 'off'} / "
            f"{'on' if r['anomaly_detection'] else 'off'} / {r.get('allocator', 'n/a')}"
        )
    if "speedup" in result:
        lines.append(f"speed-up of fast over stock: {result['speedup']:.2f}x")
    if "speedup_decoder" in result:
        lines.append(
            f"speed-up of the fast mask decoder (fast over stock-decoder): {result['speedup_decoder']:.2f}x"
        )
    if "speedup_allocator" in result:
        lines.append(
            f"speed-up of reusing freed memory (fast over stock-allocator): {result['speedup_allocator']:.2f}x"
        )
    if "speedup_cpu" in result:
        lines.append(f"speed-up of all CPU speed-ups (fast over stock-cpu): {result['speedup_cpu']:.2f}x")
    fast = next((r for r in result["rows"] if r["path"] == "fast"), None)
    rate = result.get("matmul_gflop_per_s")
    if fast and fast.get("gflop_per_step") and rate:
        achieved = fast["gflop_per_step"] / (fast["ms_per_step"] / 1000)
        lines.append(
            f"work of the fast step: {fast['gflop_per_step']:.1f} GFLOP counted (matmul, conv; attention only on a GPU), "
            f"{achieved:.0f} GFLOP/s achieved; a large matrix product here runs at {rate:.0f} GFLOP/s, at which "
            f"the counted work alone takes {1000 * fast['gflop_per_step'] / rate:.0f} ms"
        )
        parts = fast.get("gflop_by_part")
        if parts:
            # parts adding up to more than the total: seen with adapted encoder blocks after stored activations, most
            # likely torch's module tracker keeping the prompt encoder (inputs without gradient) as a parent for the
            # rest of the backward pass (not proven)
            overlap = parts.get("elsewhere", 0.0) < -0.01 * fast["gflop_per_step"]
            lines.append(
                "counted work by part: "
                + ", ".join(f"{name} {g:.1f}" for name, g in parts.items())
                + " GFLOP"
                + (
                    " (the parts overlap: some backward work is counted under two modules; the total is right)"
                    if overlap
                    else ""
                )
            )
    on_gpu = any(r["peak_gib"] is not None for r in result["rows"])
    if on_gpu and "+" in result["what"]:
        fast = next((r for r in result["rows"] if r["path"] == "fast"), None)
        if fast and "speedup" in result:
            ok_speed = result["speedup"] >= TARGET_SPEEDUP
            ok_mem = fast["peak_gib"] <= TARGET_PEAK_GIB
            lines.append(
                f"targets (paper batch, GPU): speed-up >= {TARGET_SPEEDUP:.0f}x {'met' if ok_speed else 'NOT met'}, "
                f"peak <= {TARGET_PEAK_GIB:.0f} GiB {'met' if ok_mem else 'NOT met'}"
            )
    return "\n".join(lines)


def read_bench(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
