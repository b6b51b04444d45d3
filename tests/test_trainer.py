"""The shared trainer: a real (tiny) run end to end, resume after a killed process, NaN stop."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from scsam_lite import config as C
from scsam_lite.errors import TrainingError
from scsam_lite.runs import load_checkpoint, read_results, save_checkpoint
from scsam_lite.trainer import lr_factor, train

TINY = {
    "train.iterations": "30",
    "train.val_every": "10",
    "data.labeled": "0.2",
    "train.deterministic": "true",
}


def tiny_config(**extra):
    return C.build_config("quick", {**TINY, **extra})


def test_lr_schedules():
    assert lr_factor("poly", 0, 100) == 1.0 and lr_factor("poly", 100, 100) == 0.0
    assert lr_factor("linear", 50, 100) == 0.5 and lr_factor("constant", 99, 100) == 1.0


@pytest.mark.slow
def test_a_run_writes_its_record(tmp_path):
    result = train(tiny_config(), tmp_path / "run", verbose=False, command="pytest")
    run = tmp_path / "run"
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["train"]["iterations"] == 30 and saved["command"] == "pytest"
    assert "labeled" in saved["label_split"]
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [10, 20, 30]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["unet"]) >= {"dice", "iou", "hd95", "asd"}
    assert 0.0 <= metrics["unet"]["dice"] <= 1.0
    assert result.metrics == metrics
    assert load_checkpoint(run / "checkpoints" / "best.pt")["step"] == result.best_step
    rows = read_results(tmp_path / "results.jsonl")
    assert len(rows) == 1 and rows[0]["config_hash"] == saved["config_hash"] and rows[0]["method"] == "unet"


@pytest.mark.slow
def test_training_learns_something(tmp_path):
    """More steps must beat a barely trained network (the trainer actually optimises)."""
    short = train(
        tiny_config(**{"train.iterations": "2", "train.val_every": "2"}), tmp_path / "a", verbose=False
    )
    longer = train(
        tiny_config(**{"train.iterations": "120", "train.val_every": "60"}), tmp_path / "b", verbose=False
    )
    assert longer.metrics["unet"]["dice"] > short.metrics["unet"]["dice"] + 0.1


@pytest.mark.slow
def test_nan_loss_stops_with_last_checkpoint_intact(tmp_path, monkeypatch):
    import scsam_lite.methods.supervised as sup

    real = sup.ce_dice_loss
    calls = {"n": 0}

    def poisoned(logits, target):
        calls["n"] += 1
        loss = real(logits, target)
        return loss * float("nan") if calls["n"] > 15 else loss

    monkeypatch.setattr(sup, "ce_dice_loss", poisoned)
    with pytest.raises(TrainingError, match="nan at step 15") as e:
        train(tiny_config(), tmp_path / "run", verbose=False)
    assert "new run" in e.value.fix  # resuming would be refused (other settings) or meet the NaN again
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 10
    assert all(
        torch.isfinite(v).all() for v in state["method"]["models"]["unet"].values() if v.is_floating_point()
    )


def _cli(*args):
    return [sys.executable, "-m", "scsam_lite", "train", "--preset", "quick", "--quiet", *args]


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_metrics(tmp_path):
    """Kill a real training process mid-run, resume it, and compare with an uninterrupted run (CPU, bit-identical)."""
    sets = [a for k, v in {**TINY, "train.iterations": "40"}.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "SCSAM_PROGRESS": "lines"}
    subprocess.run(_cli(*sets, "--out", str(tmp_path / "whole")), check=True, env=env, capture_output=True)

    victim = subprocess.Popen(
        _cli(*sets, "--out", str(tmp_path / "cut")),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    history = tmp_path / "cut" / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (history.exists() and history.read_text().count("\n") >= 2):
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "cut" / "metrics.json").exists(), "the run finished before it could be killed"
    # the time spent before the kill counts in the registry's wall time (here made large enough to see)
    state = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    state["elapsed_s"] += 1000.0
    save_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt", state)

    done = subprocess.run(
        _cli("--out", str(tmp_path / "cut"), "--resume"), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    cut = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert cut == whole
    steps = [json.loads(line)["step"] for line in history.read_text().splitlines()]
    assert steps == [10, 20, 30, 40]
    assert read_results(tmp_path / "results.jsonl")[-1]["wall_time_s"] > 1000.0


@pytest.mark.slow
def test_resume_with_other_settings_is_refused(tmp_path):
    train(tiny_config(**{"train.iterations": "20"}), tmp_path / "run", verbose=False, stop_after=10)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 10
    with pytest.raises(TrainingError, match="train.lr"):
        train(
            tiny_config(**{"train.iterations": "20", "train.lr": "0.5"}),
            tmp_path / "run",
            resume=True,
            verbose=False,
        )


@pytest.mark.slow
def test_evaluate_reproduces_the_runs_test_metrics(tmp_path, capsys):
    from scsam_lite.cli import main

    train(tiny_config(**{"train.iterations": "20"}), tmp_path / "run", verbose=False)
    assert main(["evaluate", str(tmp_path / "run"), "--split", "test"]) == 0
    again = json.loads((tmp_path / "run" / "metrics_test_best.json").read_text())
    assert again == json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "test metrics (best checkpoint)" in capsys.readouterr().out


@pytest.mark.slow
def test_a_finished_run_is_reused_not_retrained(tmp_path, capsys):
    cfg = C.build_config("quick", {"train.iterations": 4, "train.val_every": 2})
    first = train(cfg, tmp_path / "run", verbose=False)
    stamp = (tmp_path / "run" / "checkpoints" / "best.pt").stat().st_mtime_ns
    again = train(cfg, tmp_path / "run", resume=True, verbose=False)
    assert "already finished" in capsys.readouterr().out
    assert again.metrics == first.metrics
    assert (tmp_path / "run" / "checkpoints" / "best.pt").stat().st_mtime_ns == stamp
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1  # no duplicate registry row


@pytest.mark.slow
def test_volumes_are_also_scored_slice_by_slice(tmp_path):
    """PROMISE12-like data: metrics.json per volume (mm), metrics_slices.json per 2D slice (the reference's unit)."""
    from scsam_lite import config as C
    from scsam_lite.metrics import summarize
    from scsam_lite.runs import read_item_metrics, read_json

    cfg = C.build_config(
        "quick",
        {"data.dataset": "synthetic-prostate", "train.iterations": 2, "train.val_every": 2},
        method="unet",
    )
    res = train(cfg, tmp_path / "run", verbose=False)
    test = res.data.splits["test"]
    slices = read_item_metrics(tmp_path / "run" / "metrics_slices_items.csv")["unet"]
    volumes = read_item_metrics(tmp_path / "run" / "metrics_items.csv")["unet"]
    assert len(slices) == len(test) and set(slices) == {res.data.ids[i] for i in test}
    assert len(volumes) == len(res.data.split_cases("test")) < len(slices)
    summary = read_json(tmp_path / "run" / "metrics_slices.json")["unet"]
    assert summary["dice"] == pytest.approx(summarize(list(slices.values()))["dice"], abs=1e-4)
