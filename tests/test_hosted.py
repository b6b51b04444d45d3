"""Colab and Kaggle behaviour without Colab or Kaggle: the platform is faked with its environment variables, Google
Drive with a fake ``google.colab`` module, ``/kaggle/working`` and ``/content/drive`` with folders in tmp_path."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
import torch

from scsam_lite import hosted, paths, setup
from scsam_lite.errors import ConfigError, ScsamError
from scsam_lite.runtime import Runtime

PLATFORM_VARS = ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE")


def _kaggle_by_env_only() -> bool:
    # the real check also looks for /kaggle/working on disk; tests decide the platform by environment alone
    return bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE"))


@pytest.fixture(autouse=True)
def local_machine(monkeypatch, tmp_path):
    for var in (*PLATFORM_VARS, "SCSAM_ALLOW_CPU", "SCSAM_CHECKPOINT_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(paths, "on_kaggle", _kaggle_by_env_only)
    monkeypatch.setattr(hosted, "KAGGLE_WORKING", tmp_path / "kaggle" / "working")
    monkeypatch.setattr(hosted, "DRIVE_MOUNT", tmp_path / "content" / "drive")


def on(platform: str, monkeypatch) -> None:
    if platform == "colab":
        monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-test")
    elif platform == "kaggle":
        monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")


def runtime_on(device: str, platform: str = "local") -> Runtime:
    return Runtime(
        platform=platform,
        device=torch.device(device),
        amp_dtype=None,
        grad_scaler=False,
        seed=0,
        deterministic=False,
    )


@pytest.fixture
def fake_colab(monkeypatch):
    """A ``google.colab.drive`` whose ``mount`` records its calls and creates MyDrive like the real one."""
    calls: list[str] = []

    def mount(mountpoint: str, *args, **kwargs) -> None:
        calls.append(mountpoint)
        (Path(mountpoint) / "MyDrive").mkdir(parents=True)

    drive = types.ModuleType("google.colab.drive")
    drive.mount = mount
    colab = types.ModuleType("google.colab")
    colab.drive = drive
    google = types.ModuleType("google")
    google.colab = colab
    for name, module in (("google", google), ("google.colab", colab), ("google.colab.drive", drive)):
        monkeypatch.setitem(sys.modules, name, module)
    on("colab", monkeypatch)
    return calls


# ---------------------------------------------------------------- the GPU hint


@pytest.mark.parametrize(
    "platform, words",
    [
        ("colab", ["Runtime > Change runtime type", "T4 GPU"]),
        ("kaggle", ["Settings > Accelerator", "GPU T4 x2", "phone"]),
        ("local", ["no CUDA GPU", "CPU"]),
    ],
)
def test_gpu_hint_names_the_menu(platform, words):
    hint = hosted.gpu_hint(platform)
    assert "\n" not in hint
    for word in words:
        assert word in hint


def test_gpu_hint_unknown_platform():
    with pytest.raises(ConfigError, match="platform"):
        hosted.gpu_hint("sagemaker")


# ---------------------------------------------------------------- the profile


@pytest.mark.parametrize("profile", ["classroom", "paper"])
def test_gpu_profile_on_cpu_falls_back_to_quick_with_one_line(profile, capsys):
    assert hosted.profile_for(profile, runtime_on("cpu", "colab")) == "quick"
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert "quick profile on the CPU" in out and profile in out
    assert hosted.gpu_hint("colab") not in out  # setup() already printed it on Colab: not twice
    assert hosted.profile_for(profile, runtime_on("cpu", "local")) == "quick"
    assert hosted.gpu_hint("local") in capsys.readouterr().out


def test_gpu_keeps_the_profile_silently(capsys):
    assert hosted.profile_for("classroom", runtime_on("cuda", "kaggle")) == "classroom"
    assert hosted.profile_for("quick", runtime_on("cpu")) == "quick"
    assert hosted.profile_for("lab", runtime_on("cpu")) == "lab"  # made for a CPU
    assert capsys.readouterr().out == ""


def test_allow_cpu_keeps_the_profile_and_warns(monkeypatch, capsys):
    monkeypatch.setenv("SCSAM_ALLOW_CPU", "1")
    assert hosted.profile_for("classroom", runtime_on("cpu")) == "classroom"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "slow" in out
    monkeypatch.setenv("SCSAM_ALLOW_CPU", "0")
    assert hosted.profile_for("classroom", runtime_on("cpu")) == "quick"


def test_unknown_profile_is_a_config_error():
    with pytest.raises(ConfigError, match="classroom") as e:
        hosted.profile_for("clasroom", runtime_on("cuda"))
    assert e.value.__cause__ is None


# ---------------------------------------------------------------- where runs go


def test_local_runs_unchanged_and_quiet(capsys):
    assert hosted.persistent_runs_dir("runs/02") == "runs/02"
    assert hosted.persistent_runs_dir("runs/02", "") == "runs/02"
    assert capsys.readouterr().out == ""
    assert "SCSAM_CHECKPOINT_DIR" not in os.environ


def test_drive_outside_colab_is_ignored_with_one_line(capsys):
    assert hosted.persistent_runs_dir("runs/02", "scsam-lite") == "runs/02"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "Colab only" in out


def test_kaggle_runs_go_to_working(monkeypatch, capsys):
    on("kaggle", monkeypatch)
    out = hosted.persistent_runs_dir("runs/04")
    assert Path(out) == hosted.KAGGLE_WORKING / "runs" / "04"
    assert str(out) in capsys.readouterr().out
    assert hosted.persistent_runs_dir("/somewhere/runs") == "/somewhere/runs"


def test_kaggle_ignores_drive(monkeypatch, capsys):
    on("kaggle", monkeypatch)
    out = hosted.persistent_runs_dir("runs/04", "scsam-lite")
    assert Path(out) == hosted.KAGGLE_WORKING / "runs" / "04"
    assert "Colab only" in capsys.readouterr().out


def test_colab_drive_mounts_once_and_keeps_checkpoints(fake_colab, capsys):
    out = hosted.persistent_runs_dir("runs/04", "scsam-lite")
    folder = hosted.DRIVE_MOUNT / "MyDrive" / "scsam-lite"
    assert Path(out) == folder / "runs" / "04"
    assert fake_colab == [str(hosted.DRIVE_MOUNT)]
    assert folder.is_dir()
    assert os.environ["SCSAM_CHECKPOINT_DIR"] == str(folder / "checkpoints")
    assert paths.checkpoint_dir() == folder / "checkpoints"
    assert "Google Drive" in capsys.readouterr().out
    # already mounted (a re-run of the cell): no second mount, same answer
    assert hosted.persistent_runs_dir("runs/04", "scsam-lite") == out
    assert fake_colab == [str(hosted.DRIVE_MOUNT)]


def test_colab_drive_keeps_a_checkpoint_dir_already_set(fake_colab, monkeypatch, tmp_path):
    monkeypatch.setenv("SCSAM_CHECKPOINT_DIR", str(tmp_path / "mine"))
    hosted.persistent_runs_dir("runs/03", "scsam-lite")
    assert os.environ["SCSAM_CHECKPOINT_DIR"] == str(tmp_path / "mine")


@pytest.mark.parametrize("form", ["MyDrive/courses/sc", "absolute"])
def test_colab_drive_accepts_mydrive_paths(fake_colab, form):
    folder = hosted.DRIVE_MOUNT / "MyDrive" / "courses" / "sc"
    drive = str(folder) if form == "absolute" else form
    assert Path(hosted.persistent_runs_dir("runs/02", drive)) == folder / "runs" / "02"


def test_colab_drive_outside_the_mount_is_a_config_error(fake_colab):
    with pytest.raises(ConfigError, match="not a Google Drive folder") as e:
        hosted.persistent_runs_dir("runs/02", "/tmp/elsewhere")
    assert e.value.fix and fake_colab == []


def test_colab_without_drive_says_how_to_keep_runs(fake_colab, capsys):
    assert hosted.persistent_runs_dir("runs/02") == "runs/02"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "DRIVE" in out and "disconnect" in out
    assert fake_colab == []


def test_mount_failure_is_one_scsam_error(fake_colab, monkeypatch, capsys):
    def refuse(mountpoint, *args, **kwargs):
        raise ValueError("mount failed")

    monkeypatch.setattr(sys.modules["google.colab.drive"], "mount", refuse)
    with pytest.raises(ScsamError, match="could not mount Google Drive") as e:
        hosted.persistent_runs_dir("runs/02", "scsam-lite")
    assert "mount failed" in str(e.value) and "allow access" in e.value.fix
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert "SCSAM_CHECKPOINT_DIR" not in os.environ


def test_missing_google_colab_module_is_the_same_error(monkeypatch):
    on("colab", monkeypatch)
    monkeypatch.setitem(sys.modules, "google.colab", None)  # importing it now raises ImportError
    with pytest.raises(ScsamError, match="could not mount Google Drive"):
        hosted.persistent_runs_dir("runs/02", "scsam-lite")


# ---------------------------------------------------------------- setup()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("platform", ["colab", "kaggle"])
def test_setup_prints_the_gpu_hint_on_a_hosted_cpu(platform, monkeypatch, capsys):
    on(platform, monkeypatch)
    rt = setup(seed=0)
    assert rt.platform == platform
    assert hosted.gpu_hint(platform) in capsys.readouterr().out
    setup(seed=0, verbose=False)
    assert capsys.readouterr().out == ""


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_setup_prints_no_hint_locally(capsys):
    rt = setup(seed=0)
    out = capsys.readouterr().out
    assert rt.platform == "local" and "platform: local" in out
    assert not any(hosted.gpu_hint(p) in out for p in ("colab", "kaggle", "local"))


# ---------------------------------------------------------------- the notebook's data


def _kvasir_copy(root: Path) -> Path:
    for sub in ("images", "masks"):
        (root / "kvasir-seg" / "Kvasir-SEG" / sub).mkdir(parents=True)
        (root / "kvasir-seg" / "Kvasir-SEG" / sub / "a.jpg").write_bytes(b"x")
    return root


def test_notebook_data_keeps_synthetic_data_and_finds_a_real_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setattr(
        "scsam_lite.download.core.download", lambda *a, **k: pytest.fail("no download needed")
    )
    quick = hosted.notebook_data("quick")
    assert (quick.profile, quick.dataset) == ("quick", "synthetic-polyp")
    lab = hosted.notebook_data("lab", None, _kvasir_copy(tmp_path))
    assert (lab.profile, lab.dataset, lab.data_root) == ("lab", "kvasir-seg", str(tmp_path))
    assert "found in" in capsys.readouterr().out
    monkeypatch.setenv("SCSAM_DATA_ROOT", str(tmp_path))  # the environment variable works as well
    assert hosted.notebook_data("lab").profile == "lab"


def test_notebook_data_downloads_when_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    asked = []

    def fake_download(name, root, **kwargs):
        asked.append((name, Path(root)))
        return _kvasir_copy(Path(root)) / "kvasir-seg" / "Kvasir-SEG"

    monkeypatch.setattr("scsam_lite.download.core.download", fake_download)
    got = hosted.notebook_data("lab", None, tmp_path / "data", verbose=False)
    assert asked == [("kvasir-seg", tmp_path / "data")] and got.profile == "lab"
    assert got.data_root == str(tmp_path / "data") and "downloaded" in got.source


def test_notebook_data_offline_warns_once_and_falls_back_to_quick(tmp_path, monkeypatch):
    from scsam_lite.errors import DownloadError

    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)

    def offline(*a, **k):
        raise DownloadError("could not reach datasets.simula.no", "connect to the internet")

    monkeypatch.setattr("scsam_lite.download.core.download", offline)
    with pytest.warns(UserWarning) as caught:
        got = hosted.notebook_data("lab", None, tmp_path)
    assert len(caught) == 1
    text = str(caught[0].message)
    assert "could not reach" in text and "quick profile" in text and "SCSAM_DATA_ROOT" in text
    assert (got.profile, got.dataset, got.data_root) == ("quick", "synthetic-polyp", None)
    assert (
        hosted.notebook_data("lab", "kvasir-seg", tmp_path, download=False, verbose=False).profile == "quick"
    )
