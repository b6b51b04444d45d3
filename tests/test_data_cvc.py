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


def test_official_frames_tagged_black_is_zero_are_read_as_rgb(tmp_path):
    """CVC-ClinicDB's official Original/*.tif: 384 x 288, three 8-bit samples, PhotometricInterpretation
    BlackIsZero, uncompressed. Pillow cannot identify such a file; tifffile reads it (tested on exactly that
    header, written here)."""
    import tifffile

    folder = fakes.write_cvc(tmp_path, 3)
    image, mask = fakes.ellipse_pair(1, 384, 288)
    frame = folder / "Original" / "2.tif"
    tifffile.imwrite(frame, image, photometric="minisblack", planarconfig="contig", compression=None)
    Image.fromarray(mask).resize((384, 288)).save(folder / "Ground Truth" / "2.tif")
    page = tifffile.TiffFile(frame).pages[0]
    assert (page.photometric, page.samplesperpixel, page.bitspersample, page.compression) == (1, 3, 8, 1)
    with pytest.raises(OSError):  # Pillow: cannot identify image file (why TIFFs are read with tifffile)
        Image.open(frame).load()
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    got = d.images[d.ids.index("2")]
    expected = np.asarray(Image.fromarray(image).resize((32, 32), Image.BILINEAR))
    assert got.shape == (32, 32, 3) and np.abs(got.astype(int) - expected).max() <= 1


def test_sixteen_bit_images_are_scaled_not_saturated(tmp_path):
    folder = fakes.write_cvc(tmp_path, 3, fmt="png")
    image, _ = fakes.ellipse_pair(2, 48, 36, channels=1)
    grey = image if image.ndim == 2 else image[..., 0]
    Image.fromarray(grey.astype(np.uint16) * 257).save(folder / "Original" / "1.png")  # 16-bit PNG, "I;16"
    assert Image.open(folder / "Original" / "1.png").mode.startswith("I")
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    got = d.images[d.ids.index("1")].astype(float).mean()
    expected = np.asarray(Image.fromarray(grey).resize((32, 32), Image.BILINEAR)).astype(float).mean()
    assert got == pytest.approx(expected, abs=2)  # not ~255
