"""The command line answers bad input with one message and exit code 2, never a traceback."""

import json
import subprocess
import sys

import pytest

from scsam_lite.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "scsam_lite", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_help_documents_each_command():
    for cmd in ("train", "evaluate", "compare", "download", "datasets", "config"):
        out = run(cmd, "--help")
        assert out.returncode == 0 and "usage: scsam-lite" in out.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--dataset", "kvasir", "--out", "x"], "did you mean 'kvasir-seg'"),
        (["train", "--method", "unett", "--out", "x"], "did you mean 'unet'"),
        (["train", "--set", "train.lrr=1", "--out", "x"], "did you mean 'train.lr'"),
        (["train", "--resume"], "--out"),
        (["evaluate", "no-such-run"], "not a run directory"),
    ],
)
def test_bad_input_is_one_clear_error(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = subprocess.run([sys.executable, "-m", "scsam_lite", *args], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert expected in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.startswith("error: ")


def test_config_lists_and_prints(capsys):
    assert main(["config", "--list"]) == 0
    assert "train.lr" in capsys.readouterr().out
    assert main(["config", "--preset", "paper"]) == 0
    assert '"iterations": 40000' in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_scores_a_run_on_another_dataset_with_that_datasets_embeddings(
    tmp_path, monkeypatch, capsys
):
    """A run trained on one dataset, scored on CVC-ClinicDB (all frames): per-image files beside the run's own,
    named by the dataset and carrying each frame's video; SAM's stored embeddings are computed for the new items."""
    import csv

    from scsam_lite import config as C
    from scsam_lite import paths
    from scsam_lite.data import fakes
    from scsam_lite.trainer import train

    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setattr(paths, "on_kaggle", lambda: False)
    fakes.write_cvc_official(tmp_path / "data", sequences=29, frames=2)
    cache = tmp_path / "cache"
    cfg = C.build_config(
        "quick",
        {
            "train.method": "peft-sam",
            "train.iterations": 2,
            "train.val_every": 2,
            "data.cache_dir": str(cache),
            "generalist.peft": "none",
            "generalist.embedding_cache": True,
        },
    )
    train(cfg, tmp_path / "run", verbose=False)
    own = (tmp_path / "run" / "metrics_items.csv").read_text()
    args = [
        "evaluate",
        str(tmp_path / "run"),
        "--dataset",
        "cvc-clinicdb",
        "--data-root",
        str(tmp_path / "data"),
    ]
    assert main([*args, "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert "on cvc-clinicdb: 58 items" in out and "29 groups" in out and "thresholded at 127" in out
    with open(tmp_path / "run" / "metrics_cvc-clinicdb_all_best_items.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 58 and rows[0]["group"] == "seq01" and rows[-1]["group"] == "seq29"
    assert (tmp_path / "run" / "metrics_cvc-clinicdb_all_best.json").is_file()
    assert (tmp_path / "run" / "metrics_items.csv").read_text() == own  # the run's own scores are untouched
    metas = [json.loads(p.read_text()) for p in (cache / "embeddings").glob("*/meta.json")]
    assert sorted(m["dataset"] for m in metas) == ["cvc-clinicdb", "synthetic-polyp"]
    # its test split, compared with itself: groups are resampled
    assert main([*args, "--split", "test"]) == 0
    test_file = tmp_path / "run" / "metrics_cvc-clinicdb_test_best_items.csv"
    capsys.readouterr()
    assert main(["compare", str(test_file), str(test_file)]) == 0
    assert "cluster bootstrap over 3 groups" in capsys.readouterr().out
    # a thresholded copy through --set, and nothing else
    assert main([*args, "--set", "data.mask_threshold=200"]) == 0
    assert "every mask thresholded at 200" in capsys.readouterr().out
    assert main([*args, "--set", "train.lr=0.1"]) == 2
    assert "data.mask_threshold=N only" in capsys.readouterr().err


@pytest.mark.slow
def test_train_on_official_cvc_clinicdb_keeps_each_video_in_one_split(tmp_path, monkeypatch, capsys):
    """The official CVC-ClinicDB layout (29 videos, anti-aliased .tif masks) trained from the command line: its
    masks are thresholded, no video is split between train, val and test, and `compare` resamples videos."""
    from scsam_lite import config as C
    from scsam_lite import paths
    from scsam_lite.data import fakes
    from scsam_lite.runs import RunDir, read_item_groups
    from scsam_lite.trainer import run_data

    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setattr(paths, "on_kaggle", lambda: False)
    monkeypatch.setenv("SCSAM_CACHE_DIR", str(tmp_path / "cache"))
    fakes.write_cvc_official(tmp_path / "data", sequences=29, frames=2)
    run = tmp_path / "run"
    args = ["train", "--preset", "quick", "--method", "unet", "--dataset", "cvc-clinicdb"]
    args += ["--data-root", str(tmp_path / "data"), "--out", str(run)]
    for setting in ("train.iterations=2", "train.val_every=2", "data.resolution=32"):
        args += ["--set", setting]
    assert main(args) == 0
    assert "thresholded at 127" in capsys.readouterr().out
    data = run_data(C.config_from_dict(RunDir(run).read_config()["config"]))
    splits_of: dict[str, set[str]] = {}
    for split, index in data.splits.items():
        for i in index:
            splits_of.setdefault(data.groups[i], set()).add(split)
    assert len(splits_of) == 29 and all(len(s) == 1 for s in splits_of.values()), splits_of
    test = data.splits["test"]
    assert read_item_groups(run / "metrics_items.csv") == {data.ids[i]: data.groups[i] for i in test}
    items = str(run / "metrics_items.csv")
    assert main(["compare", items, items]) == 0
    assert f"cluster bootstrap over {len({data.groups[i] for i in test})} groups" in capsys.readouterr().out


def test_scored_data_root_flag_then_environment_then_the_runs_own(tmp_path, monkeypatch):
    from scsam_lite import config as C
    from scsam_lite import paths
    from scsam_lite.data import fakes
    from scsam_lite.errors import ConfigError, DataError
    from scsam_lite.trainer import run_data

    monkeypatch.setattr(paths, "on_kaggle", lambda: False)
    monkeypatch.setenv("SCSAM_CACHE_DIR", str(tmp_path / "cache"))
    fakes.write_cvc_official(tmp_path / "data", sequences=29, frames=1)
    fields = {"data.dataset": "cvc-clinicdb", "data.resolution": 32, "data.data_root": str(tmp_path / "gone")}
    cfg = C.build_config("quick", fields)
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    with pytest.raises(DataError, match="gone does not exist"):
        run_data(cfg)  # the root stored by the machine that trained it
    monkeypatch.setenv("SCSAM_DATA_ROOT", str(tmp_path / "data"))
    assert len(run_data(cfg)) == 29  # the environment wins over the stored root
    monkeypatch.setenv("SCSAM_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert len(run_data(cfg, data_root=str(tmp_path / "data"))) == 29  # and the flag over both
    with pytest.raises(ConfigError, match="1-channel ones"):
        run_data(cfg, "promise12")


def test_datasets_takes_a_data_root(tmp_path, monkeypatch, capsys):
    from scsam_lite import paths
    from scsam_lite.data import fakes

    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setattr(paths, "on_kaggle", lambda: False)
    folder = fakes.write_cvc(tmp_path / "data", 2)
    assert main(["datasets", "--data-root", str(tmp_path / "data")]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path / 'data'} (from --data-root)" in out and str(folder) in out


def test_a_runs_default_folder_is_named_by_the_dataset_its_preset_trains_on(tmp_path, monkeypatch):
    """`train --preset lab` trains Kvasir-SEG: its folder was once named synthetic-polyp-..."""
    import scsam_lite.trainer as T

    seen = {}

    def fake_train(cfg, out, **kwargs):
        seen["out"] = str(out)
        from scsam_lite.errors import ConfigError

        raise ConfigError("stopped by the test", "nothing to fix")  # before anything trains

    monkeypatch.setattr(T, "train", fake_train)
    monkeypatch.setenv("SCSAM_RUNS_DIR", str(tmp_path))
    assert main(["train", "--preset", "lab", "--method", "sc-sam", "--quiet"]) == 2
    assert "kvasir-seg-sc-sam-" in seen["out"]


def test_help_lists_every_preset(capsys):
    from scsam_lite import config as C

    for command in ("train", "notebooks", "sweep", "bench", "config"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out.replace("\n", " ")
        assert all(p in text for p in C.PRESETS), (command, text[:300])
