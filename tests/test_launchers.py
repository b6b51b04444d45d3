"""Sweeps through submitit: each config its own job, a killed job resumed by re-issuing the sweep, a registry with
every config exactly once, and --status. Run with submitit's local executor (no Slurm on the CI machine); the
Slurm side is covered by the resource mapping and by the lock's Slurm check."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scsam_lite import launchers as L
from scsam_lite.cli import main
from scsam_lite.errors import ConfigError
from scsam_lite.runs import RunDir, read_results
from scsam_lite.sweeps import plan, sweep

pytest.importorskip("submitit")
sys.path.insert(0, str(Path(__file__).parent))  # tests/slurm_cluster.py

# long enough (tens of seconds on a fast CPU) that a signal sent after the first checkpoint lands mid-run
TINY = {"train.iterations": 1000, "train.val_every": 100, "data.labeled": 0.2}
# two configs of a cheap grid: the U-Net alone at two label shares (the launcher does not care what trains)
GRID = dict(grid="labels", method="unet", variants=["5%", "10%"])
STEPS = list(range(100, 1001, 100))  # a run's history: one line per validation, none twice


def _wait_for(condition, timeout=240.0, every=0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(every)
    return False


@pytest.mark.slow
def test_a_killed_job_resumes_when_the_sweep_is_issued_again(tmp_path):
    kw = dict(preset="quick", seeds=(0,), overrides=TINY, out=tmp_path, verbose=False, **GRID)
    runs = plan(preset="quick", seeds=(0,), overrides=TINY, out=tmp_path, **GRID)
    victim = runs[0]
    sweep(launcher="submitit-local", **kw)
    # kill one job once it has saved a checkpoint (step 10 or later), as a preemption without warning would
    lock = victim.run_dir / ".lock"
    assert _wait_for(lambda: RunDir(victim.run_dir).last_path.is_file() and lock.is_file())
    pid = json.loads(lock.read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    others = runs[1:]
    assert _wait_for(lambda: len(read_results(tmp_path / "results.jsonl")) == len(others))
    status = {s.config_hash: s for s in L.sweep_status(runs)}
    assert status[victim.config_hash].state == "interrupted"
    assert all(status[r.config_hash].state == "done" for r in others)
    killed_at = L._last_step(victim.run_dir)
    assert killed_at is not None and killed_at < 1000

    sweep(launcher="submitit-local", wait=True, **kw)  # again: only the killed run, resumed
    rows = read_results(tmp_path / "results.jsonl")
    assert sorted(r["config_hash"] for r in rows) == sorted(r.config_hash for r in runs)  # once each
    submissions = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert [s["config_hash"] for s in submissions].count(victim.config_hash) == 2
    assert len(submissions) == len(runs) + 1  # the finished ones were not submitted again
    log = (victim.run_dir / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == STEPS  # resumed, not restarted or doubled
    out = L.sweep_status(runs)
    assert all(s.state == "done" for s in out)
    cli = ["sweep", "labels", "--method", "unet", "--variants", "5%,10%", "--status", "--out", str(tmp_path)]
    assert main(cli + _sets()) == 0


def _sets():
    return [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]


@pytest.mark.slow
def test_a_running_config_is_not_submitted_twice(tmp_path, capsys):
    short = {**TINY, "train.iterations": 100, "train.val_every": 50}  # nothing is interrupted here
    runs = plan(preset="quick", seeds=(0,), overrides=short, out=tmp_path, **GRID)
    busy = runs[0].run_dir
    busy.mkdir(parents=True)
    (busy / ".lock").write_text(json.dumps({"host": os.uname().nodename, "pid": os.getpid()}))  # alive: us
    jobs = L.submit(runs, "submitit-local", tmp_path, L.SlurmOptions(), "pytest")
    assert len(jobs) == len(runs) - 1
    assert "running already" in capsys.readouterr().out
    for job in jobs:
        job.result()
    status = {s.config_hash: s.state for s in L.sweep_status(runs)}
    assert status[runs[0].config_hash] == "running"


@pytest.mark.slow
def test_a_failed_job_shows_its_log_tail(tmp_path):
    runs = plan(preset="quick", overrides={**TINY, "specialist.name": "nope"}, out=tmp_path, **GRID)
    jobs = L.submit(runs[:1], "submitit-local", tmp_path, L.SlurmOptions(), "pytest")
    with pytest.raises(Exception):  # noqa: B017 (submitit wraps the job's error)
        jobs[0].result()
    (s,) = L.sweep_status(runs[:1])
    assert s.state == "failed" and "nope" in s.log_tail


def test_local_jobs_share_the_cores_and_slurm_jobs_keep_their_own(tmp_path, monkeypatch):
    """Local jobs all run at once: each gets its share of the cores (two jobs each taking every core of a 2-core
    CPU ran ten times slower); a Slurm job has its own cpus_per_task."""
    import torch

    class Job:
        job_id = "1"
        paths = type("P", (), {"stdout": "out", "stderr": "err"})()

    class Executor:
        def __init__(self):
            self.jobs = []

        def submit(self, job):
            self.jobs.append(job)
            return Job()

        def batch(self):
            import contextlib

            return contextlib.nullcontext()

    runs = plan(preset="quick", seeds=(0,), overrides=TINY, out=tmp_path, **GRID)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    for launcher, threads in (("submitit-local", 2), ("slurm", None)):
        executor = Executor()
        monkeypatch.setattr(L, "make_executor", lambda *a, ex=executor: ex)
        L.submit(runs, launcher, tmp_path / launcher, L.SlurmOptions(), "cmd", verbose=False)
        assert [j.threads for j in executor.jobs] == [threads, threads]
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    done = type("Result", (), {"run_dir": "r", "metrics": {}})()
    monkeypatch.setattr(
        "scsam_lite.trainer.train", lambda *a, **k: done if seen == [1] else pytest.fail("late")
    )
    assert L.TrainJob(runs[0].config.to_dict(), str(runs[0].run_dir), "cmd", threads=1)()["run_dir"] == "r"


def test_slurm_resources_map_to_submitit_parameters():
    params = L.SlurmOptions(
        partition="gpu", gpus=2, time_min=90, extra={"account": "lab"}
    ).executor_parameters()
    assert params["slurm_partition"] == "gpu" and params["gpus_per_node"] == 2 and params["timeout_min"] == 90
    assert params["slurm_account"] == "lab" and params["slurm_array_parallelism"] == 8


@pytest.mark.parametrize(
    "options",
    [
        {"partition": "gpu\n#SBATCH --wrap=rm -rf ~"},
        {"partition": "gpu debug"},
        {"extra": {"account": "lab\nx"}},
    ],
)
def test_slurm_values_that_would_break_the_batch_script_are_refused(options, tmp_path, capsys):
    """A newline in a partition or account once reached the generated batch script as a line of its own."""
    with pytest.raises(ConfigError, match="is not a plain Slurm name"):
        L.SlurmOptions(**options)
    flag = "--partition" if "partition" in options else "--account"
    value = options.get("partition") or options["extra"]["account"]
    args = [
        "sweep",
        "rampup",
        "--preset",
        "quick",
        "--launcher",
        "slurm",
        flag,
        value,
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 2
    assert "is not a plain Slurm name" in capsys.readouterr().err


def test_slurm_without_slurm_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch
    with pytest.raises(ConfigError, match="no Slurm here"):
        L.make_executor("slurm", tmp_path, L.SlurmOptions())


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A real one-node Slurm on localhost (tests/slurm_cluster.py), or a skip that says why not."""
    import slurm_cluster

    reason = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    if reason:
        pytest.skip(reason)
    yield
    slurm_cluster.stop()


def _slurm_job(run_dir):
    jobs = L.last_jobs(run_dir.parent)
    return next(j for j in jobs.values() if j["run_dir"] == str(run_dir))


@pytest.mark.slow
def test_on_a_real_slurm_a_preempted_job_requeues_itself_and_a_cancelled_one_resumes(slurm, tmp_path):
    """submitit's checkpoint hook (USR2, as Slurm sends before a time limit or a preemption) requeues the job, which
    resumes from last.pt; a job cancelled outright is resubmitted by the next sweep and resumes too."""
    options = L.SlurmOptions(gpus=0, cpus=1, mem_gb=2, time_min=30, array_parallelism=2)
    kw = dict(preset="quick", seeds=(0,), overrides=TINY, out=tmp_path, verbose=False, **GRID)
    runs = plan(preset="quick", seeds=(0,), overrides=TINY, out=tmp_path, **GRID)
    sweep(launcher="slurm", slurm=options, **kw)
    preempted, cancelled = runs
    for r in runs:
        assert _wait_for(lambda r=r: RunDir(r.run_dir).last_path.is_file(), timeout=300)
    job_p, job_c = _slurm_job(preempted.run_dir)["job_id"], _slurm_job(cancelled.run_dir)["job_id"]
    subprocess.run(["scancel", "--signal=USR2", job_p], check=True)  # "your time is up": checkpoint + requeue
    subprocess.run(["scancel", job_c], check=True)  # gone without warning
    assert _wait_for(lambda: L.slurm_state(job_c) not in ("RUNNING", "COMPLETING"), timeout=60)
    assert _wait_for(lambda: len(read_results(tmp_path / "results.jsonl")) == 1, timeout=400)
    status = {s.config_hash: s for s in L.sweep_status(runs)}
    assert status[preempted.config_hash].state == "done"  # requeued by submitit, not by us
    assert status[cancelled.config_hash].state == "interrupted"
    sweep(launcher="slurm", slurm=options, **kw)  # again: only the cancelled one
    assert _wait_for(lambda: len(read_results(tmp_path / "results.jsonl")) == 2, timeout=400)
    rows = read_results(tmp_path / "results.jsonl")
    assert sorted(r["config_hash"] for r in rows) == sorted(r.config_hash for r in runs)
    for r in runs:
        steps = [json.loads(line)["step"] for line in (r.run_dir / "history.jsonl").read_text().splitlines()]
        assert steps == STEPS, (r.label, steps)
    submitted = [json.loads(line) for line in (tmp_path / "jobs.jsonl").read_text().splitlines()]
    assert len(submitted) == 3
