"""Install scsam-lite on Colab or Kaggle without replacing what the platform ships.

The first cell of every notebook fetches this file from GitHub at the notebook's release tag, checks it against
the sha256 the cell carries, and runs it (the package is not installed yet, so it cannot be imported): standard
library only. Nothing is fetched from a moving branch: a push to ``main`` never reaches a student's running
notebook, and a saved notebook keeps installing the release it was written for. It installs the package at that
same tag with the platform's
own ``torch``, ``torchvision``, ``numpy`` and ``ipywidgets`` pinned as constraints, because a newer torch would not
match the platform's CUDA build, and a newer ipywidgets does not render in Colab's front end. On any other machine,
or when scsam-lite is already importable, it does nothing: install with ``pip install -e ".[dev]"`` there.

Run as ``python hosted_install.py``, or ``exec``-ed by the notebook cell: when pip fails it stops with one line
(``SystemExit``) that names the fix.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile

REPO_URL = "https://github.com/scsam-lite/scsam-lite"
#: the release this installer belongs to: the git tag of the package's version (``v`` + ``scsam_lite.__version__``)
RELEASE = "v0.1.0"
#: environment variables that only a Colab or Kaggle runtime sets
HOSTED_VARS = ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE")
#: the platform's packages that the install must keep at their installed versions
KEEP = ("torch", "torchvision", "numpy", "ipywidgets")


def hosted() -> bool:
    """Whether this is a Colab or Kaggle runtime."""
    return any(os.environ.get(v) for v in HOSTED_VARS)


def pins(packages: tuple[str, ...] = KEEP) -> list[str]:
    """``name==version`` of each of ``packages`` that is installed (the constraints that keep them)."""
    out = []
    for pkg in packages:
        try:
            out.append(f"{pkg}=={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def install(repo_url: str = REPO_URL, release: str = RELEASE) -> int:
    """Install scsam-lite at tag ``release`` of ``repo_url`` on a hosted platform where it is missing; returns
    pip's exit status (0 when there was nothing to do)."""
    if not hosted() or importlib.util.find_spec("scsam_lite") is not None:
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as keep:
        keep.write("\n".join(pins()))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "-c",
        keep.name,
        f"scsam-lite @ git+{repo_url}@{release}",
    ]
    return subprocess.run(cmd).returncode


def main() -> None:
    """Install where needed; on failure stop with one line (a notebook shows it without a traceback)."""
    if install() != 0:
        raise SystemExit(
            "pip could not install scsam-lite: check the internet connection (on Kaggle: Settings > Internet on), "
            "then run this cell again"
        )


if __name__ == "__main__":
    main()
