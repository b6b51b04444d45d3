"""Resumable, verified downloads over HTTP(S) with the standard library.

A file is streamed into ``<dest>.part`` and only renamed to ``dest`` (``os.replace``, atomic on one file system)
once its size and sha256 check out, so ``dest`` is either absent or whole and verified. A download that breaks
off keeps its ``.part``: the next call asks the server for the rest (HTTP ``Range``) instead of starting over. A
``.part`` whose checksum turns out wrong is deleted, since resuming it could never succeed.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from ..errors import DownloadError

#: Bytes read per network call and per hashing step.
CHUNK = 1 << 20
#: Seconds to wait for a connection or for the next bytes; a stalled server fails instead of hanging forever.
TIMEOUT = 60.0
#: Some servers refuse urllib's default agent string.
USER_AGENT = "scsam-lite (+https://github.com/scsam-lite/scsam-lite) python-urllib"


def part_path(dest: Path) -> Path:
    """Where the bytes of ``dest`` gather while it downloads (kept after an interruption, for resuming)."""
    return dest.with_name(dest.name + ".part")


def _hashers(md5: bool) -> dict[str, Any]:
    out = {"sha256": hashlib.sha256()}
    if md5:
        out["md5"] = hashlib.md5(usedforsecurity=False)
    return out


def _hash_into(path: Path, hashers: dict[str, Any]) -> None:
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            for h in hashers.values():
                h.update(block)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in chunks (constant memory for multi-GB checkpoints)."""
    hashers = _hashers(md5=False)
    _hash_into(Path(path), hashers)
    return hashers["sha256"].hexdigest()


def _total_from_content_range(value: str | None) -> int | None:
    # "bytes 0-99/1234" or "bytes */1234"
    if not value or "/" not in value:
        return None
    tail = value.rsplit("/", 1)[1].strip()
    return int(tail) if tail.isdigit() else None


def _progress_bar(total: int | None, initial: int, label: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=label,
        disable=not enabled,
        leave=False,
    )


def _reason(exc: BaseException) -> str:
    inner = exc.reason if isinstance(exc, URLError) and not isinstance(exc, HTTPError) else exc
    if isinstance(inner, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused"
    return str(inner) or type(inner).__name__


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None,
    expected_size: int | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = TIMEOUT,
    manual: str | None = None,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``.part`` and verifying size and checksums.

    Args:
        url: http(s) address.
        dest: final file path; its folder is created.
        sha256: expected sha256 (hex). ``None`` only where no trustworthy value exists; callers then verify the
            content some other way (see :mod:`scsam_lite.download.sources`).
        expected_size: expected size in bytes, checked before hashing when known.
        md5: an additional md5 to check (Zenodo publishes md5 for its files).
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the connection and between received blocks.
        manual: the manual alternative named in errors; default "download URL by hand and save it as DEST".

    Returns ``dest``. An existing ``dest`` that already matches is kept without any network access.

    Raises:
        DownloadError: offline or unreachable, an HTTP error (404, ...), a truncated transfer (the ``.part`` is
            kept, run again to resume), or a size/checksum mismatch (the ``.part`` is deleted).
    """
    dest = Path(dest).expanduser()
    by_hand = manual or f"download {url} by hand (a browser works) and save it as {dest}"
    if dest.is_file() and _matches(dest, sha256, expected_size, md5):
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(
            f"cannot create the folder {dest.parent}: {e.strerror or e}",
            "choose a writable location (on Kaggle: below /kaggle/working)",
        ) from None
    part = part_path(dest)
    hashers = _fetch(url, part, expected_size, md5 is not None, progress, timeout, by_hand)
    _verify_part(url, part, hashers, expected_size, sha256, md5, by_hand)
    os.replace(part, dest)
    return dest


def _verify_part(
    url: str,
    part: Path,
    hashers: dict[str, Any],
    expected_size: int | None,
    sha256: str | None,
    md5: str | None,
    by_hand: str,
) -> None:
    """Check a finished ``part`` against the expected size and checksums; on a mismatch delete it (resuming it
    could never succeed) and raise, so that only a verified file is ever renamed to its destination."""
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise DownloadError(
            f"{url} gave {size} bytes, expected {expected_size}; the damaged copy was deleted",
            f"run the same command again; if this persists, {by_hand}",
        )
    for algo, want in (("sha256", sha256), ("md5", md5)):
        got = hashers[algo].hexdigest() if algo in hashers else None
        if want and got != want.lower():
            part.unlink()
            raise DownloadError(
                f"checksum mismatch for {url}: expected {algo} {want}, got {got}; the damaged copy was deleted",
                "run the same command again (a proxy or a broken connection can corrupt a download); if it "
                f"persists, the file has changed upstream: report it, or {by_hand}",
            )


def _matches(path: Path, sha256: str | None, size: int | None, md5: str | None) -> bool:
    if size is not None and path.stat().st_size != size:
        return False
    if sha256 is None and md5 is None:
        return True
    hashers = _hashers(md5=md5 is not None)
    _hash_into(path, hashers)
    return (sha256 is None or hashers["sha256"].hexdigest() == sha256.lower()) and (
        md5 is None or hashers["md5"].hexdigest() == md5.lower()
    )


def _usable_part(part: Path, expected_size: int | None) -> int:
    """Bytes of ``part`` to resume from; a ``.part`` longer than the expected file is junk, deleted."""
    have = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and have > expected_size:
        part.unlink()
        have = 0
    return have


def _open(url: str, have: int, timeout: float) -> Any:
    """The server's response for ``url``, asking only for the bytes after the first ``have`` when there are some."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    return urlopen(Request(url, headers=headers), timeout=timeout)


def _whole_part(
    error: HTTPError, part: Path, have: int, expected_size: int | None, want_md5: bool
) -> dict[str, Any] | None:
    """After HTTP 416 (nothing left to send): hashers of ``part`` when it is already whole; else None, the
    ``.part`` (longer than the file: junk) deleted so that the next round starts over."""
    total = _total_from_content_range(error.headers.get("Content-Range"))
    if have in (total, expected_size):
        hashers = _hashers(want_md5)
        _hash_into(part, hashers)
        return hashers
    part.unlink()
    return None


def _http_error(url: str, error: HTTPError, by_hand: str) -> DownloadError:
    """What an HTTP error status (404, ...) means for the user, with the manual alternative."""
    return DownloadError(
        f"{url} answered HTTP {error.code} ({error.reason})"
        + (": the file is not there (moved or renamed?)" if error.code == 404 else ""),
        by_hand[0].upper() + by_hand[1:],
    )


def _unreachable(url: str, error: BaseException, by_hand: str) -> DownloadError:
    """The error for a server that could not be reached at all (offline, refused, timed out)."""
    return DownloadError(
        f"could not reach {url}: {_reason(error)}",
        f"check the internet connection (this machine may be offline), then run the same command again; "
        f"or {by_hand}",
    )


def _write_body(
    response: Any, url: str, part: Path, have: int, hashers: dict[str, Any], total: int | None, progress: bool
) -> int:
    """Stream the response's body onto ``part`` (appended after ``have`` bytes) and into ``hashers``; returns
    the bytes received. A connection that breaks off leaves ``part`` for the next call to resume."""
    received = 0
    with (
        open(part, "ab" if have else "wb") as out,
        _progress_bar(total, have, part.stem, progress) as bar,
    ):
        try:
            while block := response.read(CHUNK):
                out.write(block)
                for h in hashers.values():
                    h.update(block)
                received += len(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as e:
            raise DownloadError(
                f"the download of {url} broke off after {have + received} bytes ({_reason(e)})",
                f"run the same command again: it resumes from {part}",
            ) from None
    return received


def _receive(
    response: Any,
    url: str,
    part: Path,
    have: int,
    expected_size: int | None,
    want_md5: bool,
    progress: bool,
    by_hand: str,
) -> dict[str, Any] | None:
    """Complete ``part`` from one response and check that all of it arrived; returns hashers fed with all of
    ``part``'s bytes, or None when the server resumed at another offset (``part`` deleted: start over)."""
    with response:
        resumed = bool(have) and response.status == 206
        if have and not resumed:
            have = 0  # the server ignored Range and sends the whole file: start over
        elif resumed:
            start = (response.headers.get("Content-Range") or "").replace("bytes", "").strip()
            if not start.startswith(f"{have}-"):
                part.unlink()
                return None
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        total = have + length if length is not None else expected_size
        hashers = _hashers(want_md5)
        if have:
            _hash_into(part, hashers)
        received = _write_body(response, url, part, have, hashers, total, progress)
    if length is not None and received < length:
        raise DownloadError(
            f"the download of {url} was cut short: {have + received} of {have + length} bytes arrived",
            f"run the same command again: it resumes from {part}; or {by_hand}",
        )
    return hashers


def _fetch(
    url: str,
    part: Path,
    expected_size: int | None,
    want_md5: bool,
    progress: bool,
    timeout: float,
    by_hand: str,
) -> dict[str, Any]:
    """Bring ``part`` to the full file; returns hashers fed with all of its bytes."""
    for _attempt in range(2):  # a second round only after the server refused to resume
        have = _usable_part(part, expected_size)
        try:
            response = _open(url, have, timeout)
        except HTTPError as e:
            if e.code == 416 and have:
                # Nothing left to send: the .part is already whole, or it is longer than the file (junk).
                hashers = _whole_part(e, part, have, expected_size, want_md5)
                if hashers is not None:
                    return hashers
                continue
            raise _http_error(url, e, by_hand) from None
        except (URLError, OSError, http.client.HTTPException) as e:
            raise _unreachable(url, e, by_hand) from None
        hashers = _receive(response, url, part, have, expected_size, want_md5, progress, by_hand)
        if hashers is not None:
            return hashers
    raise DownloadError(
        f"{url} refused to resume the partial download {part}, even after starting over",
        f"delete {part} and run again; or {by_hand}",
    )
