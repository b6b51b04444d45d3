import argparse
import json
import multiprocessing
import os
import socket
import threading
import time

import pytest
import torch

from scsam_lite.errors import CheckpointError, TrainingError
from scsam_lite.runs import (
    RunDir,
    append_result,
    atomic_write_text,
    load_checkpoint,
    read_results,
    results_table,
    save_checkpoint,
)


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    atomic_write_text(target, "old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # no temp file left behind


def test_checkpoint_round_trip_and_corruption(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"step": 3, "w": torch.arange(4.0)})
    state = load_checkpoint(path)
    assert state["step"] == 3 and torch.equal(state["w"], torch.arange(4.0))
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(CheckpointError, match="could not be read"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"

    torch.save({"x": argparse.Namespace(cmd="rm -rf")}, path)  # an arbitrary object, not plain weights
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_run_dir_refuses_to_overwrite_without_resume(tmp_path):
    run = RunDir.open(tmp_path / "run", resume=False)
    save_checkpoint(run.last_path, {"step": 1})
    with pytest.raises(TrainingError, match="--resume"):
        RunDir.open(tmp_path / "run", resume=False)
    assert RunDir.open(tmp_path / "run", resume=True).path == run.path


def test_history_truncation_on_resume(tmp_path):
    run = RunDir.open(tmp_path / "run", resume=False)
    for s in (100, 200, 300):
        run.log({"step": s, "loss": 1.0 / s})
    run.truncate_history(200)
    assert [r["step"] for r in run.history()] == [100, 200]


def test_results_registry_skips_a_cut_line(tmp_path):
    reg = tmp_path / "results.jsonl"
    append_result(reg, {"method": "unet", "metrics": {"unet": {"dice": 0.8}}})
    with open(reg, "a") as f:
        f.write('{"method": "mean-te')  # a crash mid-write
    rows = read_results(reg)
    assert len(rows) == 1
    assert results_table(reg)["unet.dice"].tolist() == [0.8]


def _contend(folder, start, decide, rank, results):
    """One of two processes that find the same stale lock; ``decide`` holds both between reading the lock's owner
    and acting on it (as two processes that read it at the same moment would), rank 1 then acting a little later."""
    import scsam_lite.runs as runs

    owner_alive = runs._owner_alive

    def slow(owner):
        alive = owner_alive(owner)
        try:
            decide.wait(timeout=1.0)  # never met where one process at a time decides: it times out
        except threading.BrokenBarrierError:
            pass
        time.sleep(0.3 * rank)
        return alive

    runs._owner_alive = slow
    start.wait(timeout=60)
    try:
        with runs.RunDir(folder).lock():
            results.put("entered")
            time.sleep(1.5)
    except TrainingError:
        results.put("busy")


def test_two_processes_taking_over_one_stale_lock_let_exactly_one_in(tmp_path):
    fork = "fork" in multiprocessing.get_all_start_methods()  # cheaper; spawn where there is none
    ctx = multiprocessing.get_context("fork" if fork else "spawn")
    dead = ctx.Process(target=int)
    dead.start()
    dead.join()
    run = RunDir.open(tmp_path / "run", resume=False)
    (run.path / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    start, decide, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_contend, args=(run.path, start, decide, r, results)) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert sorted(results.get(timeout=5) for _ in procs) == ["busy", "entered"]
    assert not (run.path / ".lock").exists()
