"""Safe, all-or-nothing extraction of zip and tar archives.

Every member is checked before anything is written: a name that is absolute or climbs out with ``..``, and a tar
link that points outside the target, make the whole archive be refused (a downloaded archive is untrusted input).
Members are extracted into a hidden temporary folder beside the target, optionally checked, and only then renamed
into place, so an interrupted or failed extraction never leaves a half-filled dataset folder behind.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from ..errors import DownloadError


def _refuse(archive: Path, member: str, why: str) -> DownloadError:
    return DownloadError(
        f"refusing to extract {archive.name}: member {member!r} {why}",
        f"this is not the expected archive (or it was tampered with); delete {archive} and download it again",
    )


def _check_name(archive: Path, name: str) -> None:
    """Refuse absolute names, Windows drives and ``..`` components (checked on the raw name, both separators)."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        raise _refuse(archive, name, "has an absolute path")
    if ".." in unified.split("/"):
        raise _refuse(archive, name, "would land outside the target folder ('..')")


def _check_zip(archive: Path, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        _check_name(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refuse(archive, info.filename, "is a symbolic link")


def _resolve(parts: list[str], links: dict[str, list[str]]) -> list[str] | None:
    """``parts`` as a path inside the archive, following the archive's own links component by component (as the
    file system will once they exist); None when it leaves the target folder."""
    out: list[str] = []
    hops = 0
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                return None
            out.pop()
            continue
        out.append(part)
        while "/".join(out) in links:  # a link: continue from where it points
            hops += 1
            if hops > 64:
                return None  # a loop of links
            out = list(links["/".join(out)])
    return out


def _check_tar(archive: Path, tf: tarfile.TarFile) -> None:
    links: dict[str, list[str]] = {}  # link name -> where it points, resolved
    for m in tf.getmembers():
        _check_name(archive, m.name)
        name = posixpath.normpath(m.name.replace("\\", "/"))
        parts = name.split("/")
        if any("/".join(parts[:i]) in links for i in range(1, len(parts))):
            raise _refuse(archive, m.name, "is placed through a link")
        if m.issym() or m.islnk():
            link = m.linkname.replace("\\", "/")
            # A symlink resolves from its own folder; a hard link names a path from the archive's root. Links
            # are followed physically (a chain like A -> '.', B -> 'A/..' leaves the folder although 'A/..'
            # looks harmless as text).
            start = parts[:-1] if m.issym() else []
            resolved = None
            if not (link.startswith("/") or (len(link) > 1 and link[1] == ":")):
                resolved = _resolve(start + link.split("/"), links)
            if resolved is None:
                raise _refuse(
                    archive, m.name, f"is a link pointing outside the target folder ({m.linkname!r})"
                )
            links[name] = resolved
        elif not (m.isfile() or m.isdir()):
            raise _refuse(archive, m.name, "is a device, fifo or other special file")


def _open_error(archive: Path, exc: BaseException) -> DownloadError:
    return DownloadError(
        f"{archive} is damaged or not a zip/tar archive ({type(exc).__name__}: {exc}); it is probably truncated",
        f"delete {archive} and download it again",
    )


def _extract_into(archive: Path, folder: Path) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_zip(archive, zf)
                zf.extractall(folder)
            return
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                _check_tar(archive, tf)
                if hasattr(tarfile, "data_filter"):  # 3.10.12+/3.11.4+: a second line of defence
                    tf.extractall(folder, filter="data")
                else:  # pragma: no cover - old interpreters; members were checked above
                    tf.extractall(folder)
            return
    except DownloadError:
        raise
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        tarfile.TarError,
        EOFError,
        zlib.error,
        ValueError,
    ) as e:
        raise _open_error(archive, e) from None
    except OSError as e:
        raise DownloadError(
            f"could not extract {archive.name} into {folder.parent}: {e.strerror or e}",
            "free some disk space or choose another --root, then run again",
        ) from None
    raise DownloadError(
        f"{archive} is neither a zip nor a tar archive (truncated, or an error page saved as a file?)",
        f"delete {archive} and download it again",
    )


def safe_extract(
    archive: str | os.PathLike,
    target: str | os.PathLike,
    *,
    check: Callable[[Path], object] | None = None,
    overwrite: bool = False,
) -> Path:
    """Extract a zip or tar archive into ``target`` (created; the archive's own folders end up inside it).

    Args:
        archive: a ``.zip``, ``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2`` or ``.tar.xz`` file (detected by content).
        target: the folder to create. It must not exist unless ``overwrite`` is true.
        check: called with the extracted temporary folder before it is renamed into place; raise to abandon the
            extraction (nothing is left behind). Used to verify a dataset's files and write its manifest.
        overwrite: replace an existing ``target`` (only once the new copy is complete).

    Returns ``target``.

    Raises:
        DownloadError: a member escaping the target (absolute path, ``..``, a link pointing out), a damaged or
            truncated archive, a full disk, or an existing target without ``overwrite``.
    """
    archive, target = Path(archive), Path(target)
    if target.exists() and not overwrite:
        raise DownloadError(
            f"{target} already exists; not extracting {archive.name} over it",
            f"move {target} away, or pass force=True (--force) to replace it",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        _extract_into(archive, tmp)
        if check is not None:
            check(tmp)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
