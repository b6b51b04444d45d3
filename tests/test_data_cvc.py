"""CVC-ClinicDB: TIFF and PNG layouts, frame order, video sequences as groups, whole-sequence split (and the leaky
frame splits), anti-aliased masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from scsam_lite import config as C
from scsam_lite import paths
from scsam_lite.data import cvc, fakes, load_dataset
from scsam_lite.data.partition import whole_groups
from scsam_lite.errors import ConfigError, DataError


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


def test_the_leaky_contiguous_split_is_an_option(tmp_path):
    fakes.write_cvc(tmp_path, 40)
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32, split="contiguous")
    train, val, test = (d.splits[k] for k in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (32, 4, 4)
    assert np.array_equal(np.concatenate([train, val, test]), np.arange(40))
    assert [d.ids[i] for i in test] == ["37", "38", "39", "40"]
    assert "contiguous" in d.info["split_rule"] and "leaky" in d.info["split_rule"]
    d2 = load_dataset(
        "cvc-clinicdb",
        root=tmp_path,
        resolution=32,
        val_fraction=0.2,
        test_fraction=0.25,
        split="contiguous",
    )
    assert (len(d2.splits["val"]), len(d2.splits["test"])) == (8, 10)
    rnd = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32, split="random")
    assert [len(rnd.splits[k]) for k in ("train", "val", "test")] == [32, 4, 4] and "leaky" in rnd.info[
        "split_rule"
    ]
    again = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32, split="random")
    assert all(np.array_equal(rnd.splits[k], again.splits[k]) for k in rnd.splits)
    with pytest.raises(ConfigError, match="unknown CVC-ClinicDB split"):
        load_dataset("cvc-clinicdb", root=tmp_path, resolution=32, split="frames")


def test_612_frames_give_490_61_61():
    from scsam_lite.data.partition import contiguous_blocks

    blocks = contiguous_blocks(612, 0.1, 0.1)
    assert [len(blocks[k]) for k in ("train", "val", "test")] == [490, 61, 61]


def test_masks_with_many_grey_levels_are_thresholded_at_127_and_the_summary_says_so(tmp_path):
    folder = fakes.write_cvc(tmp_path, 5)
    _, mask = fakes.ellipse_pair(3, 48, 36)
    grey = mask.copy()
    grey[0, :4] = [10, 20, 30, 200]  # faint noise, and one bright speck that the threshold keeps
    Image.fromarray(grey).save(folder / "Ground Truth" / "3.tif")
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=48)
    assert set(np.unique(d.masks)) == {0, 1}
    assert "1 of 5 masks had more than two grey levels" in d.info["masks"] and "127" in d.summary()
    assert (
        load_dataset("cvc-clinicdb", root=tmp_path, resolution=48).info["cache"] == "hit"
    )  # the note is kept
    # an explicit threshold applies to every mask, and says so
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=48, mask_threshold=250)
    assert d.info["masks"] == "every mask thresholded at 250 (data.mask_threshold)"
    assert set(np.unique(d.masks)) == {0, 1}
    # other datasets reject such masks, naming the exact command
    from scsam_lite.data.preprocess import binarize_mask

    with pytest.raises(DataError, match="m.png has 6 grey levels") as err:
        binarize_mask(grey, "m.png", lossy=False)
    assert "--set data.mask_threshold=127" in err.value.fix


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


def test_official_layout_keeps_each_video_sequence_in_one_split(tmp_path):
    """The official layout with a README video table (29 sequences, 3 frames each here) and anti-aliased masks:
    every frame carries its sequence, no sequence is in two splits, the anti-aliased masks load by default."""
    folder = fakes.write_cvc_official(tmp_path, sequences=29, frames=3)
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    assert len(d) == 87 and d.groups[:4] == ["seq01", "seq01", "seq01", "seq02"] and d.groups[-1] == "seq29"
    assert d.info["groups"] == "video sequences from the video table of README.txt"
    seqs = {k: {d.groups[i] for i in v} for k, v in d.splits.items()}
    assert not (seqs["train"] & seqs["val"] or seqs["train"] & seqs["test"] or seqs["val"] & seqs["test"])
    assert seqs["val"] and seqs["test"] and len(seqs["train"] | seqs["val"] | seqs["test"]) == 29
    assert sum(len(v) for v in d.splits.values()) == 87
    assert "whole video sequences" in d.info["split_rule"] and "29 groups" in d.summary()
    # the anti-aliased masks (many grey levels, faint noise) were thresholded, into the polyp's shape
    assert len(np.unique(np.asarray(Image.open(folder / "Ground Truth" / "4.tif")))) > 10
    assert "21 of 87 masks had more than two grey levels" in d.summary()
    _, clean = fakes.ellipse_pair(4, 32, 24)
    expected = np.asarray(Image.fromarray(clean).resize((32, 32), Image.BILINEAR)) >= 128
    got = d.masks[d.ids.index("4")].astype(bool)
    assert (got & expected).sum() / (got | expected).sum() > 0.85
    # the same split on every load; a seed does not change it
    again = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32, seed=5)
    assert all(np.array_equal(again.splits[k], d.splits[k]) for k in d.splits)


def test_without_a_readme_the_published_video_table_is_used(tmp_path):
    fakes.write_cvc_official(tmp_path, sequences=29, frames=3, readme=False)
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    assert d.info["groups"] == "video sequences from the published video table"
    assert d.groups[24:26] == ["seq01", "seq02"] and d.groups[-1] == "seq05"  # frames 1-25, 26-50, ..., 79-87
    table = cvc.SEQUENCES
    assert len(table) == 29 and table[0][0] == 1 and table[-1][1] == 612
    assert all(b[0] == a[1] + 1 for a, b in zip(table, table[1:], strict=False))


def test_the_612_official_frames_split_into_the_documented_sequences():
    groups = [f"seq{k:02d}" for k, (a, b) in enumerate(cvc.SEQUENCES, 1) for _ in range(a, b + 1)]
    splits = whole_groups(groups, 0.1, 0.1, "cvc-sequence:")
    names = {k: sorted({groups[i] for i in v}) for k, v in splits.items()}
    assert names["test"] == ["seq06", "seq16", "seq27"] and len(splits["test"]) == 73
    assert names["val"] == ["seq10", "seq17", "seq18", "seq23"] and len(splits["val"]) == 59
    assert len(splits["train"]) == 480


def test_frames_outside_the_video_table_name_the_fix(tmp_path):
    folder = fakes.write_cvc(tmp_path, 3)
    for sub in ("Original", "Ground Truth"):
        (folder / sub / "3.tif").rename(folder / sub / "700.tif")
    with pytest.raises(DataError, match="1 CVC-ClinicDB frame\\(s\\) .* in no video sequence .*: 700") as err:
        load_dataset("cvc-clinicdb", root=tmp_path, resolution=32)
    assert "README" in err.value.fix and "split='contiguous'" in err.value.fix
    d = load_dataset("cvc-clinicdb", root=tmp_path, resolution=32, split="contiguous")
    assert d.groups is None and "groups" not in d.summary()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("| Sequence | Frames |\n| 1 | 1-25 |\n| 2 | 26-50 |\n| 3 | 51-67 |", [(1, 25), (26, 50), (51, 67)]),
        ("Sequence 1: frames 1 to 4\nSequence 2: frames 5 to 9\n", [(1, 4), (5, 9)]),
        ("384x288 px, 2015-03-01\n1 1–3\n2 4–6\n3 10-12\n", [(1, 3), (4, 6)]),  # the chain stops at a gap
        ("612 frames of 384x288 from 29 videos", None),
    ],
)
def test_readme_video_tables_are_read_as_a_chain_of_frame_ranges(text, expected):
    assert cvc.parse_video_table(text) == expected


def test_data_mask_threshold_reaches_the_loader_from_a_config(tmp_path):
    from scsam_lite.trainer import load_training_data

    fakes.write_cvc_official(tmp_path / "data", sequences=29, frames=3)
    fields = {"data.dataset": "cvc-clinicdb", "data.data_root": str(tmp_path / "data"), "data.resolution": 32}
    cfg = C.build_config("quick", {**fields, "data.mask_threshold": "200", "data.labeled": 0.5})
    data, _ = load_training_data(cfg)
    assert data.info["masks"] == "every mask thresholded at 200 (data.mask_threshold)"
    # the default (None) is left out of the config hash: runs recorded before the setting keep theirs
    assert C.config_hash(C.build_config("quick", fields)) != C.config_hash(cfg)
    assert "data.mask_threshold" not in C.hashed_items(C.build_config("quick", fields))
    with pytest.raises(ConfigError, match="generates its masks"):
        load_dataset("synthetic-polyp", mask_threshold=127)
    with pytest.raises(ConfigError, match="0 to 254"):
        load_dataset("cvc-clinicdb", root=tmp_path / "data", mask_threshold=300)
