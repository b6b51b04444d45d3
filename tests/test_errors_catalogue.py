"""Errors a user can cause end in one line that names the fix (issue: nothing silently wrong)."""

from __future__ import annotations

import json

import pytest

from scsam_lite import config as C
from scsam_lite.cli import main
from scsam_lite.runs import write_item_metrics
from scsam_lite.trainer import train


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err, err
    return err


def _run_with_items(folder, resolution, dice):
    folder.mkdir(parents=True)
    write_item_metrics(
        folder / "metrics_items.csv", {"unet": [{"item": f"i{k}", "dice": d} for k, d in enumerate(dice)]}
    )
    config = {"config": {"data": {"dataset": "kvasir-seg", "resolution": resolution}}}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_compare_refuses_runs_at_different_resolutions(tmp_path, capsys):
    a = _run_with_items(tmp_path / "a", 64, [0.5, 0.6, 0.7])
    b = _run_with_items(tmp_path / "b", 128, [0.4, 0.5, 0.6])
    assert main(["compare", str(a), str(b)]) == 2
    err = _one_line_error(capsys)
    assert "data.resolution: 64 vs 128" in err
    c = _run_with_items(tmp_path / "c", 64, [0.4, 0.5, 0.6])
    assert main(["compare", str(a), str(c)]) == 0


def test_compare_with_no_bootstrap_or_a_malformed_csv_is_one_line(tmp_path, capsys):
    a = _run_with_items(tmp_path / "a", 64, [0.5, 0.6, 0.7])
    b = _run_with_items(tmp_path / "b", 64, [0.4, 0.5, 0.6])
    assert main(["compare", str(a), str(b), "--boot", "0"]) == 2
    assert "bootstrap" in _one_line_error(capsys)
    (b / "metrics_items.csv").write_text("model,item,dice\nunet,i0,0.4\nunet,i1\nunet,i2,zero\n")
    assert main(["compare", str(a), str(b)]) == 2
    assert "not a per-item metrics file" in _one_line_error(capsys)


@pytest.mark.slow
def test_a_damaged_or_wrong_last_checkpoint_is_one_line(tmp_path, capsys):
    cfg = C.build_config("quick", {"train.iterations": 4, "train.val_every": 2, "data.resolution": 64})
    run = tmp_path / "run"
    train(cfg, run, verbose=False, stop_after=2)
    last = run / "checkpoints" / "last.pt"
    last.write_bytes(b"")  # a 0-byte last.pt (a disk that filled up)
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "empty file" in _one_line_error(capsys)
    last.write_bytes((run / "checkpoints" / "best.pt").read_bytes())  # best.pt copied over it
    assert main(["train", "--out", str(run), "--resume"]) == 2
    err = _one_line_error(capsys)
    assert "no training state" in err and "best_val" in err


@pytest.mark.parametrize("setting", ["train.device=bogus", "train.precision=bogus"])
def test_a_bogus_device_or_precision_is_one_line_and_writes_nothing(setting, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "quick", "--set", setting, "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert setting.split("=")[0] in err
    assert not out.exists()


@pytest.mark.slow
def test_an_edited_config_json_is_refused_on_resume_with_the_keys(tmp_path, capsys):
    """config.json edited in a half-finished run (more labels, another rate) is refused, not trained on."""
    cfg = C.build_config("quick", {"train.iterations": 4, "train.val_every": 2, "data.resolution": 64})
    run = tmp_path / "run"
    train(cfg, run, verbose=False, stop_after=2)
    record = json.loads((run / "config.json").read_text())
    record["config"]["data"]["labeled"] = 160
    record["config"]["train"]["lr"] = 0.05
    (run / "config.json").write_text(json.dumps(record))
    assert main(["train", "--out", str(run), "--resume"]) == 2
    err = _one_line_error(capsys)
    assert "data.labeled: 0.05 -> 160" in err and "train.lr" in err and "config.json" in err
    (run / "config.json").write_text("{not json")
    assert main(["train", "--out", str(run), "--resume"]) == 2
    assert "is damaged" in _one_line_error(capsys)


@pytest.mark.slow
def test_the_nan_stop_does_not_advise_a_resume_that_would_be_refused(tmp_path):
    from scsam_lite.errors import TrainingError

    cfg = C.build_config("quick", {"train.iterations": 4, "train.val_every": 2, "train.lr": 1e30})
    with pytest.raises(TrainingError) as err:
        train(cfg, tmp_path / "run", verbose=False)
    assert "became" in str(err.value) and "--resume" not in (err.value.fix or "").split("resuming")[0]
    assert "new run" in err.value.fix


def test_one_process_at_a_time_in_a_run_folder_and_stale_locks_are_taken_over(tmp_path):
    from scsam_lite.errors import TrainingError
    from scsam_lite.runs import RunDir

    run = RunDir.open(tmp_path / "run", resume=False)
    with run.lock():
        with pytest.raises(TrainingError, match="another process .* is training into"):
            with run.lock():
                pass
        cfg = C.build_config("quick", {"train.iterations": 2, "train.val_every": 2, "data.resolution": 64})
        with pytest.raises(TrainingError, match="another process"):
            train(cfg, tmp_path / "run", resume=True, verbose=False)
    assert not (tmp_path / "run" / ".lock").exists()
    import socket

    (tmp_path / "run" / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": 2**22 + 12345}))
    with run.lock():  # its process is gone: taken over
        pass


@pytest.mark.slow
def test_a_finished_run_missing_from_the_registry_is_registered_once(tmp_path):
    from scsam_lite.runs import read_results

    cfg = C.build_config("quick", {"train.iterations": 2, "train.val_every": 2, "data.resolution": 64})
    train(cfg, tmp_path / "run", verbose=False)
    registry = tmp_path / "results.jsonl"
    assert len(read_results(registry)) == 1
    registry.write_text("")  # killed between metrics.json and the registry row
    for _ in range(2):
        train(cfg, tmp_path / "run", resume=True, verbose=False)
    rows = read_results(registry)
    assert len(rows) == 1 and rows[0]["run_dir"] == str((tmp_path / "run").resolve())


@pytest.mark.slow
def test_a_cut_off_last_history_line_is_left_out_and_the_run_resumes(tmp_path):
    from scsam_lite.errors import DataError
    from scsam_lite.runs import RunDir

    cfg = C.build_config("quick", {"train.iterations": 4, "train.val_every": 2, "data.resolution": 64})
    train(cfg, tmp_path / "run", verbose=False, stop_after=2)
    run = RunDir(tmp_path / "run")
    with open(run.history_path, "a") as f:
        f.write('{"step": 4, "time_s"')  # a kill mid-write
    assert [r["step"] for r in run.history()] == [2]
    res = train(cfg, tmp_path / "run", resume=True, verbose=False)
    assert [r["step"] for r in run.history()] == [2, 4] and res.metrics
    run.history_path.write_text('{"step": 2}\n{broken\n{"step": 4}\n')
    with pytest.raises(DataError, match="line 2 is damaged"):
        run.history()


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_a_finished_read_only_run_still_resumes(tmp_path, capsys, monkeypatch):
    import errno
    import os

    import scsam_lite.runs as runs

    cfg_args = ["--preset", "quick", "--set", "train.iterations=2", "--set", "train.val_every=2"]
    cfg_args += ["--set", "data.resolution=64"]

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as m:
        m.setattr(runs, "atomic_write_bytes", full)
        assert main(["train", *cfg_args, "--out", str(tmp_path / "full")]) == 2
    err = _one_line_error(capsys)
    assert "No space left on device" in err and "free disk space" in err

    assert main(["train", *cfg_args, "--out", str(tmp_path / "done"), "--quiet"]) == 0
    capsys.readouterr()

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(a[0]) if a else "")

    real_open = os.open
    with monkeypatch.context() as m:  # nothing in the finished run may be written
        m.setattr(
            runs.os,
            "open",
            lambda p, *a, **k: read_only(p) if str(p).endswith(".lock") else real_open(p, *a, **k),
        )
        m.setattr(runs, "atomic_write_text", read_only)
        m.setattr(runs, "atomic_write_bytes", read_only)
        assert main(["train", "--out", str(tmp_path / "done"), "--resume", "--quiet"]) == 0
        # an unfinished run there cannot go on: one line
        assert main(["train", *cfg_args, "--out", str(tmp_path / "new")]) == 2
    assert "Read-only file system" in _one_line_error(capsys)


@pytest.mark.slow
def test_written_files_are_not_private_and_orphan_temporaries_are_cleared(tmp_path):
    import os
    import stat

    cfg = C.build_config("quick", {"train.iterations": 2, "train.val_every": 2, "data.resolution": 64})
    train(cfg, tmp_path / "run", verbose=False, stop_after=1)
    run = tmp_path / "run"
    umask = os.umask(0)
    os.umask(umask)
    for f in (run / "config.json", run / "checkpoints" / "last.pt"):
        if f.exists():
            assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f
    orphan = run / "checkpoints" / ".last.pt.abc123.tmp"  # a kill during a save
    orphan.write_bytes(b"partial")
    train(cfg, run, resume=True, verbose=False)
    assert not orphan.exists()


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    out = tmp_path / "run"
    args = ["train", "--preset", "quick", "--dataset", "kvasir-seg", "--data-root", str(tmp_path / "nothing")]
    assert main([*args, "--out", str(out)]) == 2
    assert "kvasir" in _one_line_error(capsys).lower()
    assert not out.exists()
