"""PROMISE12 from .mhd volumes written here: slices, spacing, case split, label units, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from scsam_lite import paths
from scsam_lite.data import fakes, load_dataset, make_label_split
from scsam_lite.errors import ConfigError, DataError

CASES = ["Case00", "Case01", "Case02", "Case35", "Case40"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    monkeypatch.setenv("SCSAM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(paths, "on_kaggle", lambda: False)


@pytest.fixture
def tree(tmp_path):
    return fakes.write_promise12(tmp_path / "data", CASES, shape=(5, 40, 40), spacing=(0.5, 0.5, 3.0))


def test_slices_spacing_and_split(tree, tmp_path):
    d = load_dataset("promise12", root=tmp_path / "data", resolution=32)
    assert d.images.shape == (25, 32, 32, 1) and d.masks.shape == (25, 32, 32) and d.is_volumetric
    assert d.ids[:2] == ["Case00_slice_000", "Case00_slice_001"] and d.cases[5] == "Case01"
    assert np.allclose(d.spacing, 0.5 * 40 / 32)  # in-plane spacing rescaled to the new pixel size
    assert d.slice_spacing == {c: 3.0 for c in CASES}
    assert set(np.unique(d.masks)) == {0, 1}
    areas = d.masks.reshape(25, -1).sum(1)
    assert areas[0] == 0 and areas[2] > 0  # the fake gland is absent in end slices
    img = d.images[..., 0].astype(float)
    assert img[d.masks == 1].mean() > img[d.masks == 0].mean() + 50  # percentile-normalised, gland brighter
    sets = {k: {d.cases[i] for i in v} for k, v in d.splits.items()}
    assert sets == {"train": {"Case00", "Case01", "Case02"}, "val": {"Case35"}, "test": {"Case40"}}
    assert "val Case35-39" in d.info["split_rule"]


def test_case_overrides_and_label_units(tree, tmp_path):
    d = load_dataset(
        "promise12", root=tmp_path / "data", resolution=32, val_cases=["Case01"], test_cases=["Case02"]
    )
    sets = {k: {d.cases[i] for i in v} for k, v in d.splits.items()}
    assert sets["val"] == {"Case01"} and sets["test"] == {"Case02"} and "Case35" in sets["train"]
    by_case = make_label_split(d, 0.34)
    assert by_case.unit == "case" and len({d.cases[i] for i in by_case.labeled}) == 1
    by_slice = make_label_split(d, 7, unit="slice")
    assert [d.ids[i] for i in by_slice.labeled] == [f"Case00_slice_{k:03d}" for k in range(5)] + [
        "Case35_slice_000",
        "Case35_slice_001",
    ]
    with pytest.raises(ConfigError, match="both"):
        load_dataset(
            "promise12", root=tmp_path / "data", resolution=32, val_cases=["Case01"], test_cases=["Case01"]
        )


def test_volume_without_segmentation(tree):
    (tree / "Case01_segmentation.mhd").unlink()
    with pytest.raises(DataError, match="1 volume\\(s\\) have no CaseXX_segmentation.mhd: Case01"):
        load_dataset("promise12", root=tree, resolution=32)


def test_mask_of_the_wrong_shape(tree):
    fakes.write_mhd(tree / "Case02_segmentation.mhd", np.zeros((5, 20, 40), np.uint8), (0.5, 0.5, 3.0))
    with pytest.raises(DataError, match="Case02_segmentation.mhd has shape"):
        load_dataset("promise12", root=tree, resolution=32)


def test_non_binary_mask(tree):
    seg = np.zeros((5, 40, 40), np.uint8)
    seg[1:4, 10:20, 10:20] = 1
    seg[2, 12:15, 12:15] = 2
    fakes.write_mhd(tree / "Case01_segmentation.mhd", seg, (0.5, 0.5, 3.0))
    with pytest.raises(DataError, match="Case01_segmentation.mhd has 3 grey levels") as err:
        load_dataset("promise12", root=tree, resolution=32)
    assert "--set data.mask_threshold=127" in err.value.fix
    d = load_dataset("promise12", root=tree, resolution=32, mask_threshold=0)  # asked for: 1 and 2 are gland
    assert d.masks[d.ids.index("Case01_slice_002")].sum() > 0


def test_slices_carry_their_case_as_group(tree):
    d = load_dataset("promise12", root=tree, resolution=32)
    assert d.groups == d.cases and d.groups[5] == "Case01"


def test_corrupt_volume(tree):
    raw = tree / "Case00.raw"
    raw.write_bytes(raw.read_bytes()[:100])
    with pytest.raises(DataError, match="cannot read .*Case00.mhd") as err:
        load_dataset("promise12", root=tree, resolution=32)
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_cache_reuse(tree, monkeypatch):
    from scsam_lite.data import promise12

    first = load_dataset("promise12", root=tree, resolution=32)
    monkeypatch.setattr(promise12, "read_volume", lambda p: (_ for _ in ()).throw(AssertionError("decoded")))
    again = load_dataset("promise12", root=tree, resolution=32)
    assert again.info["cache"] == "hit" and np.array_equal(first.masks, again.masks)
    assert again.slice_spacing == first.slice_spacing
