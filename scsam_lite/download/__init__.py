"""Downloads: datasets and SAM checkpoints, verified, resumable and atomic.

``download("kvasir-seg", root)`` fetches, checks and unpacks a dataset into ``<root>/kvasir-seg/`` (or finds a copy
already there); ``sam_checkpoint("vit_b")`` returns the path of a verified SAM checkpoint. Every file is checked by
sha256 (or, where no trustworthy archive checksum exists, by the digest or structure of its contents; see
:mod:`scsam_lite.download.sources`); interrupted downloads resume; archives are extracted safely and all at once.
The Kaggle client is imported only when a Kaggle download actually starts.
"""

from __future__ import annotations

from .archive import safe_extract
from .checkpoints import sam_checkpoint
from .core import MANIFEST, download, resolve
from .http import download_file, file_sha256
from .kaggle import credentials_source as kaggle_credentials
from .sources import DOWNLOAD_NAMES, SOURCES, Source, help_text, tree_digest

__all__ = [
    "DOWNLOAD_NAMES",
    "MANIFEST",
    "SOURCES",
    "Source",
    "download",
    "download_file",
    "file_sha256",
    "help_text",
    "kaggle_credentials",
    "resolve",
    "safe_extract",
    "sam_checkpoint",
    "tree_digest",
]
