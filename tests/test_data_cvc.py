"""CVC-ClinicDB: TIFF and PNG layouts, frame order, contiguous-block split, mask checks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scsam_lite import paths
from scsam_lite.data import fakes, load_dataset
from scsam_lite.errors import DataError


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setenv("SCSAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "on_kaggle", lambda: False)


@pytest.mark.parametrize("fmt", ["tif", "png"])
def test_fake_tree(tmp_path, fmt):
    fakes.write_cvc(tmp_path, 30, fmt=fmt)
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    assert d.ids[:11] == [str(k) for k in range(1, 12)]  # numeric frame order, not "1, 10, 11, 2"
    assert d.images.shape == (30, 32, 32, 3) and set(np.unique(d.masks)) == {0, 1}
    img = d.images.astype(float).mean(-1)
    assert img[d.masks == 1].mean() > img[d.masks == 0].mean() + 60


def test_split_is_contiguous_blocks(tmp_path):
    fakes.write_cvc(tmp_path, 40)
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    train, val, test = (d.splits[k] for k in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (32, 4, 4)
    assert np.array_equal(np.concatenate([train, val, test]), np.arange(40))
    assert [d.ids[i] for i in test] == ["37", "38", "39", "40"]
    assert "contiguous" in d.info["split_rule"]
    d2 = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32, val_fraction=0.2, test_fraction=0.25)
    assert (len(d2.splits["val"]), len(d2.splits["test"])) == (8, 10)


def test_612_frames_give_490_61_61():
    from scsam_lite.data.partition import contiguous_blocks

    blocks = contiguous_blocks(612, 0.1, 0.1)
    assert [len(blocks[k]) for k in ("train", "val", "test")] == [490, 61, 61]


def test_lossless_mask_with_many_levels(tmp_path):
    folder = fakes.write_cvc(tmp_path, 5)
    _, mask = fakes.ellipse_pair(3, 48, 36)
    grey = mask.copy()
    grey[0, :4] = [10, 20, 30, 40]
    Image.fromarray(grey).save(folder / "Ground Truth" / "3.tif")
    with pytest.raises(DataError, match="3.tif has 6 grey levels") as err:
        load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    assert "mask_threshold" in err.value.fix
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32, mask_threshold=127)
    assert set(np.unique(d.masks)) == {0, 1}


def test_frame_without_mask(tmp_path):
    folder = fakes.write_cvc(tmp_path, 5)
    (folder / "Ground Truth" / "4.tif").unlink()
    with pytest.raises(DataError, match="1 image\\(s\\) .* have no mask: 4"):
        load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)


def test_wrong_layout(tmp_path):
    (tmp_path / "cvc-clinicdb" / "Original").mkdir(parents=True)
    (tmp_path / "cvc-clinicdb" / "Original" / "1.tif").write_bytes(b"x")
    with pytest.raises(DataError, match="expected Original/\\*.tif") as err:
        load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    assert "Original/" in str(err.value)
