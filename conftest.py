"""Test-session settings shared by the unit tests and the notebooks nbval runs.

Run directories and results registries written while testing go to a temporary folder, never into the
checkout (the notebooks' kernels inherit this environment).
"""

import os
import tempfile

import pytest

os.environ.setdefault("SCSAM_RUNS_DIR", tempfile.mkdtemp(prefix="scsam-test-runs-"))
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items):
    """Every notebook cell nbval runs is in the slow tier (`pytest -m slow`): together they execute the course."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
