"""The synthetic datasets: deterministic, fast, with the properties the notebooks rely on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from scsam_lite.data import load_dataset


@pytest.fixture(scope="module")
def polyp():
    return load_dataset("synthetic-polyp")


@pytest.fixture(scope="module")
def prostate():
    return load_dataset("synthetic-prostate")


def test_polyp_is_deterministic_and_seeded(polyp):
    again = load_dataset("synthetic-polyp")
    assert np.array_equal(polyp.images, again.images) and np.array_equal(polyp.masks, again.masks)
    other = load_dataset("synthetic-polyp", seed=1)
    assert not np.array_equal(polyp.images, other.images)


def test_polyp_arrays_and_split(polyp):
    n = len(polyp)
    assert polyp.images.shape == (n, 64, 64, 3) and polyp.images.dtype == np.uint8
    assert polyp.masks.shape == (n, 64, 64) and set(np.unique(polyp.masks)) == {0, 1}
    assert 200 <= n <= 1000
    assert polyp.ids == polyp.cases and not polyp.is_volumetric
    parts = [set(polyp.splits[k].tolist()) for k in ("train", "val", "test")]
    assert sum(map(len, parts)) == n and len(set.union(*parts)) == n
    assert np.isnan(polyp.spacing).all()


def test_polyp_has_empty_images_and_at_most_two_blobs(polyp):
    areas = polyp.masks.reshape(len(polyp), -1).sum(1)
    empty = (areas == 0).mean()
    assert 0.1 < empty < 0.35
    blobs = [ndimage.label(m)[1] for m in polyp.masks]
    assert max(blobs) <= 2 and 2 in blobs and 1 in blobs
    counts = np.asarray(polyp.info["polyps_per_image"])
    assert set(counts.tolist()) <= {0, 1, 2} and (counts[areas == 0] == 0).all()
    # varied sizes: small and large polyps both occur
    fg = areas[areas > 0] / 64**2
    assert fg.min() < 0.03 and fg.max() > 0.2


def test_polyp_is_not_a_colour_threshold(polyp):
    """No single channel (or red-green difference) thresholded globally finds the polyps."""
    m = polyp.masks.astype(bool)
    img = polyp.images.astype(np.float32)
    features = [img[..., 0], img[..., 1], img[..., 2], img[..., 0] - img[..., 1]]
    best = 0.0
    for f in features:
        for t in np.percentile(f, np.linspace(2, 98, 25)):
            for p in (f > t, f < t):
                best = max(best, 2 * (p & m).sum() / (p.sum() + m.sum()))
    assert best < 0.4


def test_resolution_option():
    d = load_dataset("synthetic-polyp", resolution=96, n_images=20)
    assert d.images.shape == (20, 96, 96, 3) and d.resolution == 96


def test_prostate_volumes(prostate):
    assert prostate.is_volumetric and prostate.channels == 1
    assert prostate.images.dtype == np.uint8 and set(np.unique(prostate.masks)) == {0, 1}
    cases = prostate.split_cases("train") | prostate.split_cases("val") | prostate.split_cases("test")
    assert len(cases) == 50
    for case, idx in cases.items():
        assert 6 <= len(idx) <= 10 and np.all(np.diff(idx) == 1)
        areas = prostate.masks[idx].reshape(len(idx), -1).sum(1)
        assert areas[0] == 0 and areas[-1] == 0, f"{case}: the gland must be absent at the ends"
        assert areas.max() > 0
        assert prostate.slice_spacing[case] > 0
    assert np.isfinite(prostate.spacing).all()
    assert [prostate.ids[i] for i in cases["Case00"]][:2] == ["Case00_slice_000", "Case00_slice_001"]


def test_prostate_split_is_by_case(prostate):
    sets = {k: {prostate.cases[i] for i in v} for k, v in prostate.splits.items()}
    assert (
        not (sets["train"] & sets["val"])
        and not (sets["train"] & sets["test"])
        and not (sets["val"] & sets["test"])
    )
    assert sets["val"] == {f"Case{i}" for i in range(35, 40)}
    assert sets["test"] == {f"Case{i}" for i in range(40, 50)}


def test_prostate_contrast_varies_by_case(prostate):
    ratios = []
    for idx in prostate.split_cases("train").values():
        img, m = prostate.images[idx, ..., 0].astype(float), prostate.masks[idx].astype(bool)
        ratios.append(img[m].mean() - img[~m].mean())
    assert np.std(ratios) > 5


def test_prostate_deterministic(prostate):
    again = load_dataset("synthetic-prostate")
    assert np.array_equal(prostate.images, again.images) and prostate.ids == again.ids
