"""Metrics against shapes whose answers are worked out by hand (see each test's comment)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from scsam_lite.errors import ConfigError, DataError
from scsam_lite.metrics import (
    METRIC_NAMES,
    batch_metrics,
    segmentation_metrics,
    summarize,
    volume_metrics,
)


def square(shape=(32, 32), top=8, left=8, side=10) -> np.ndarray:
    m = np.zeros(shape, dtype=np.uint8)
    m[top : top + side, left : left + side] = 1
    return m


def vline(col: int, shape=(32, 32), rows=(4, 28)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[rows[0] : rows[1], col] = True
    return m


def test_identical_masks_are_perfect():
    m = square()
    assert segmentation_metrics(m, m) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "asd": 0.0}


def test_squares_offset_by_two_pixels():
    # Two 10x10 squares, the second shifted right by k = 2.
    # Overlap 10 x 8: Dice = 2*80 / 200 = 0.8, IoU = 80 / 120 = 2/3.
    # Boundary of each square: 36 pixels. Distances from one boundary to the other (same both ways by symmetry):
    #   top and bottom rows: 2, 1, then 0 x 8; left column (8 inner pixels): 2 each;
    #   right column (inner rows i = 1..8, inside the other square): min(i, 9 - i, 2) = 1,2,2,2,2,2,2,1.
    # Sorted: 16 zeros, 4 ones, 16 twos -> 95th percentile (rank 33.25 of 35) = 2; mean = (4 + 32) / 36 = 1.
    got = segmentation_metrics(square(left=8), square(left=10))
    assert got["dice"] == pytest.approx(0.8)
    assert got["iou"] == pytest.approx(2 / 3)
    assert got["hd95"] == pytest.approx(2.0)
    assert got["asd"] == pytest.approx(1.0)


def test_isotropic_spacing_doubles_distances_but_not_overlap():
    px = segmentation_metrics(square(left=8), square(left=10))
    mm = segmentation_metrics(square(left=8), square(left=10), spacing=2.0)
    assert mm["dice"] == px["dice"] and mm["iou"] == px["iou"]
    assert mm["hd95"] == pytest.approx(2 * px["hd95"]) == pytest.approx(4.0)
    assert mm["asd"] == pytest.approx(2 * px["asd"]) == pytest.approx(2.0)


def test_parallel_lines_and_anisotropic_spacing_follow_axis_order():
    # Two one-pixel-wide vertical lines 3 columns apart: every pixel is a boundary pixel and its nearest
    # partner is exactly 3 columns away, so HD95 = ASD = 3 px; no overlap, so Dice = IoU = 0.
    a, b = vline(10), vline(13)
    got = segmentation_metrics(a, b)
    assert got == pytest.approx({"dice": 0.0, "iou": 0.0, "hd95": 3.0, "asd": 3.0})
    # Spacing is (y, x): a wider x pixel stretches the gap, a taller y pixel does not.
    assert segmentation_metrics(a, b, spacing=(1.0, 0.5))["hd95"] == pytest.approx(1.5)
    assert segmentation_metrics(a, b, spacing=(4.0, 0.5))["asd"] == pytest.approx(1.5)


def test_nan_spacing_means_pixels():
    a, b = vline(10), vline(13)
    assert segmentation_metrics(a, b, spacing=(np.nan, np.nan))["hd95"] == pytest.approx(3.0)


def test_both_empty_is_perfect():
    z = np.zeros((16, 16), dtype=np.uint8)
    assert segmentation_metrics(z, z) == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "asd": 0.0}


@pytest.mark.parametrize("which", ["pred", "gt"])
def test_exactly_one_empty_scores_the_diagonal(which):
    m, z = square(shape=(30, 40)), np.zeros((30, 40), dtype=np.uint8)
    pred, gt = (z, m) if which == "pred" else (m, z)
    got = segmentation_metrics(pred, gt)
    assert got == {"dice": 0.0, "iou": 0.0, "hd95": 50.0, "asd": 50.0}  # sqrt(30^2 + 40^2)
    mm = segmentation_metrics(pred, gt, spacing=(0.5, 0.5))
    assert mm["hd95"] == mm["asd"] == pytest.approx(25.0)


def test_worst_case_is_worse_than_any_real_miss():
    # The farthest real prediction in the image (opposite corners) still beats "predicted nothing".
    a, b = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    a[0, 0], b[19, 19] = True, True
    real = segmentation_metrics(a, b)
    empty = segmentation_metrics(np.zeros_like(a), b)
    assert real["hd95"] < empty["hd95"] and real["asd"] < empty["asd"]


def test_no_nan_inf_or_warning_leaks_out():
    rng = np.random.default_rng(0)
    cases = [(rng.random((24, 24)) > 0.7, rng.random((24, 24)) > 0.9) for _ in range(5)]
    cases += [
        (np.zeros((24, 24), bool), np.zeros((24, 24), bool)),
        (np.ones((24, 24), bool), np.zeros((24, 24))),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = [segmentation_metrics(p, g) for p, g in cases]
    assert all(math.isfinite(v) for r in rows for v in r.values())


def test_matches_monai_on_random_blobs():
    # Cross-check the wrapper (spacing order, percentile, symmetric ASD) against MONAI's public functions.
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(1)
    p = gaussian_filter(rng.random((48, 40)), 3) > 0.5
    g = gaussian_filter(rng.random((48, 40)), 3) > 0.5
    assert p.any() and g.any()
    spacing = (0.7, 1.3)
    got = segmentation_metrics(p, g, spacing=spacing)
    t = lambda m: torch.from_numpy(m)[None, None]  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hd = compute_hausdorff_distance(t(p), t(g), percentile=95, spacing=list(spacing)).item()
        asd = compute_average_surface_distance(t(p), t(g), symmetric=True, spacing=list(spacing)).item()
    assert got["hd95"] == pytest.approx(hd) and got["asd"] == pytest.approx(asd)
    assert got["dice"] == pytest.approx(2 * (p & g).sum() / (p.sum() + g.sum()))


def test_volume_plates_use_zyx_spacing():
    # Two one-voxel-thick plates two slices apart: every distance is 2 slices = 2 * 3 mm.
    a = np.zeros((8, 12, 12), bool)
    b = np.zeros_like(a)
    a[2, 2:10, 2:10] = True
    b[4, 2:10, 2:10] = True
    got = volume_metrics(a, b, spacing_zyx=(3.0, 0.5, 0.5))
    assert got == pytest.approx({"dice": 0.0, "iou": 0.0, "hd95": 6.0, "asd": 6.0})
    assert volume_metrics(a, b)["hd95"] == pytest.approx(2.0)


def test_volume_cubes_overlap():
    # 6^3 cubes shifted one slice along z: overlap 5*6*6 -> Dice = 5/6, IoU = 5/7; no surface is farther than
    # one slice from the other's, so HD95 <= 1 slice (here 2.5 mm).
    a = np.zeros((12, 12, 12), np.uint8)
    b = np.zeros_like(a)
    a[2:8, 3:9, 3:9] = 1
    b[3:9, 3:9, 3:9] = 1
    got = volume_metrics(a, b, spacing_zyx=(2.5, 1.0, 1.0))
    assert got["dice"] == pytest.approx(5 / 6) and got["iou"] == pytest.approx(5 / 7)
    assert 0 < got["asd"] <= got["hd95"] <= 2.5


def test_torch_and_0_255_inputs():
    m = square() * 255
    t = torch.from_numpy(square(left=10)).float()
    assert segmentation_metrics(m, t)["dice"] == pytest.approx(0.8)


def test_probabilities_are_refused_with_a_fix():
    with pytest.raises(DataError) as err:
        segmentation_metrics(np.full((8, 8), 0.7), square(shape=(8, 8), top=1, left=1, side=4))
    assert "threshold" in err.value.fix


def test_bad_inputs_raise_one_clear_error():
    with pytest.raises(DataError, match="shape"):
        segmentation_metrics(np.zeros((8, 8)), np.zeros((8, 9)))
    with pytest.raises(DataError, match="2D"):
        segmentation_metrics(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 8, 8)))
    with pytest.raises(ConfigError, match="spacing"):
        segmentation_metrics(square(), square(), spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ConfigError, match="positive"):
        segmentation_metrics(square(), square(), spacing=-1.0)
    with pytest.raises(DataError, match="3D"):
        volume_metrics(square(), square())


def test_batch_metrics_and_per_item_spacing():
    preds = np.stack([square(left=8), vline(10).astype(np.uint8)])
    gts = np.stack([square(left=10), vline(13).astype(np.uint8)])
    rows = batch_metrics(preds, gts)
    assert [r["hd95"] for r in rows] == pytest.approx([2.0, 3.0])
    rows = batch_metrics(preds, gts, spacings=np.array([[2.0, 2.0], [1.0, 0.5]]))
    assert [r["hd95"] for r in rows] == pytest.approx([4.0, 1.5])
    assert batch_metrics(torch.from_numpy(preds), torch.from_numpy(gts)) == batch_metrics(preds, gts)
    with pytest.raises(ConfigError, match="spacings"):
        batch_metrics(preds, gts, spacings=[None])
    with pytest.raises(DataError):
        batch_metrics(preds, gts[:1])


def test_summarize_means_and_std():
    rows = [
        {"dice": 0.5, "iou": 0.25, "hd95": 2.0, "asd": 1.0},
        {"dice": 1.0, "iou": 1.0, "hd95": 4.0, "asd": 3.0},
    ]
    s = summarize(rows)
    assert s["dice"] == pytest.approx(0.75) and s["dice_std"] == pytest.approx(0.25)
    assert s["hd95"] == pytest.approx(3.0) and s["asd_std"] == pytest.approx(1.0)
    assert s["n"] == 2
    assert set(METRIC_NAMES) <= set(s)
    with pytest.raises(DataError):
        summarize([])


def test_hd95_is_the_95th_percentile_not_the_maximum():
    """A large square predicted exactly plus one stray pixel far away: the Hausdorff distance is that pixel's
    distance, the 95th percentile of the surface distances stays near 0 (a max-based "HD95" would fail)."""
    from scipy import ndimage

    gt = np.zeros((96, 96), np.uint8)
    gt[10:60, 10:60] = 1
    pred = gt.copy()
    pred[90, 90] = 1  # about 43 px from the square's corner
    got = segmentation_metrics(pred, gt)

    # independent surface distances: border pixels of each mask to the other's border, both directions
    def border(m):
        return m.astype(bool) & ~ndimage.binary_erosion(m.astype(bool))

    bp, bg = border(pred), border(gt)
    d_to_gt = ndimage.distance_transform_edt(~bg)[bp]
    d_to_pred = ndimage.distance_transform_edt(~bp)[bg]
    both = np.concatenate([d_to_gt, d_to_pred])
    assert both.max() > 40
    assert got["hd95"] == pytest.approx(np.percentile(both, 95), abs=1.0)
    assert got["hd95"] < 2.0 < both.max()


def test_volume_errors_name_the_argument_and_the_fix():
    """A probability volume is refused by its argument's name; a 2-D "volume" is told how to stack its slices."""
    gt = np.zeros((2, 8, 8), dtype=np.uint8)
    with pytest.raises(DataError, match="pred_vol"):
        volume_metrics(np.full((2, 8, 8), 0.5), gt)
    with pytest.raises(DataError, match=r"must be 3D[\s\S]*np\.stack\(slices\) in slice order"):
        volume_metrics(np.zeros((8, 8), dtype=np.uint8), gt)


def test_surface_distances_raise_no_warning():
    """MONAI's own deprecation chatter inside the distance functions is filtered; nothing else is raised."""
    pred = np.zeros((16, 16), dtype=np.uint8)
    pred[4:10, 4:10] = 1
    gt = np.roll(pred, 2, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = segmentation_metrics(pred, gt)
    assert out["hd95"] == pytest.approx(2.0) and 0 < out["asd"] <= 2.0


def test_dice_scores_agree_with_the_per_image_metric_and_count_both_empty_as_one():
    from scsam_lite.metrics import dice_scores

    rng = np.random.default_rng(0)
    preds = rng.random((6, 1, 12, 10)) > 0.6
    gts = rng.random((6, 1, 12, 10)) > 0.5
    preds[4], gts[4] = False, False  # both empty: a perfect empty prediction
    preds[5] = False  # a missed object: 0
    got = dice_scores(preds.astype(np.uint8) * 255, gts)
    want = [segmentation_metrics(p[0], g[0])["dice"] for p, g in zip(preds, gts, strict=True)]
    assert got.shape == (6,) and np.allclose(got, want)
    assert got[4] == 1.0 and got[5] == 0.0
    assert 0.0 < got[:4].min() and got[:4].max() < 1.0


def test_summarize_keeps_numbers_only_and_names_what_is_wrong():
    one = summarize([{"dice": 0.5, "case": "a", "empty": True, "n_pixels": 3}])
    assert one == {"dice": 0.5, "dice_std": 0.0, "n_pixels": 3.0, "n_pixels_std": 0.0, "n": 1.0}
    three = summarize([{"dice": d} for d in (0.0, 0.5, 1.0)])
    assert three["dice_std"] == pytest.approx(np.std([0.0, 0.5, 1.0]))  # population, not sample
    with pytest.raises(DataError) as err:
        summarize([])
    assert "no metric rows to summarize" in str(err.value) and "score at least one prediction" in str(
        err.value
    )
    with pytest.raises(DataError) as err:
        summarize([{"dice": 0.5, "iou": 0.3}, {"dice": 0.7}, {"dice": 0.1}])
    assert "2 of 3 rows have no 'iou'" in str(err.value) and "summarize rows from one scorer" in str(
        err.value
    )


def test_a_zero_spacing_is_refused_and_batch_errors_name_the_fix():
    from scsam_lite.errors import ConfigError

    m = np.zeros((4, 4), dtype=bool)
    m[1:3, 1:3] = True
    with pytest.raises(ConfigError, match="must be positive and finite"):
        segmentation_metrics(m, m, spacing=(0.0, 1.0))
    with pytest.raises(Exception) as err:
        batch_metrics(np.stack([m, m]), np.stack([m]))
    assert (
        "2 predictions but 1 ground-truth masks" in str(err.value)
        and "one mask per prediction" in err.value.fix
    )
    with pytest.raises(Exception) as err:
        batch_metrics(np.stack([m, m]), np.stack([m, m]), spacings=[(1.0, 1.0)])
    assert "pass one spacing per item" in err.value.fix and "None for pixels" in err.value.fix
    got = batch_metrics(torch.from_numpy(np.stack([m, m])), torch.from_numpy(np.stack([m, ~m])))
    assert got[0]["dice"] == 1.0 and got[1]["dice"] == 0.0


def test_every_metric_error_names_the_argument_and_the_fix():
    """Each error's fix, word for word (what a student reads), and the part of its message that names the problem."""
    from scsam_lite.errors import ScsamError

    m = square()

    def error(fn, *args) -> ScsamError:
        with pytest.raises(ScsamError) as err:
            fn(*args)
        return err.value

    threshold = "threshold it first, e.g. probs > 0.5 or logits > 0"
    cases = [
        (error(segmentation_metrics, m * 0.7, m), "pred holds values other than 0 and 1", threshold),
        (error(segmentation_metrics, m, m * 0.7), "gt holds values other than 0 and 1", threshold),
        (
            error(volume_metrics, (m * 0.7)[None], m[None]),
            "pred_vol holds values other than 0 and 1",
            threshold,
        ),
        (
            error(segmentation_metrics, np.full((2, 2), "a"), m),
            "pred has dtype <U1, which is not a mask",
            "pass a bool, integer or 0/1 float array",
        ),
        (
            error(segmentation_metrics, m, m[:5]),
            "differs from ground-truth shape",
            "resize the prediction to the mask's resolution (nearest neighbour) before scoring",
        ),
        (
            error(segmentation_metrics, m[None, None], m[None, None]),
            "2D (H, W) or 3D",
            "drop batch/channel axes (e.g. pred[0, 0]) or use batch_metrics for a stack",
        ),
        (
            error(segmentation_metrics, m, m, (1.0, 2.0, 3.0)),
            "does not fit a 2D mask",
            "give one number (isotropic) or 2 numbers in array-axis order (y, x), or None for pixels",
        ),
        (
            error(volume_metrics, m[None], m[None], (1.0, 2.0)),
            "does not fit a 3D mask",
            "give one number (isotropic) or 3 numbers in array-axis order (z, y, x), or None for pixels",
        ),
        (
            error(segmentation_metrics, m, m, (-1.0, 1.0)),
            "must be positive and finite",
            "pass the pixel size in mm, e.g. 0.5",
        ),
        (
            error(volume_metrics, m, m),
            "a volume must be 3D",
            "stack the case's slices with np.stack(slices) in slice order",
        ),
        (
            error(batch_metrics, np.stack([m, m]), np.stack([m])),
            "2 predictions but 1 ground-truth masks",
            "pass one mask per prediction",
        ),
        (
            error(batch_metrics, np.stack([m, m]), np.stack([m, m]), [(1.0, 1.0)]),
            "spacing",
            "pass one spacing per item (e.g. data.spacing[indices]) or None for pixels",
        ),
        (
            error(summarize, []),
            "no metric rows to summarize",
            "score at least one prediction before summarizing",
        ),
        (
            error(summarize, [{"dice": 1.0, "iou": 1.0}, {"dice": 0.5}]),
            "1 of 2 rows have no 'iou'",
            "summarize rows from one scorer",
        ),
    ]
    for err, message, fix in cases:
        assert message in err.message and err.fix == fix, (err.message, err.fix)
    probabilities = error(segmentation_metrics, m * 0.7, m).message
    assert probabilities.endswith(": it looks like probabilities or logits, not a mask")
    assert error(summarize, []).message == "no metric rows to summarize"


def test_a_tensor_spacing_counts_like_a_tuple():
    a, b = square(), square(top=10)
    assert segmentation_metrics(a, b, torch.tensor([2.0, 2.0]))["hd95"] == pytest.approx(
        2 * segmentation_metrics(a, b)["hd95"]
    )
