"""``setup()``: where am I running, on what device, with which precision, from which seed.

Every notebook calls it first, and every trainer goes through it, so a run's platform, device, autocast dtype and
seed are decided in one place and printed for the student to see.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform as _platform
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DeviceError
from .paths import detect_platform
from .registry import unknown_name


@dataclass
class Runtime:
    """What :func:`setup` decided. ``amp_dtype`` is None when training runs in fp32."""

    platform: str
    device: torch.device
    amp_dtype: torch.dtype | None
    grad_scaler: bool
    seed: int
    deterministic: bool
    gpu_name: str | None = None
    gpu_memory_gib: float | None = None
    versions: dict[str, str] = field(default_factory=dict)
    #: how the C allocator treats large freed blocks (:func:`keep_freed_memory`): "keep", "return" or "n/a"
    allocator: str = "n/a"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["device"] = str(self.device)
        d["amp_dtype"] = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else None
        return d

    def describe(self) -> str:
        amp = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off (fp32)"
        if self.grad_scaler:
            amp += " + GradScaler"
        gpu = f" ({self.gpu_name}, {self.gpu_memory_gib:.1f} GiB)" if self.gpu_name else ""
        vers = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (
            f"platform: {self.platform}\n"
            f"device:   {self.device}{gpu}\n"
            f"autocast: {amp}\n"
            f"seed:     {self.seed}{' (deterministic)' if self.deterministic else ''}\n"
            f"versions: {vers}"
        )


#: how to turn a GPU on, by platform: printed by setup() on a hosted CPU, and by hosted.profile_for
_GPU_HINTS = {
    "colab": "no GPU in this Colab runtime: Runtime > Change runtime type > T4 GPU, then run the notebook again",
    "kaggle": (
        "no GPU in this Kaggle session: Settings > Accelerator > GPU T4 x2 "
        "(GPUs and internet need a phone-verified Kaggle account)"
    ),
    "local": "no CUDA GPU found: runs go to the CPU",
}


def gpu_hint(platform: str) -> str:
    """One line on how to get a GPU on ``platform`` (``"colab"``, ``"kaggle"`` or ``"local"``)."""
    if platform not in _GPU_HINTS:
        raise unknown_name("platform", platform, list(_GPU_HINTS))
    return _GPU_HINTS[platform]


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` takes a CUDA GPU when there is one and falls back to the CPU; an explicit GPU that is absent is an error."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(
            f"device {name!r} was asked for but no CUDA GPU is visible to torch",
            'use device="auto" (CPU fallback) or "cpu"; on Colab: Runtime > Change runtime type > GPU; '
            "on Kaggle: Settings > Accelerator > GPU",
        )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("device 'mps' was asked for but Apple's MPS backend is not available", 'use "cpu"')
    return torch.device(name)


def pick_amp(device: torch.device, precision: str = "auto") -> tuple[torch.dtype | None, bool]:
    """The autocast dtype and whether a GradScaler is needed.

    bf16 where the GPU supports it (Ampere and newer); fp16 with a GradScaler on older GPUs such as the T4, whose
    fp16 range needs loss scaling; fp32 on the CPU, where autocast brings no speed. ``precision`` forces one of
    ``"bf16"``, ``"fp16"``, ``"fp32"``.
    """
    if precision not in ("auto", "bf16", "fp16", "fp32"):
        raise ValueError(f"precision must be auto, bf16, fp16 or fp32, not {precision!r}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None, False
    if precision == "fp16":
        return torch.float16, device.type == "cuda"
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceError(
                f"bf16 was asked for but {torch.cuda.get_device_name(device)} does not support it",
                'use precision "fp16" (with a GradScaler) or "auto"',
            )
        return torch.bfloat16, False
    return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)


#: glibc's ``mallopt`` parameters (malloc.h) and their defaults
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_KEEP = {_M_TRIM_THRESHOLD: 2**31 - 1, _M_MMAP_MAX: 0}


def keep_freed_memory(enabled: bool = True) -> str:
    """Let glibc keep large freed blocks for reuse (``enabled``) or return them to the OS (its default).

    By default glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it
    when freed, so a training step page-faults its large intermediates back in every time: LiteMedSAM's mask head
    makes 100 MB tensors at batch 12, and on a VM a page fault is expensive (the whole step's gain is measured by
    ``scsam-lite bench --path fast,stock-allocator``). Kept in the heap, the blocks are reused once the heap has
    grown to hold them (after the first steps). This decides where memory comes from, never what is computed: results are
    bit-identical. The process keeps its peak heap instead of shrinking between steps; returning to the default
    trims the heap (``malloc_trim``), so memory kept for a training loop is given back after it.

    Returns ``"keep"``, ``"return"``, or ``"n/a"`` where the C library is not glibc (macOS, Windows, musl): a no-op.
    """
    global _ALLOCATOR
    if not sys.platform.startswith("linux") or _platform.libc_ver()[0] != "glibc":
        return "n/a"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        values = _KEEP if enabled else _GLIBC_DEFAULTS
        ok = all(libc.mallopt(param, value) == 1 for param, value in values.items())
        if ok and not enabled:
            libc.malloc_trim(0)
    except (OSError, AttributeError):
        return "n/a"
    _ALLOCATOR = ("keep" if enabled else "return") if ok else "n/a"
    return _ALLOCATOR


#: what :func:`keep_freed_memory` last set in this process ("return": glibc's own default)
_ALLOCATOR = "return"


@contextmanager
def freed_memory_kept() -> Iterator[str]:
    """Keep freed blocks for the length of a training loop, then go back to what the process had: a notebook
    kernel returns its memory between cells (it evaluates, embeds and draws, each with other sizes of blocks)
    while its training loops still get the speed."""
    before = _ALLOCATOR
    state = keep_freed_memory(True) if before != "keep" else before
    try:
        yield state
    finally:
        if before == "return" and state == "keep":
            keep_freed_memory(False)


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (Colab and Kaggle included)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _keep_freed_memory_default() -> bool:
    """On in scripts and the CLI (a process that trains), off in a notebook kernel (its memory is a laptop's:
    training loops keep freed memory for their length only, :func:`freed_memory_kept`);
    ``SCSAM_KEEP_FREED_MEMORY=0|1`` decides either way."""
    value = os.environ.get("SCSAM_KEEP_FREED_MEMORY", "").strip().lower()
    if value:
        return value not in ("0", "false", "no", "off")
    return not _in_notebook()


def draw_seed(seed: int, counter: int) -> int:
    """The seed of one seeded draw (a training step's strong view and prompts, a browsed item's view) from the
    run's ``seed``: ``seed * 1,000,003 + counter``, so the streams of nearby run seeds do not overlap for the first
    million counts and a run's draws repeat exactly on resume."""
    return seed * 1_000_003 + counter


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; in deterministic mode also ask cuDNN and torch for reproducible kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(False)


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": _platform.python_version(), "torch": torch.__version__}
    for pkg in ("scsam-lite", "segment-anything", "monai", "numpy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    if torch.version.cuda and torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
    return out


def setup(
    seed: int = 0,
    device: str | torch.device = "auto",
    *,
    precision: str = "auto",
    deterministic: bool = False,
    verbose: bool = True,
    keep_memory: bool | None = None,
) -> Runtime:
    """Pick the device and precision, seed everything, and print what was chosen.

    Args:
        seed: seeds python, numpy and torch.
        device: ``"auto"`` (GPU if present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        precision: ``"auto"`` (bf16 / fp16 + GradScaler / fp32 by hardware) or a forced one.
        deterministic: reproducible kernels (slower on GPU); runs on the CPU are reproducible either way.
        keep_memory: let the C allocator reuse large freed blocks (:func:`keep_freed_memory`; faster CPU steps,
            same results); None: on, except in a notebook kernel (:func:`_keep_freed_memory_default`).
    """
    dev = pick_device(device)
    amp_dtype, scaler = pick_amp(dev, precision)
    seed_everything(seed, deterministic)
    allocator = keep_freed_memory(_keep_freed_memory_default() if keep_memory is None else keep_memory)
    gpu_name = gpu_mem = None
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        gpu_name, gpu_mem = props.name, props.total_memory / 2**30
    rt = Runtime(
        platform=detect_platform(),
        device=dev,
        amp_dtype=amp_dtype,
        grad_scaler=scaler,
        seed=seed,
        deterministic=deterministic,
        gpu_name=gpu_name,
        gpu_memory_gib=gpu_mem,
        versions=versions(),
        allocator=allocator,
    )
    if verbose:
        print(rt.describe(), file=sys.stdout, flush=True)
        if dev.type == "cpu" and rt.platform in ("colab", "kaggle"):
            print(gpu_hint(rt.platform), file=sys.stdout, flush=True)
    return rt


def provenance() -> dict[str, Any]:
    """Where a run was made: the package's git commit (with ``-dirty`` when its tracked files differ) when it runs
    from a checkout, else its version; the machine (host, processor, cores). Saved in every run's config.json."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    commit = None
    if (root / ".git").exists():
        try:
            git = ["git", "-C", str(root)]
            commit = subprocess.run(
                [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            dirty = subprocess.run(
                [*git, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            commit += "-dirty" if dirty else ""
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {
        "commit": commit,
        "host": _platform.node(),
        "machine": f"{_platform.system()} {_platform.machine()}, {os.cpu_count()} CPU cores",
        "processor": _cpu_name(),
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _platform.processor() or "unknown"
