"""The dataset registry and load_dataset's argument checks."""

from __future__ import annotations

import pytest

from scsam_lite import paths
from scsam_lite.data import DATASETS, DatasetSpec, load_dataset
from scsam_lite.errors import ConfigError, DataError


def test_registered_datasets():
    assert DATASETS.names() == [
        "cvc-clinicdb",
        "kvasir-seg",
        "promise12",
        "synthetic-polyp",
        "synthetic-prostate",
    ]
    for name in DATASETS:
        spec = DATASETS.get(name)
        assert isinstance(spec, DatasetSpec) and spec.name == name and spec.kind in ("2d", "volume")
        assert spec.description and spec.citation and callable(spec.loader)
        assert spec.needs_root == (not name.startswith("synthetic"))
        if spec.needs_root:
            assert spec.download_hint == f"scsam-lite download {name} --root DIR"
    assert DATASETS.get("promise12").options() == ["val_cases", "test_cases"]


def test_unknown_name_suggests():
    with pytest.raises(ConfigError, match="unknown dataset 'kvasir'") as err:
        load_dataset("kvasir")
    assert "kvasir-seg" in err.value.fix


def test_bad_resolution_and_option():
    for bad in (50, 0, 16, "64", 64.0):
        with pytest.raises(ConfigError, match="resolution"):
            load_dataset("synthetic-polyp", resolution=bad)
    with pytest.raises(ConfigError, match="no option 'n_image'") as err:
        load_dataset("synthetic-polyp", n_image=10)
    assert "n_images" in err.value.fix


def test_synthetic_ignores_root(tmp_path):
    d = load_dataset("synthetic-prostate", root=tmp_path / "nothing", n_cases=8)
    assert d.name == "synthetic-prostate" and len(set(d.cases)) == 8
    assert {d.cases[i] for i in d.splits["val"]} and {d.cases[i] for i in d.splits["test"]}


@pytest.mark.parametrize("name", ["kvasir-seg", "cvc-clinicdb", "promise12"])
def test_real_datasets_need_a_root(name, monkeypatch, tmp_path):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setattr(paths, "on_kaggle", lambda: False)
    with pytest.raises(DataError, match="needs a data root") as err:
        load_dataset(name, cache_dir=tmp_path)
    assert f"scsam-lite download {name} --root DIR" in err.value.fix


def test_segdata_from_arrays_builds_a_dataset_and_rejects_mismatches():
    import numpy as np

    from scsam_lite.data import SegData
    from scsam_lite.errors import DataError

    images = np.zeros((3, 8, 8), np.uint8)
    masks = np.zeros((3, 8, 8), np.uint8)
    masks[0, 2:4, 2:4] = 255
    data = SegData.from_arrays(images, masks)
    assert data.images.shape == (3, 8, 8, 1) and data.resolution == 8 and data.channels == 1
    assert set(np.unique(data.masks)) == {0, 1} and data.masks.sum() == 4
    assert list(data.splits["train"]) == [0, 1, 2] and len(data.ids) == 3 and data.cases == data.ids
    with pytest.raises(DataError, match="do not match"):
        SegData.from_arrays(images, masks[:, :4])
    with pytest.raises(DataError, match="float32"):
        SegData.from_arrays(images.astype(np.float32), masks)
