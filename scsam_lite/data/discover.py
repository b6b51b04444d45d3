"""Find a copy of a dataset that is already on disk.

Datasets arrive in several layouts: the official zip extracted into ``<root>/<name>``, the zip extracted straight
into the root, a Kaggle dataset (nested one level deeper, e.g. ``Kvasir-SEG/Kvasir-SEG/images``) or a read-only
Kaggle input under ``/kaggle/input``. Rather than asking users to move folders around, :func:`find_existing`
looks in the usual places and returns the folder the loader reads (the one holding ``images/`` and ``masks/``
for Kvasir-SEG, ``Original/`` and ``Ground Truth/`` for CVC-ClinicDB, the ``CaseXX.mhd`` files for PROMISE12).
The downloader calls it to skip a download; the loaders call :func:`locate`, which turns "not found" into one
:class:`~scsam_lite.errors.DataError` that says what was expected, what was found and how to get the data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..errors import DataError
from ..registry import unknown_name

#: Where Kaggle mounts attached datasets (read-only); searched when running on Kaggle.
KAGGLE_INPUT = Path("/kaggle/input")

#: How deep below a root (or /kaggle/input) to look; Kaggle copies sit about three levels down.
MAX_DEPTH = 4
#: An upper bound on folders visited, so that a root pointing at a home folder stays quick.
MAX_FOLDERS = 4000

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
_CASE_SEG = re.compile(r"^case\d+_segmentation\.mhd$", re.IGNORECASE)


def _children(folder: Path) -> dict[str, Path]:
    """Lower-cased name -> entry, so that layouts match regardless of case ("Ground Truth", "ground truth")."""
    try:
        return {p.name.lower(): p for p in folder.iterdir()}
    except OSError:
        return {}


def _has_files(folder: Path | None, suffixes: tuple[str, ...]) -> bool:
    if folder is None or not folder.is_dir():
        return False
    try:
        return any(p.suffix.lower() in suffixes for p in folder.iterdir())
    except OSError:
        return False


def _kvasir_probe(folder: Path) -> int | None:
    kids = _children(folder)
    images, masks = kids.get("images"), kids.get("masks")
    if _has_files(images, IMAGE_SUFFIXES) and _has_files(masks, IMAGE_SUFFIXES):
        return 0
    return None


GROUND_TRUTH_NAMES = ("ground truth", "groundtruth", "ground_truth")


def _cvc_probe(folder: Path) -> int | None:
    kids = _children(folder)
    gt = next((kids[n] for n in GROUND_TRUTH_NAMES if n in kids), None)
    original = kids.get("original")
    for rank, suffixes in enumerate(((".tif", ".tiff"), (".png",), (".bmp", ".jpg", ".jpeg"))):
        if _has_files(original, suffixes) and _has_files(gt, suffixes):
            return rank  # prefer the official TIFF frames over re-encoded copies
    return None


def _has_promise_cases(folder: Path) -> bool:
    try:
        return any(_CASE_SEG.match(p.name) for p in folder.iterdir())
    except OSError:
        return False


def _promise_probe(folder: Path) -> int | None:
    if _has_promise_cases(folder):
        return 0
    # The original challenge release came as TrainingData_Part1..3: accept a folder whose subfolders hold them.
    parts = [p for p in _children(folder).values() if p.is_dir() and _has_promise_cases(p)]
    return 0 if len(parts) >= 2 else None


@dataclass(frozen=True)
class Layout:
    """What a copy of one dataset looks like on disk."""

    name: str
    expected: str  # shown in "wrong layout" errors
    hints: tuple[str, ...]  # lower-case folder-name fragments that suggest this dataset
    probe: Callable[[Path], int | None]  # None: not this layout; else a preference rank (lower is better)


LAYOUTS: dict[str, Layout] = {
    "kvasir-seg": Layout(
        "kvasir-seg",
        "Kvasir-SEG/images/*.jpg and Kvasir-SEG/masks/*.jpg (official zip), possibly nested one level deeper (Kaggle)",
        ("kvasir",),
        _kvasir_probe,
    ),
    "cvc-clinicdb": Layout(
        "cvc-clinicdb",
        "Original/*.tif and 'Ground Truth'/*.tif (official zip or Kaggle), or PNG/Original/*.png and "
        "'PNG/Ground Truth'/*.png",
        ("cvc", "clinic"),
        _cvc_probe,
    ),
    "promise12": Layout(
        "promise12",
        "CaseXX.mhd/.raw with CaseXX_segmentation.mhd/.raw (PROMISE12 training_data.zip, Zenodo record 8026660)",
        ("promise",),
        _promise_probe,
    ),
}


def _layout(name: str) -> Layout:
    if name not in LAYOUTS:
        raise unknown_name("dataset with files on disk", name, sorted(LAYOUTS))
    return LAYOUTS[name]


def _search(layout: Layout, top: Path, max_depth: int = MAX_DEPTH) -> Path | None:
    """Breadth-first search below ``top``; the best match by (hinted name, depth, layout preference, path)."""
    if not top.is_dir():
        return None
    found: list[tuple[int, int, int, str, Path]] = []
    queue: list[tuple[Path, int]] = [(top, 0)]
    visited = 0
    while queue and visited < MAX_FOLDERS:
        folder, depth = queue.pop(0)
        visited += 1
        rank = layout.probe(folder)
        if rank is not None:
            rel = os.path.relpath(folder, top).lower()
            hinted = any(h in rel for h in layout.hints) or any(h in top.name.lower() for h in layout.hints)
            found.append((0 if hinted else 1, depth, rank, str(folder), folder))
            continue  # a dataset folder's own subfolders (images/, masks/) are not further copies
        if depth >= max_depth:
            continue
        try:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
        except OSError:
            continue
        queue.extend((p, depth + 1) for p in subs)
    return min(found)[-1] if found else None


def find_existing(name: str, root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding an already present copy of dataset ``name``, or ``None``.

    Looks in ``root/<name>`` first, then anywhere up to a few levels below ``root`` (``root`` itself included,
    Kaggle copies nest one level deeper), then, when running on Kaggle, below ``/kaggle/input``. ``root=None``
    falls back to ``SCSAM_DATA_ROOT`` (:func:`scsam_lite.paths.data_root`). Among several copies the one whose
    path names the dataset wins, then the shallowest. Returns the folder the loader reads, e.g.
    ``.../Kvasir-SEG`` (with ``images/`` and ``masks/`` inside).
    """
    layout = _layout(name)
    base = paths.data_root(root)
    tops: list[Path] = []
    if base is not None:
        tops += [base / name, base]
    if paths.on_kaggle():
        tops.append(KAGGLE_INPUT)
    for top in tops:
        hit = _search(layout, top)
        if hit is not None:
            return hit
    return None


def _listing(folder: Path, limit: int = 8) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "(unreadable)"
    return few(names, limit) if names else "(nothing)"


def few(names: list[str], limit: int = 5) -> str:
    """``a, b, c and 7 more``: a short list of names for error messages."""
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def locate(name: str, root: str | os.PathLike | None, download_hint: str) -> Path:
    """Like :func:`find_existing`, but a missing copy is a DataError that says what to do.

    Tells apart: no data root set, a root that does not exist, an empty root, and a root holding something
    else (listing what is there next to what was expected).
    """
    layout = _layout(name)
    found = find_existing(name, root)
    if found is not None:
        return found
    base = paths.data_root(root)
    get = f"download it with `{download_hint}`" if download_hint else "download it"
    if base is None:
        raise DataError(
            f"{name} needs a data root and none is set",
            f"pass root=DIR (--data-root DIR on the command line) or set SCSAM_DATA_ROOT=DIR; {get}",
        )
    if not base.exists():
        raise DataError(
            f"data root {base} does not exist",
            f"check root=/--data-root/SCSAM_DATA_ROOT, or {get.replace('DIR', str(base))}",
        )
    if not base.is_dir():
        raise DataError(
            f"data root {base} is a file, not a folder", "point root at the folder holding the datasets"
        )
    if not any(base.iterdir()):
        raise DataError(f"data root {base} is empty", get.replace("DIR", str(base)))
    where = f"{base}: {_listing(base)}"
    if (base / name).is_dir():
        where += f"; {base / name}: {_listing(base / name)}"
    raise DataError(
        f"no {name} copy found under {base}: expected {layout.expected}; found {where}",
        f"extract the official archive into {base / name}, or {get.replace('DIR', str(base))}",
    )
