"""``download(name, root)``: fetch, verify and unpack one dataset or checkpoint.

A dataset is downloaded into ``<root>/.downloads/`` (where a ``.part`` waits to be resumed after an interruption),
verified, extracted through a hidden temporary folder and renamed to ``<root>/<name>/`` together with a
``download-manifest.json`` that records where it came from and what was checked. Nothing is downloaded when a
verified copy is already there, or when :func:`scsam_lite.data.discover.find_existing` finds one (a copy
extracted by hand, or a Kaggle notebook's attached dataset under ``/kaggle/input``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path

from .. import paths
from ..errors import ConfigError, DownloadError
from ..registry import unknown_name
from . import kaggle as _kaggle
from .archive import safe_extract
from .http import download_file, file_sha256, part_path
from .sources import DOWNLOAD_NAMES, SOURCES, Source

#: Written into every dataset folder this module creates; its presence means "complete and verified".
MANIFEST = "download-manifest.json"
#: Hidden staging folder below the root for archives being downloaded (and ``.part`` files kept for resuming).
STAGING = ".downloads"


def resolve(name: str, source: str | None = None) -> Source:
    """The :class:`Source` for ``name`` (case-insensitive) from ``source`` (default: the name's first source)."""
    key = name.strip().lower().replace("_", "-")
    if key not in SOURCES:
        raise unknown_name("download", name, list(DOWNLOAD_NAMES))
    by_origin = SOURCES[key]
    if source is None:
        return next(iter(by_origin.values()))
    origin = source.strip().lower()
    if origin not in by_origin:
        raise ConfigError(
            f"{key} cannot be downloaded from {source!r}",
            f"use --source {' or --source '.join(by_origin)} (or leave --source out)",
        )
    return by_origin[origin]


def _find_existing(name: str, root: Path) -> Path | None:
    try:
        from ..data.discover import find_existing
    except ImportError:  # pragma: no cover - the discovery module ships with the package
        return None
    return find_existing(name, root)


def _verified(target: Path, src: Source) -> Path | None:
    """The data folder of a complete download at ``target`` (manifest present, structure intact), else None."""
    if not (target / MANIFEST).is_file() or src.check is None:
        return None
    try:
        summary = src.check(target, quick=True)
    except DownloadError:
        return None
    return target / summary["folder"]


def _writable_root(base: Path) -> None:
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(
            f"cannot create the data root {base}: {e.strerror or e}",
            "choose a writable --root (on Kaggle: below /kaggle/working; /kaggle/input is read-only)",
        ) from None
    if not os.access(base, os.W_OK):
        raise DownloadError(
            f"the data root {base} is not writable",
            "choose a writable --root (on Kaggle: below /kaggle/working; /kaggle/input is read-only)",
        )


def _check_space(folder: Path, need: int | None, what: str) -> None:
    if not need:
        return
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DownloadError(
            f"not enough disk space for {what} in {folder}: {need / 1e9:.1f} GB needed, {free / 1e9:.1f} GB free",
            "free some space or choose another --root",
        )


def _manual(src: Source, archive: Path, target: Path) -> str:
    get = (
        f"download {src.url} by hand (see {src.page})"
        if src.url
        else f"download the zip by hand from {src.page} (logged in, 'Download' button)"
    )
    return f"{get}, save it as {archive} and run the same command again, or extract it into {target}"


def _fetch_archive(src: Source, staging: Path, target: Path, force: bool, progress: bool) -> Path:
    archive = staging / src.filename
    manual = _manual(src, archive, target)
    if force:
        for stale in (archive, part_path(archive)):
            stale.unlink(missing_ok=True)
    if src.kaggle:
        if archive.is_file():  # placed by hand, or left by an earlier run that failed later
            return archive
        got = _kaggle.download_dataset(
            src.kaggle, staging, what=src.name, manual=manual, force=force, progress=progress
        )
        if got != archive:
            os.replace(got, archive)
        return archive
    assert src.url is not None
    return download_file(
        src.url,
        archive,
        sha256=src.sha256,
        expected_size=src.size,
        md5=src.md5,
        progress=progress,
        manual=manual,
    )


def _download_checkpoint(src: Source, root: str | os.PathLike | None, force: bool, progress: bool) -> Path:
    """A checkpoint is one verified ``.pth`` file, no archive to unpack: it goes straight to its folder."""
    folder = Path(root).expanduser() if root not in (None, "") else paths.checkpoint_dir()
    dest = folder / src.filename
    if force:
        dest.unlink(missing_ok=True)
        part_path(dest).unlink(missing_ok=True)
    if not dest.is_file():
        _writable_root(folder)
        _check_space(folder, src.size, src.filename)
    assert src.url is not None
    return download_file(
        src.url,
        dest,
        sha256=src.sha256,
        expected_size=src.size,
        progress=progress,
        manual=f"download {src.url} by hand (see {src.page}) and save it as {dest}",
    )


def _dataset_root(src: Source, root: str | os.PathLike | None) -> Path:
    """The data root for a dataset: unlike a checkpoint, which has a default folder, a dataset needs one."""
    base = paths.data_root(root)
    if base is None:
        raise ConfigError(
            f"no data root given for {src.name}",
            "pass root=DIR (--root DIR on the command line) or set SCSAM_DATA_ROOT=DIR",
        )
    return base


def _existing_copy(src: Source, base: Path, target: Path) -> Path | None:
    """The data folder of a usable copy already there (verified download, or one found by discovery), else
    None; refuses to download over something at ``target`` that is not a complete copy."""
    done = _verified(target, src) or _find_existing(src.name, base)
    if done is not None:
        return done
    if target.is_dir() and any(target.iterdir()):
        raise DownloadError(
            f"{target} exists but does not hold a complete {src.name}",
            "move it away, or pass force=True (--force) to replace it with a fresh download",
        )
    if target.exists() and not target.is_dir():
        raise DownloadError(f"{target} is a file, not a folder", "move it away and run again")
    return None


def download(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    source: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Download, verify and unpack dataset or checkpoint ``name``; return where it is.

    Args:
        name: one of :data:`DOWNLOAD_NAMES` (``kvasir-seg``, ``cvc-clinicdb``, ``promise12``, ``sam-vit-b``,
            ``sam-vit-l``, ``sam-vit-h``).
        root: datasets: the data root (default ``SCSAM_DATA_ROOT``); the dataset lands in ``<root>/<name>/``.
            Checkpoints: the folder for the ``.pth`` file (default ``SCSAM_CHECKPOINT_DIR``, see
            :func:`scsam_lite.paths.checkpoint_dir`).
        source: ``official``, ``kaggle`` or ``zenodo``; default: the name's first source (see ``SOURCES``).
        force: download again and replace what is there (after the new copy is verified).
        progress: show progress bars.

    Returns:
        Datasets: the folder holding the data as the loaders read it (e.g. ``<root>/kvasir-seg/Kvasir-SEG``, or a
        copy found elsewhere, e.g. under ``/kaggle/input``); point the package at ``root`` (``--data-root``).
        Checkpoints: the ``.pth`` file.

    Raises:
        ConfigError: unknown name or source, or no root. CredentialsError: Kaggle without credentials.
        DownloadError: offline, HTTP errors, truncated or corrupt downloads, unsafe archives; each names the URL
            and the manual alternative. A ``.part`` file may stay in ``<root>/.downloads`` for resuming; a
            half-extracted dataset folder never does.
    """
    src = resolve(name, source)
    if src.kind == "checkpoint":
        return _download_checkpoint(src, root, force, progress)

    base = _dataset_root(src, root)
    target = base / src.name
    if not force:
        done = _existing_copy(src, base, target)
        if done is not None:
            return done

    _writable_root(base)
    staging = base / STAGING
    staging.mkdir(exist_ok=True)
    try:
        return _fetch_and_unpack(src, base, staging, target, force, progress)
    finally:
        try:
            staging.rmdir()  # only when empty: a .part kept for resuming (or another download) stays
        except OSError:
            pass


def _fetch_and_unpack(
    src: Source, base: Path, staging: Path, target: Path, force: bool, progress: bool
) -> Path:
    _check_space(base, 2 * src.size if src.size else None, src.name)
    archive = _fetch_archive(src, staging, target, force, progress)

    observed = file_sha256(archive)
    summary: dict = {}

    def verify_and_record(tree: Path) -> None:
        summary.update(src.check(tree) if src.check else {"folder": "."})
        manifest = {
            "name": src.name,
            "source": src.origin,
            "url": src.url or f"https://www.kaggle.com/datasets/{src.kaggle}",
            "page": src.page,
            "archive": src.filename,
            "archive_bytes": archive.stat().st_size,
            "archive_sha256": observed,
            "archive_sha256_pinned": src.sha256,
            "archive_md5_pinned": src.md5,
            "verified": summary,
            "downloaded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        (tree / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")

    try:
        safe_extract(archive, target, check=verify_and_record, overwrite=target.exists())
    except DownloadError:
        archive.unlink(missing_ok=True)  # damaged or unexpected: the next run fetches a fresh copy
        raise
    archive.unlink(missing_ok=True)
    # Report the folder the loaders will read (discovery may prefer another copy inside, e.g. TIFF over PNG).
    found = _find_existing(src.name, base)
    if found is not None and (found == target or target in found.parents):
        return found
    return target / summary.get("folder", ".")
