"""Test-session settings shared by the unit tests and the notebooks nbval runs.

Run directories and results registries written while testing go to a temporary folder, never into the
checkout (the notebooks' kernels inherit this environment).
"""

import os
import tempfile

os.environ.setdefault("SCSAM_RUNS_DIR", tempfile.mkdtemp(prefix="scsam-test-runs-"))
os.environ.setdefault("MPLBACKEND", "Agg")
