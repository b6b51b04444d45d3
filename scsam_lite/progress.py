"""Progress reporting: a tqdm bar where someone watches, one plain line per validation where nobody does.

Under papermill/nbval (a kernel without a frontend) or with output redirected to a file, a bar only fills the
log with carriage returns, so those get plain lines. ``SCSAM_PROGRESS=bar|lines`` forces either.
"""

from __future__ import annotations

import os
import sys


def in_notebook_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def frontend_attached() -> bool:
    """Whether a person is likely looking at live output (a Jupyter frontend, Colab, Kaggle interactive, VS Code).

    Kernels started by papermill, nbval or nbconvert see none of these markers; jupyter-server sets
    ``JPY_SESSION_NAME`` for kernels it starts for a notebook tab.
    """
    env = os.environ
    if env.get("COLAB_RELEASE_TAG") or env.get("COLAB_GPU"):
        return True
    if env.get("KAGGLE_KERNEL_RUN_TYPE"):
        return env["KAGGLE_KERNEL_RUN_TYPE"].lower() == "interactive"
    return bool(env.get("JPY_SESSION_NAME") or env.get("VSCODE_PID") or env.get("VSCODE_CWD"))


def use_bar() -> bool:
    forced = os.environ.get("SCSAM_PROGRESS", "").lower()
    if forced in ("bar", "lines"):
        return forced == "bar"
    if in_notebook_kernel():
        return frontend_attached()
    return sys.stderr.isatty()
