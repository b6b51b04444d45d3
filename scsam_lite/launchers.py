"""Where a sweep's runs execute: one after the other in this process (``local``, the default), or each as its own
job on a Slurm cluster through ``submitit`` (``slurm``; ``submitit-local`` runs the same jobs as local processes,
for trying a sweep out and for the tests where no Slurm runs).

A job trains into the run folder the sweep planned for it, with ``resume=True``: a job that is preempted or runs
out of time is requeued by submitit (:meth:`TrainJob.checkpoint`) and continues from its last ``last.pt``, and a
sweep issued again skips finished configs (results registry), leaves running ones alone (the run folder's lock, or
Slurm's queue) and resubmits the rest, which resume. ``jobs.jsonl`` beside the runs records every submission, so
:func:`sweep_status` can say what is done, running, failed (with the log's tail) or not started.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import config as C
from .errors import ConfigError
from .runs import RunDir, lock_owner_alive, read_results
from .slurm_state import slurm_state

LAUNCHERS = ("local", "slurm", "submitit-local")
#: what a partition or account name may hold: no whitespace, newline, quote or shell character
_SLURM_VALUE = re.compile(r"[A-Za-z0-9._,:+@-]+")


@dataclass
class SlurmOptions:
    """The resources each job asks for (``scsam-lite sweep --launcher slurm --partition ... --gpus ...``)."""

    partition: str | None = None
    gpus: int = 1
    cpus: int = 4
    mem_gb: int = 16
    time_min: int = 240  # a job that needs longer is requeued and resumes (submitit's timeout hook)
    array_parallelism: int = 8  # at most this many of the sweep's jobs run at once
    max_requeues: int = 3
    extra: dict[str, Any] | None = None  # further ``slurm_*`` parameters of submitit, e.g. {"account": "..."}

    def __post_init__(self) -> None:
        """Every text value goes into a generated ``#SBATCH`` line: one with a newline, a space or a shell
        character would start another line or directive there, so only plain Slurm names are accepted."""
        values = {
            "partition": self.partition,
            **{k: v for k, v in (self.extra or {}).items() if isinstance(v, str)},
        }
        for key, value in values.items():
            if value is not None and not _SLURM_VALUE.fullmatch(value):
                raise ConfigError(
                    f"Slurm {key} {value!r} is not a plain Slurm name",
                    f"give the {key} as the cluster names it (letters, digits and . _ - , : + @ only)",
                )

    def executor_parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "timeout_min": self.time_min,
            "slurm_array_parallelism": self.array_parallelism,
            "cpus_per_task": self.cpus,
            "mem_gb": self.mem_gb,
            "tasks_per_node": 1,
            "nodes": 1,
        }
        if self.gpus:  # a CPU-only partition rejects any GPU request, even of zero
            params["gpus_per_node"] = self.gpus
        if self.partition:
            params["slurm_partition"] = self.partition
        for key, value in (self.extra or {}).items():
            params[key if key.startswith("slurm_") else f"slurm_{key}"] = value
        return params


class TrainJob:
    """One planned run as a submitit job: train (resuming) into its run folder; requeued when interrupted.

    ``threads``: torch's CPU threads in the job (None: torch's default, every core). Local jobs all run at once on
    one machine; each taking every core oversubscribes it, and on some CPUs (MKL / OpenMP spinning) two such jobs
    run ten times slower instead of two, so :func:`submit` gives each local job its share of the cores.
    """

    def __init__(
        self, config: dict[str, Any], run_dir: str, command: str, threads: int | None = None
    ) -> None:
        self.config, self.run_dir, self.command, self.threads = config, run_dir, command, threads

    def __call__(self) -> dict[str, Any]:
        import torch

        from .trainer import train

        if self.threads is not None:
            torch.set_num_threads(self.threads)

        result = train(
            C.config_from_dict(self.config), self.run_dir, resume=True, verbose=True, command=self.command
        )
        return {"run_dir": str(result.run_dir), "metrics": result.metrics}

    def checkpoint(self, *args: Any, **kwargs: Any):
        """submitit calls this on preemption or timeout: resubmit the same job, which resumes from last.pt."""
        import submitit

        return submitit.helpers.DelayedSubmission(
            TrainJob(self.config, self.run_dir, self.command, self.threads)
        )


def make_executor(launcher: str, folder: Path, slurm: SlurmOptions):
    """A submitit executor writing its logs under ``folder``; a clear error when Slurm or submitit is missing."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(
            f"--launcher {launcher} needs submitit",
            'pip install "scsam-lite[cluster]" (or pip install submitit)',
        ) from None
    if launcher == "submitit-local":
        executor = submitit.LocalExecutor(folder=folder, max_num_timeout=slurm.max_requeues)
        executor.update_parameters(timeout_min=slurm.time_min)
        return executor
    import shutil

    if not (shutil.which("sbatch") and shutil.which("srun")):
        raise ConfigError(
            "no Slurm here: `sbatch` and `srun` are not on the PATH",
            "run the sweep on the cluster's login node, or use --launcher local",
        )
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=slurm.max_requeues)
    executor.update_parameters(**slurm.executor_parameters())
    return executor


# -- the sweep's job record --------------------------------------------------------------------------------------------
def jobs_file(root: Path) -> Path:
    return root / "jobs.jsonl"


def record_job(root: Path, row: dict[str, Any]) -> None:
    from .runs import locked_append

    locked_append(jobs_file(root), json.dumps(row) + "\n")


def last_jobs(root: Path) -> dict[str, dict[str, Any]]:
    """The latest submission of each config hash."""
    out: dict[str, dict[str, Any]] = {}
    path = jobs_file(root)
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            out[row["config_hash"]] = row
    return out


def is_running(run_dir: Path, job: dict[str, Any] | None) -> bool:
    """Whether a config is being trained now: a live process holds its run folder's lock, or its Slurm job is still
    queued or running."""
    if lock_owner_alive(run_dir / ".lock"):
        return True
    if job and job.get("launcher") == "slurm":
        return slurm_state(str(job["job_id"])) in (
            "PENDING",
            "RUNNING",
            "REQUEUED",
            "CONFIGURING",
            "COMPLETING",
        )
    return False


def submit(
    todo: list, launcher: str, root: Path, slurm: SlurmOptions, command: str, verbose: bool = True
) -> list:
    """Submit every planned run of ``todo`` that is not running now; returns the submitit jobs."""
    jobs_before = last_jobs(root)
    ready = [r for r in todo if not is_running(r.run_dir, jobs_before.get(r.config_hash))]
    for r in todo:
        if r not in ready and verbose:
            print(f"running already, left alone: {r.label}, seed {r.seed} ({r.run_dir.name})")
    if not ready:
        return []
    executor = make_executor(launcher, root / "slurm-logs", slurm)
    # local jobs share this machine's cores; Slurm gives each job its own cpus_per_task
    threads = None if launcher == "slurm" else max(1, (os.cpu_count() or 1) // len(ready))
    calls = [TrainJob(r.config.to_dict(), str(r.run_dir), command, threads) for r in ready]
    if launcher == "slurm":
        with executor.batch():  # one job array, at most array_parallelism at once
            pending = [executor.submit(job) for job in calls]
        jobs = list(pending)
    else:
        jobs = [executor.submit(job) for job in calls]
    for r, job in zip(ready, jobs, strict=True):
        record_job(
            root,
            {
                "config_hash": r.config_hash,
                "label": r.label,
                "seed": r.seed,
                "run_dir": str(r.run_dir),
                "job_id": str(job.job_id),
                "launcher": launcher,
                "stdout": str(job.paths.stdout),
                "stderr": str(job.paths.stderr),
                "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        if verbose:
            print(f"submitted {r.label}, seed {r.seed} as job {job.job_id} -> {r.run_dir}")
    return jobs


@dataclass
class RunStatus:
    label: str
    seed: int
    config_hash: str
    run_dir: str
    state: str  # done | running | failed | interrupted | not started
    job_id: str | None = None
    step: int | None = None
    log_tail: str = ""


def _last_step(run_dir: Path) -> int | None:
    history = RunDir(run_dir).history_path
    if not history.is_file():
        return None
    lines = [line for line in history.read_text().splitlines() if line.strip()]
    try:
        return json.loads(lines[-1])["step"] if lines else None
    except (ValueError, KeyError):
        return None


def _tail(path: str | None, n: int = 15) -> str:
    if not path or not os.path.isfile(path):
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])


def sweep_status(runs: list) -> list[RunStatus]:
    """What became of each planned run: from the registry, the run folders and the job record."""
    if not runs:
        return []
    root = runs[0].run_dir.parent
    done = {row["config_hash"] for row in read_results(root / "results.jsonl")}
    jobs = last_jobs(root)
    out = []
    for r in runs:
        job = jobs.get(r.config_hash)
        if r.config_hash in done:
            state = "done"
        elif is_running(r.run_dir, job):
            state = "running"
        elif job is None and not r.run_dir.exists():
            state = "not started"
        else:
            slurm = slurm_state(job["job_id"]) if job and job.get("launcher") == "slurm" else None
            log = _tail(job and job.get("stderr"), 200)
            # cancelled, preempted without requeue, killed: interrupted (the next sweep resumes it); an exception
            # in the run itself (bad data, a NaN loss): failed, with the log's tail to say why
            crashed = "Traceback" in log and "CANCELLED" not in log
            failed = slurm in ("FAILED", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL") or crashed
            state = "failed" if failed else "interrupted"
        tail = _tail(job and job.get("stderr")) if state in ("failed", "interrupted") else ""
        out.append(
            RunStatus(
                r.label,
                r.seed,
                r.config_hash,
                str(r.run_dir),
                state,
                job and job.get("job_id"),
                _last_step(r.run_dir),
                tail,
            )
        )
    return out


def format_status(status: list[RunStatus]) -> str:
    lines = []
    counts: dict[str, int] = {}
    for s in status:
        counts[s.state] = counts.get(s.state, 0) + 1
        step = f", step {s.step}" if s.step is not None and s.state != "done" else ""
        job = f", job {s.job_id}" if s.job_id else ""
        lines.append(f"{s.state:12s} {s.label}, seed {s.seed}{job}{step}  ({Path(s.run_dir).name})")
        if s.log_tail:
            lines.extend("             | " + line for line in s.log_tail.splitlines())
    lines.append(", ".join(f"{n} {state}" for state, n in counts.items()))
    return "\n".join(lines)


def status_dicts(status: list[RunStatus]) -> list[dict[str, Any]]:
    return [asdict(s) for s in status]
