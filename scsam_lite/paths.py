"""Where data, caches, checkpoints and results live.

One place for every default location, each overridable by an environment variable so that tests, CI and hosted
notebooks point the package somewhere else without editing code:

- ``SCSAM_DATA_ROOT``: folder holding the datasets (``<root>/kvasir-seg``, ``<root>/promise12``, ...).
- ``SCSAM_CACHE_DIR``: preprocessing caches (decoded, resized arrays).
- ``SCSAM_CHECKPOINT_DIR``: pretrained weights (SAM checkpoints).
- ``SCSAM_RUNS_DIR``: default parent of run directories and the results registry.

On Kaggle, ``/kaggle/input`` is read-only, so writable defaults go to ``/kaggle/working``.
"""

from __future__ import annotations

import os
from pathlib import Path


def on_kaggle() -> bool:
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE")) or Path("/kaggle/working").is_dir()


def on_colab() -> bool:
    return bool(os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("COLAB_GPU"))


def detect_platform() -> str:
    """``"colab"``, ``"kaggle"`` or ``"local"``."""
    if on_colab():
        return "colab"
    if on_kaggle():
        return "kaggle"
    return "local"


def _home_cache() -> Path:
    if on_kaggle():
        return Path("/kaggle/working/.scsam-cache")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scsam-lite"


def data_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data root: the explicit argument, else ``SCSAM_DATA_ROOT``, else ``None`` (synthetic data only)."""
    value = explicit if explicit not in (None, "") else os.environ.get("SCSAM_DATA_ROOT")
    return Path(value).expanduser() if value else None


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    value = explicit or os.environ.get("SCSAM_CACHE_DIR")
    return Path(value).expanduser() if value else _home_cache() / "data"


def checkpoint_dir(explicit: str | os.PathLike | None = None) -> Path:
    value = explicit or os.environ.get("SCSAM_CHECKPOINT_DIR")
    return Path(value).expanduser() if value else _home_cache() / "checkpoints"


def runs_dir(explicit: str | os.PathLike | None = None) -> Path:
    value = explicit or os.environ.get("SCSAM_RUNS_DIR")
    if value:
        return Path(value).expanduser()
    return Path("/kaggle/working/runs") if on_kaggle() else Path("runs")


def results_registry(run_dir: str | os.PathLike) -> Path:
    """The results registry shared by the runs beside ``run_dir`` (its parent's ``results.jsonl``)."""
    return Path(run_dir).expanduser().resolve().parent / "results.jsonl"
