"""Kvasir-SEG: fake official and Kaggle trees, the Medico 2020 split, the cache, bad input, and the real copy."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scsam_lite import paths
from scsam_lite.data import fakes, images2d, load_dataset
from scsam_lite.data.partition import hashed_holdout, shipped_ids
from scsam_lite.errors import ConfigError, DataError

TRAIN_IDS = shipped_ids("kvasir_medico2020_train.txt")
TEST_IDS = shipped_ids("kvasir_medico2020_val.txt")
IDS = TRAIN_IDS[:20] + TEST_IDS[:4]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setenv("SCSAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "on_kaggle", lambda: False)


def _load(root: Path, **kw):
    return load_dataset("kvasir-seg", root=root, resolution=32, **kw)


def test_shipped_split_lists():
    assert len(TRAIN_IDS) == 880 and len(TEST_IDS) == 120 and not set(TRAIN_IDS) & set(TEST_IDS)


@pytest.mark.parametrize("kaggle", [False, True])
def test_fake_tree(tmp_path, kaggle):
    fakes.write_kvasir(tmp_path / "data", IDS, kaggle=kaggle)
    d = _load(tmp_path / "data")
    assert d.images.shape == (24, 32, 32, 3) and d.masks.shape == (24, 32, 32)
    assert set(np.unique(d.masks)) == {0, 1}
    test = {d.ids[i] for i in d.splits["test"]}
    assert test == set(TEST_IDS[:4])
    assert len(d.splits["val"]) == 2 and len(d.splits["train"]) == 18  # 10% of the 20 non-test images
    assert d.info["cache"] == "built" and "Medico 2020" in d.info["split_rule"]
    # the mask lies where the bright ellipse is
    img = d.images.astype(float).mean(-1)
    assert img[d.masks == 1].mean() > img[d.masks == 0].mean() + 60


def test_val_fraction_is_fixed_by_id(tmp_path):
    fakes.write_kvasir(tmp_path, IDS)
    a = _load(tmp_path, val_fraction=0.25)
    assert len(a.splits["val"]) == 5
    val = {a.ids[i] for i in a.splits["val"]}
    # the choice depends on the ids only, not on their order or the seed
    pool = [i for i in IDS if i not in TEST_IDS]
    chosen = hashed_holdout(pool[::-1], 0.25, "kvasir-val:")
    assert {i for i, c in zip(pool[::-1], chosen, strict=True) if c} == val
    assert {a.ids[i] for i in _load(tmp_path, val_fraction=0.25, seed=7).splits["val"]} == val
    with pytest.raises(ConfigError):
        _load(tmp_path, val_fraction=1.2)


def test_second_load_does_not_decode(tmp_path, monkeypatch):
    fakes.write_kvasir(tmp_path, IDS)
    first = _load(tmp_path)

    def fail(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images2d, "read_pair", fail)
    second = _load(tmp_path)
    assert second.info["cache"] == "hit" and np.array_equal(first.images, second.images)
    # a changed file makes the cache stale: it is decoded again
    some = next((tmp_path / "kvasir-seg" / "Kvasir-SEG" / "images").iterdir())
    os.utime(some, ns=(10**9, 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        _load(tmp_path)


def test_random_split_for_unofficial_ids(tmp_path):
    fakes.write_kvasir(tmp_path, ["mine1", "mine2", "mine3"] + IDS[:5])
    with pytest.raises(DataError, match="not in the official") as err:
        _load(tmp_path)
    assert "split='random'" in err.value.fix and "mine1" in str(err.value)
    d = _load(tmp_path, split="random")
    assert sum(len(v) for v in d.splits.values()) == 8


def test_image_without_mask_and_mask_without_image(tmp_path):
    folder = fakes.write_kvasir(tmp_path, IDS)
    for name in IDS[:7]:
        (folder / "masks" / f"{name}.jpg").unlink()
    (folder / "masks" / "stray.jpg").write_bytes((folder / "masks" / f"{IDS[9]}.jpg").read_bytes())
    with pytest.raises(DataError) as err:
        _load(tmp_path)
    msg = str(err.value)
    assert "7 image(s)" in msg and IDS[0] in msg and "and 2 more" in msg
    assert "1 mask(s)" in msg and "stray" in msg


def test_corrupt_image_is_named(tmp_path):
    folder = fakes.write_kvasir(tmp_path, IDS)
    bad = folder / "images" / f"{IDS[3]}.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated download
    with pytest.raises(DataError, match=IDS[3]) as err:
        _load(tmp_path)
    assert "re-download" in err.value.fix
    assert not (tmp_path / "cache" / "kvasir-seg" / "32px").exists()


def test_mask_of_the_wrong_size(tmp_path):
    folder = fakes.write_kvasir(tmp_path, IDS)
    Image.new("RGB", (10, 10)).save(folder / "masks" / f"{IDS[1]}.jpg")
    with pytest.raises(DataError, match=f"mask {IDS[1]}.jpg is 10x10 but its image"):
        _load(tmp_path)


def test_jpeg_mask_that_is_not_bimodal(tmp_path):
    folder = fakes.write_kvasir(tmp_path, IDS)
    ramp = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (32, 1))
    Image.fromarray(ramp).save(folder / "masks" / f"{IDS[2]}.jpg")
    with pytest.raises(DataError, match="not black-and-white"):
        _load(tmp_path)


def test_cache_of_another_resolution(tmp_path):
    fakes.write_kvasir(tmp_path, IDS)
    _load(tmp_path)
    os.replace(tmp_path / "cache" / "kvasir-seg" / "32px", tmp_path / "cache" / "kvasir-seg" / "64px")
    with pytest.raises(DataError, match="32 px arrays, not the 64 px"):
        load_dataset("kvasir-seg", root=tmp_path, resolution=64)


def test_missing_root(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="needs a data root") as err:
        load_dataset("kvasir-seg")
    assert "scsam-lite download kvasir-seg" in err.value.fix
    monkeypatch.setenv("SCSAM_DATA_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("kvasir-seg")


REAL = os.environ.get("SCSAM_TEST_KVASIR")


@pytest.mark.skipif(not REAL, reason="set SCSAM_TEST_KVASIR to a Kvasir-SEG copy to run")
def test_real_copy():
    d = load_dataset("kvasir-seg", root=REAL, resolution=64)
    assert len(d) == 1000 and len(d.splits["test"]) == 120
    assert len(d.splits["train"]) + len(d.splits["val"]) == 880 and len(d.splits["val"]) == 88
    assert set(np.unique(d.masks)) == {0, 1}
    assert 0.05 < d.masks.mean() < 0.3  # polyps cover about 15% of a frame
    assert {d.ids[i] for i in d.splits["test"]} == set(TEST_IDS)
    again = load_dataset("kvasir-seg", root=REAL, resolution=64)
    assert again.info["cache"] == "hit"


def test_jpeg_masks_saved_as_0_1_are_read_and_all_empty_masks_are_an_error(tmp_path, monkeypatch):
    """0/1 masks in JPEG were read as empty (threshold 127) and scored a perfect Dice: any two-level mask works,
    and a dataset whose masks are all empty is an error naming the folder."""
    from PIL import Image

    from scsam_lite.data import fakes, load_dataset
    from scsam_lite.errors import DataError

    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setenv("SCSAM_CACHE_DIR", str(tmp_path / "cache"))
    ids = [f"img{i}" for i in range(4)]
    folder = fakes.write_kvasir(tmp_path, ids)
    for i in ids:  # the same masks, saved 0/1
        m = np.asarray(Image.open(folder / "masks" / f"{i}.jpg").convert("L"))
        Image.fromarray((m > 127).astype(np.uint8)).save(folder / "masks" / f"{i}.jpg", quality=90)
    d = load_dataset("kvasir-seg", root=tmp_path, resolution=32, split="random")
    assert d.masks.any(axis=(1, 2)).all()
    for i in ids:  # now truly empty
        Image.fromarray(np.zeros((32, 40), np.uint8)).save(folder / "masks" / f"{i}.jpg")
    with pytest.raises(DataError, match="every mask read from .* is empty"):
        load_dataset("kvasir-seg", root=tmp_path, resolution=32, split="random")


def test_a_mask_whose_foreground_vanishes_in_thresholding_is_an_error():
    from scsam_lite.data.preprocess import binarize_mask

    mask = np.zeros((100, 100), np.uint8)
    mask[10:20, 10:20] = 110  # a grey foreground on 1% of the pixels, plus one bright compression speck
    mask[50, 50] = 200
    with pytest.raises(DataError, match="vanished") as err:
        binarize_mask(mask, "m.jpg", lossy=True)
    assert "mask_threshold" in err.value.fix
    assert binarize_mask(mask, "m.jpg", lossy=True, threshold=50)[15, 15] == 1
    dark = (mask > 0).astype(np.uint8)  # 0/1
    assert binarize_mask(dark, "m.jpg", lossy=True)[10:20, 10:20].all()
