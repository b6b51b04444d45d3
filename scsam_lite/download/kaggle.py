"""Kaggle datasets through the official ``kaggle`` client, imported only when needed.

The ``kaggle`` package authenticates as soon as it is imported and prints a help text (or exits) when it finds no
credentials, so this module looks for credentials itself first, using the same places as the client (version
1.6 to 2.x), and imports the client lazily inside :func:`download_dataset`. ``import scsam_lite`` therefore never
imports ``kaggle``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import CredentialsError, DownloadError

ACCOUNT_PAGE = "https://www.kaggle.com/settings/api"


def _config_dirs() -> list[Path]:
    explicit = os.environ.get("KAGGLE_CONFIG_DIR")
    if explicit:
        return [Path(explicit).expanduser()]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.home() / ".kaggle", xdg / "kaggle"]


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def credentials_source() -> str | None:
    """Where Kaggle credentials were found (for messages), or ``None``. Never imports ``kaggle``."""
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") and os.environ.get("KAGGLE_API_V1_TOKEN"):
        if _read_text(Path(os.environ["KAGGLE_API_V1_TOKEN"])):
            return "the Kaggle notebook's own token"
    token = os.environ.get("KAGGLE_API_TOKEN", "").strip()
    if token:
        return "KAGGLE_API_TOKEN"
    for name in ("access_token", "access_token.txt"):
        if _read_text(Path.home() / ".kaggle" / name):
            return f"~/.kaggle/{name}"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    for folder in _config_dirs():
        text = _read_text(folder / "kaggle.json")
        if text:
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("username") and data.get("key"):
                return str(folder / "kaggle.json")
    if _read_text(Path.home() / ".kaggle" / "credentials.json"):  # `kaggle auth login` (OAuth)
        return "~/.kaggle/credentials.json"
    return None


def ways_to_authenticate() -> str:
    return (
        f"create an API token on your Kaggle account page ({ACCOUNT_PAGE}), then do one of: "
        "(1) save the downloaded kaggle.json as ~/.kaggle/kaggle.json (chmod 600); "
        "(2) set the KAGGLE_USERNAME and KAGGLE_KEY environment variables; "
        "(3) set KAGGLE_API_TOKEN to the new-style token (or save it in ~/.kaggle/access_token)"
    )


def require_credentials(what: str, manual: str) -> str:
    """The credentials' location, or one CredentialsError naming every way to provide them and the manual step."""
    found = credentials_source()
    if found is None:
        raise CredentialsError(
            f"no Kaggle credentials found; they are needed to download {what} from Kaggle",
            f"{ways_to_authenticate()}; or {manual}",
        )
    return found


def _client():
    """An authenticated ``KaggleApi`` (imported here, after the credentials check)."""
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise DownloadError("the kaggle package is not installed", "pip install kaggle") from None
    except (Exception, SystemExit) as e:  # the package authenticates at import time
        raise CredentialsError(
            f"the Kaggle client did not start: {e}",
            f"check your Kaggle credentials; {ways_to_authenticate()}",
        ) from None
    api = KaggleApi()
    try:
        api.authenticate()
    except (Exception, SystemExit) as e:
        raise CredentialsError(
            f"Kaggle rejected the credentials ({e or 'authentication failed'})",
            f"renew them: {ways_to_authenticate()}",
        ) from None
    return api


def download_dataset(slug: str, folder: Path, *, what: str, manual: str, force: bool, progress: bool) -> Path:
    """Download Kaggle dataset ``slug`` as a zip into ``folder`` (the client resumes partial files itself).

    Returns the zip's path. Raises CredentialsError without credentials and DownloadError when the client fails
    (no network, rules not accepted on the dataset page, dataset removed, ...).
    """
    require_credentials(what, manual)
    api = _client()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        api.dataset_download_files(slug, path=str(folder), force=force, quiet=not progress, unzip=False)
    except (Exception, SystemExit) as e:
        raise DownloadError(
            f"the Kaggle download of {slug} failed: {type(e).__name__}: {e}",
            f"check the connection and that you can open https://www.kaggle.com/datasets/{slug} while logged in; "
            f"or {manual}",
        ) from None
    archive = folder / f"{slug.split('/')[-1]}.zip"
    if not archive.is_file():
        raise DownloadError(
            f"the Kaggle client finished but {archive} is not there",
            f"run again with --force; or {manual}",
        )
    return archive
