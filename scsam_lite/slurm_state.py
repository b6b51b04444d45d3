"""What Slurm says about a job. A low-level module: run folders ask it whether a lock's job still runs, the Slurm
launcher whether a sweep's job is queued, and neither has to import the other."""

from __future__ import annotations

import subprocess


def slurm_state(job_id: str) -> str | None:
    """Slurm's state of a job (PENDING, RUNNING, COMPLETED, FAILED, TIMEOUT, ...), None when Slurm cannot say."""
    for cmd in (
        ["squeue", "-h", "-j", job_id, "-o", "%T"],
        ["sacct", "-n", "-X", "-j", job_id, "-o", "State"],
    ):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.split()
        except (OSError, subprocess.SubprocessError):
            continue
        if out:
            return out[0].rstrip("+")
    return None
