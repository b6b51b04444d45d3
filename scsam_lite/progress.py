"""Progress reporting: a tqdm bar where someone watches, one plain line per validation where nobody does.

Under papermill/nbval (a kernel without a frontend) or with output redirected to a file, a bar only fills the
log with carriage returns, so those get plain lines. ``SCSAM_PROGRESS=bar|lines`` forces either.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


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


class _Lines:
    """The plain-lines stand-in for a tqdm bar: the description once, then a line at every tenth of the way."""

    def __init__(self, total: int, desc: str, unit: str) -> None:
        self.total, self.unit, self.n, self._next = total, unit, 0, 1
        self._start = time.perf_counter()
        print(f"{desc}: {total} {unit}", flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and self.n * 10 >= self._next * self.total:
            self._next = self.n * 10 // self.total + 1
            took = time.perf_counter() - self._start
            print(f"  {self.n}/{self.total} {self.unit} ({took:.0f} s)", flush=True)

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, unit: str = "it") -> Any:
    """A tqdm bar where someone watches (:func:`use_bar`), plain progress lines where nobody does: a job of minutes
    under papermill or in a log file still says how far it has got. Use ``update(n)`` and ``close()``."""
    if use_bar():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
    return _Lines(total, desc, unit)
