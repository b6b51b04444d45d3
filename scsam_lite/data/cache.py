"""The preprocessing cache: decode and resize a dataset once, then load it in well under a second.

Decoding 1000 JPEGs takes tens of seconds on a laptop; a training run must not pay that on every start, and
epochs must never decode again. So a loader hands :func:`load_or_build` its source files and a build function;
the result is stored as plain ``.npy`` arrays (uint8, memory-mappable) plus ``meta.json`` in
``<cache_dir>/<dataset>/<res>px/``.

The cache is keyed by a fingerprint of the source files (relative path, size, modification time), the
resolution, the loader's preprocessing parameters and :data:`PREPROCESS_VERSION`; if any changes, the cache is
stale and is rebuilt. It is written into a temporary folder beside the target and moved into place with
``os.replace``, so a build that is interrupted (killed kernel, full disk) never leaves a half cache behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import paths
from ..errors import DataError

#: Bump when the preprocessing changes in a way that alters the cached arrays: every cache goes stale.
PREPROCESS_VERSION = 2  # 2: two-level dark JPEG masks, 16-bit images scaled, TIFFs through tifffile


@dataclass
class Arrays:
    """What a loader's build function returns and what the cache stores."""

    images: np.ndarray  # (N, H, W, C) uint8
    masks: np.ndarray  # (N, H, W) uint8 in {0, 1}
    ids: list[str]
    cases: list[str]
    spacing: np.ndarray  # (N, 2) float, NaN where unknown
    slice_spacing: dict[str, float] = field(default_factory=dict)
    # what the build did that a user should know (e.g. how many masks it thresholded)
    notes: dict = field(default_factory=dict)


def fingerprint(files: Sequence[Path], base: Path, params: dict | None = None) -> str:
    """A hash of the source files' relative paths, sizes and modification times, and of ``params``."""
    entries = []
    for f in sorted(files):
        st = f.stat()
        entries.append([os.path.relpath(f, base), st.st_size, st.st_mtime_ns])
    blob = json.dumps([PREPROCESS_VERSION, params or {}, entries], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_folder(dataset: str, resolution: int, cache_dir: str | os.PathLike | None = None) -> Path:
    return paths.cache_dir(cache_dir) / dataset / f"{resolution}px"


def _read(folder: Path, resolution: int) -> tuple[dict, Arrays] | None:
    """The cached arrays and meta, or None when there is no complete cache here."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("resolution") != resolution:
        raise DataError(
            f"the cache in {folder} holds {meta.get('resolution')} px arrays, not the {resolution} px asked for",
            f"delete {folder} (it is rebuilt on the next load), or check cache_dir/SCSAM_CACHE_DIR",
        )
    try:
        images = np.load(folder / "images.npy", mmap_mode="r")
        masks = np.load(folder / "masks.npy", mmap_mode="r")
        spacing = np.load(folder / "spacing.npy")
    except (OSError, ValueError):
        return None
    n = len(meta.get("ids", []))
    if images.shape[:3] != (n, resolution, resolution) or masks.shape != (n, resolution, resolution):
        return None
    arrays = Arrays(
        images,
        masks,
        meta["ids"],
        meta["cases"],
        spacing,
        meta.get("slice_spacing", {}),
        meta.get("notes", {}),
    )
    return meta, arrays


def _remove_leftovers(parent: Path, name: str) -> None:
    """Delete temporary folders of builds whose process is gone (a killed kernel leaves them behind)."""
    if os.name != "posix":  # os.kill(pid, 0) only probes a process on POSIX
        return
    for p in parent.glob(f".{name}.*-*"):
        try:
            pid = int(p.name.split("-")[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except (ValueError, IndexError, OSError):
            continue


def _write(folder: Path, arrays: Arrays, meta: dict) -> None:
    """Write the cache atomically: a temporary folder beside ``folder``, then ``os.replace``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder.parent, folder.name)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        np.save(tmp / "images.npy", np.ascontiguousarray(arrays.images, dtype=np.uint8))
        np.save(tmp / "masks.npy", np.ascontiguousarray(arrays.masks, dtype=np.uint8))
        np.save(tmp / "spacing.npy", np.asarray(arrays.spacing, dtype=np.float64))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if folder.exists():
            old = folder.parent / f".{folder.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_or_build(
    dataset: str,
    resolution: int,
    files: Sequence[Path],
    base: Path,
    build: Callable[[], Arrays],
    *,
    cache_dir: str | os.PathLike | None = None,
    params: dict | None = None,
) -> tuple[Arrays, dict]:
    """The dataset's arrays at ``resolution``: from the cache when it is fresh, else built and cached.

    Args:
        dataset: registry name (the cache's folder name).
        files: every source file the arrays depend on (for the fingerprint).
        base: the folder ``files`` are relative to (so moving the whole dataset keeps the cache valid).
        build: decodes and resizes; only called when the cache is missing or stale.
        params: preprocessing settings that change the arrays (they are part of the fingerprint).

    Returns the arrays (memory-mapped when read from the cache) and the cache's meta, whose ``"cache"`` entry
    says ``"hit"`` or ``"built"``.
    """
    folder = cache_folder(dataset, resolution, cache_dir)
    key = fingerprint(files, base, params)
    cached = _read(folder, resolution)
    if cached is not None and cached[0].get("fingerprint") == key:
        meta, arrays = cached
        return arrays, {**meta, "cache": "hit", "cache_path": str(folder)}
    start = time.perf_counter()
    arrays = build()
    meta = {
        "dataset": dataset,
        "resolution": resolution,
        "fingerprint": key,
        "preprocess_version": PREPROCESS_VERSION,
        "params": params or {},
        "source": str(base),
        "n_files": len(files),
        "build_seconds": round(time.perf_counter() - start, 2),
        "ids": list(arrays.ids),
        "cases": list(arrays.cases),
        "slice_spacing": dict(arrays.slice_spacing),
        "notes": dict(arrays.notes),
    }
    _write(folder, arrays, meta)
    return arrays, {**meta, "cache": "built", "cache_path": str(folder)}


def cache_info(meta: dict) -> dict:
    """The cache entries a loader copies into ``SegData.info`` (where the arrays came from)."""
    return {"cache": meta["cache"], "cache_path": meta["cache_path"]}
