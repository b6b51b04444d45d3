"""Finding a dataset copy on disk, and the errors when there is none."""

from __future__ import annotations

import pytest

from scsam_lite import paths
from scsam_lite.data import discover, fakes
from scsam_lite.data.discover import find_existing, locate
from scsam_lite.errors import ConfigError, DataError

HINT = "scsam-lite download kvasir-seg --root DIR"


@pytest.fixture(autouse=True)
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setattr(paths, "on_kaggle", lambda: False)


def test_official_layout_below_root(tmp_path):
    folder = fakes.write_kvasir(tmp_path, ["a", "b"])
    assert find_existing("kvasir-seg", tmp_path) == folder  # root/kvasir-seg/Kvasir-SEG
    assert find_existing("kvasir-seg", tmp_path / "kvasir-seg") == folder
    assert find_existing("kvasir-seg", folder) == folder  # root is the dataset folder itself


def test_kaggle_nesting_and_env_root(tmp_path, monkeypatch):
    folder = fakes.write_kvasir(tmp_path, ["a"], kaggle=True)
    assert folder.parent.name == "Kvasir-SEG" and folder.name == "Kvasir-SEG"
    monkeypatch.setenv("SCSAM_DATA_ROOT", str(tmp_path))
    assert find_existing("kvasir-seg", None) == folder


def test_kaggle_input(tmp_path, monkeypatch):
    kaggle_input = tmp_path / "input"
    folder = fakes.write_cvc(kaggle_input / "cvcclinicdb", 3, fmt="png")
    monkeypatch.setattr(discover, "KAGGLE_INPUT", kaggle_input)
    assert find_existing("cvc-clinicdb", None) is None
    monkeypatch.setattr(paths, "on_kaggle", lambda: True)
    assert find_existing("cvc-clinicdb", None) == folder
    assert find_existing("cvc-clinicdb", tmp_path / "elsewhere") == folder


def test_prefers_the_named_copy_and_tiff(tmp_path):
    other = tmp_path / "my-polyps"
    (other / "images").mkdir(parents=True)
    (other / "masks").mkdir()
    for d in ("images", "masks"):
        (other / d / "x.png").write_bytes(b"")
    deeper = fakes.write_kvasir(tmp_path / "downloads", ["a"])  # deeper, but its path names the dataset
    assert find_existing("kvasir-seg", tmp_path) == deeper
    folder = fakes.write_kvasir(tmp_path, ["a"])
    assert find_existing("kvasir-seg", tmp_path) == folder  # root/kvasir-seg is looked at first
    tif = fakes.write_cvc(tmp_path / "both", 2, fmt="tif")
    fakes.write_cvc(tmp_path / "both", 2, fmt="png")  # PNG/ beside Original/: same dataset, the TIFFs win
    assert find_existing("cvc-clinicdb", tmp_path / "both") == tif


def test_promise12_in_parts(tmp_path):
    root = tmp_path / "PROMISE12"
    for part, case in (("TrainingData_Part1", "Case00"), ("TrainingData_Part2", "Case01")):
        (root / part).mkdir(parents=True)
        (root / part / f"{case}.mhd").write_text("")
        (root / part / f"{case}_segmentation.mhd").write_text("")
    assert find_existing("promise12", tmp_path) == root


def test_missing_copy_returns_none(tmp_path):
    assert find_existing("kvasir-seg", tmp_path) is None
    assert find_existing("kvasir-seg", tmp_path / "nope") is None
    assert find_existing("kvasir-seg", None) is None
    with pytest.raises(ConfigError, match="did you mean"):
        find_existing("kvasir", tmp_path)


def test_locate_errors(tmp_path):
    with pytest.raises(DataError, match="needs a data root") as err:
        locate("kvasir-seg", None, HINT)
    assert (
        "SCSAM_DATA_ROOT" in err.value.fix and "--data-root" in err.value.fix and "download" in err.value.fix
    )
    with pytest.raises(DataError, match="does not exist"):
        locate("kvasir-seg", tmp_path / "missing", HINT)
    with pytest.raises(DataError, match="is empty") as err:
        locate("kvasir-seg", tmp_path, HINT)
    assert f"--root {tmp_path}" in err.value.fix
    (tmp_path / "kvasir-seg" / "pictures").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError) as err:
        locate("kvasir-seg", tmp_path, HINT)
    msg = str(err.value)
    assert "expected Kvasir-SEG/images/*.jpg" in msg and "notes.txt" in msg and "pictures/" in msg
