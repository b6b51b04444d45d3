"""Point and box prompts: the (x, y) convention, both strategies, seeding, edge cases and boxes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scsam_lite.errors import ConfigError
from scsam_lite.prompts import STRATEGIES, Points, boxes_from_masks, point_hits, sample_points


def blob(h: int = 32, w: int = 40, rows=(5, 8), cols=(20, 23)) -> torch.Tensor:
    """One rectangle of foreground, rows and columns inclusive; off the diagonal so that a swap shows."""
    m = torch.zeros(h, w, dtype=torch.bool)
    m[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True
    return m


def disc(m: torch.Tensor, row: int, col: int, radius: int) -> torch.Tensor:
    r = torch.arange(m.shape[0])[:, None]
    c = torch.arange(m.shape[1])[None, :]
    m |= (r - row) ** 2 + (c - col) ** 2 <= radius**2
    return m


def split(points: Points, n_pos: int):
    """(positive coords, negative coords) of image 0 as lists of (x, y), padding included."""
    xy = points.coords[0].long().tolist()
    return [tuple(p) for p in xy[:n_pos]], [tuple(p) for p in xy[n_pos:]]


def assert_same(a: Points, b: Points) -> None:
    assert torch.equal(a.coords, b.coords) and torch.equal(a.labels, b.labels)


# --- the convention -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_points_are_x_column_y_row_in_the_mask_frame(strategy, seed):
    m = blob()  # rows 5..8, columns 20..23, H=32, W=40
    p = sample_points(m, n_pos=5, n_neg=5, strategy=strategy, seed=seed)
    assert p.coords.shape == (1, 10, 2) and p.coords.dtype == torch.float32
    assert p.labels.dtype == torch.int64
    assert p.labels.tolist() == [[1] * 5 + [0] * 5]
    pos, neg = split(p, 5)
    for x, y in pos:
        assert 20 <= x <= 23 and 5 <= y <= 8
        assert m[y, x]
    for x, y in neg:
        assert not m[y, x]
    assert point_hits(p, m).tolist() == [[True] * 5 + [False] * 5]


# --- random -----------------------------------------------------------------------------------------------------


def test_random_points_are_distinct_and_fill_a_small_foreground_exactly():
    m = blob()
    p = sample_points(m, n_pos=16, n_neg=50, seed=0)
    pos, neg = split(p, 16)
    assert sorted(pos) == sorted((x, y) for y in range(5, 9) for x in range(20, 24))
    assert len(set(neg)) == 50 and all(not m[y, x] for x, y in neg)


def test_random_positives_are_uniform_over_the_foreground():
    # 1600 draws of one positive over 16 pixels: 100 expected each, sd ~ 9.7; 60..140 is > 4 sd either side.
    m = blob().expand(1600, -1, -1)
    p = sample_points(m, n_pos=1, n_neg=0, seed=0)
    x, y = p.coords[:, 0, 0].long(), p.coords[:, 0, 1].long()
    counts = torch.bincount((y - 5) * 4 + (x - 20), minlength=16)
    assert counts.numel() == 16 and counts.min() >= 60 and counts.max() <= 140


def test_random_negatives_cover_the_background():
    m = blob(h=8, w=8, rows=(0, 3), cols=(0, 3))  # 48 background pixels
    p = sample_points(m.expand(400, -1, -1), n_pos=0, n_neg=1, seed=1)
    seen = {tuple(xy) for xy in p.coords[:, 0].long().tolist()}
    assert len(seen) == 48 and all(not m[y, x] for x, y in seen)


# --- interior ---------------------------------------------------------------------------------------------------


def two_discs() -> torch.Tensor:
    m = torch.zeros(48, 64, dtype=torch.bool)
    disc(m, row=10, col=12, radius=4)  # the small one comes first in raster order
    disc(m, row=30, col=40, radius=9)
    return m


def test_interior_takes_the_centre_of_each_component_largest_first():
    p = sample_points(two_discs(), n_pos=2, n_neg=3, strategy="interior", seed=0)
    pos, _ = split(p, 2)
    assert pos == [(40, 30), (12, 10)]


def test_interior_fills_the_other_positive_slots_at_random_without_repeats():
    m = two_discs()
    for seed in range(5):
        p = sample_points(m, n_pos=6, n_neg=2, strategy="interior", seed=seed)
        pos, _ = split(p, 6)
        assert pos[:2] == [(40, 30), (12, 10)]
        assert len(set(pos)) == 6 and all(m[y, x] for x, y in pos)
    a = sample_points(m, n_pos=6, n_neg=0, strategy="interior", seed=0)
    b = sample_points(m, n_pos=6, n_neg=0, strategy="interior", seed=1)
    assert not torch.equal(a.coords[:, 2:], b.coords[:, 2:])


def test_interior_with_more_components_than_slots_keeps_the_largest():
    m = two_discs()
    disc(m, row=40, col=6, radius=2)
    p = sample_points(m, n_pos=1, n_neg=0, strategy="interior", seed=0)
    assert split(p, 1)[0] == [(40, 30)]


def test_interior_counts_the_image_border_as_background():
    full = torch.ones(9, 13, dtype=torch.bool)
    assert split(sample_points(full, 1, 0, "interior", seed=0), 1)[0] == [(6, 4)]
    # A half disc cut by the top edge: its most interior pixel lies below the edge, not on it.
    half = disc(torch.zeros(32, 32, dtype=torch.bool), row=0, col=16, radius=10)
    ((x, y),) = split(sample_points(half, 1, 0, "interior", seed=0), 1)[0]
    assert x == 16 and 3 <= y <= 6


def test_interior_breaks_ridge_ties_at_the_middle_of_the_object():
    # A 3-pixel-high bar: every pixel of its middle row is equally interior; the middle one is chosen.
    bar = blob(rows=(5, 7), cols=(2, 29))
    ((x, y),) = split(sample_points(bar, 1, 0, "interior", seed=0), 1)[0]
    assert y == 6 and x in (15, 16)


# --- seeds and batches ------------------------------------------------------------------------------------------


def batch_of_three() -> torch.Tensor:
    return torch.stack([blob(), two_discs()[:32, :40], blob(rows=(20, 30), cols=(2, 9))])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_per_image_seeds_give_the_prompts_each_image_gets_alone(strategy):
    masks, seeds = batch_of_three(), [7, 0, 123]
    together = sample_points(masks, 4, 3, strategy, seed=seeds)
    for i, s in enumerate(seeds):
        assert_same(together.select(i), sample_points(masks[i], 4, 3, strategy, seed=s))
    # The same seeds as a tensor (a DataLoader's index batch) give the same points.
    assert_same(together, sample_points(masks, 4, 3, strategy, seed=torch.tensor(seeds)))


def test_an_int_seed_on_one_image_equals_a_one_element_seed_list():
    assert_same(sample_points(blob(), seed=5), sample_points(blob()[None], seed=[5]))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_same_points_other_seed_other_points(strategy):
    masks = batch_of_three()
    assert_same(
        sample_points(masks, strategy=strategy, seed=3), sample_points(masks, strategy=strategy, seed=3)
    )
    a, b = sample_points(masks, strategy=strategy, seed=3), sample_points(masks, strategy=strategy, seed=4)
    assert not torch.equal(a.coords, b.coords)


def test_a_generator_is_used_as_is_and_none_uses_the_global_rng():
    m = batch_of_three()
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    first = sample_points(m, seed=g1)
    assert_same(first, sample_points(m, seed=g2))
    assert not torch.equal(first.coords, sample_points(m, seed=g1).coords)  # g1 has moved on
    torch.manual_seed(0)
    a = sample_points(m)
    torch.manual_seed(0)
    assert_same(a, sample_points(m))


def test_bad_seeds_raise_one_config_error():
    m = batch_of_three()
    with pytest.raises(ConfigError, match="2 seeds for a batch of 3"):
        sample_points(m, seed=[1, 2])
    with pytest.raises(ConfigError, match="not an int"):
        sample_points(m, seed=[1, 2.5, 3])
    with pytest.raises(ConfigError, match="neither an int"):
        sample_points(m, seed="0")
    with pytest.raises(ConfigError, match="out of range") as err:
        sample_points(m, seed=2**64)
    assert err.value.__suppress_context__ and err.value.fix


# --- inputs and devices -----------------------------------------------------------------------------------------


def test_numpy_and_non_bool_masks_give_the_same_points_as_a_bool_tensor():
    m = blob()
    ref = sample_points(m, seed=2)
    for other in (
        m.numpy(),
        m.numpy().astype(np.uint8) * 255,
        m.numpy().astype(np.float32),
        m.to(torch.int64),
        m.float() * 0.4 + 0.3,  # probabilities 0.3 / 0.7: foreground where > 0.5
        np.asfortranarray(m.numpy()),
    ):
        got = sample_points(other, seed=2)
        assert got.coords.device.type == "cpu"
        assert_same(got, ref)
    assert torch.equal(boxes_from_masks(m.numpy()), boxes_from_masks(m))


def test_outputs_are_on_the_cpu_for_cpu_masks():
    p = sample_points(blob(), seed=0)
    assert p.coords.device.type == p.labels.device.type == "cpu"
    assert boxes_from_masks(blob()).device.type == "cpu"
    assert point_hits(p, blob()).device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cuda_masks_give_cuda_outputs_and_the_cpu_points(strategy):
    masks = batch_of_three()
    cpu = sample_points(masks, strategy=strategy, seed=[1, 2, 3])
    gpu = sample_points(masks.cuda(), strategy=strategy, seed=[1, 2, 3])
    assert gpu.coords.is_cuda and gpu.labels.is_cuda
    assert_same(cpu, gpu.to("cpu"))
    assert boxes_from_masks(masks.cuda()).is_cuda
    assert point_hits(gpu, masks.cuda()).is_cuda
    assert sample_points(masks.cuda(), seed=torch.Generator("cuda").manual_seed(0)).coords.is_cuda


@pytest.mark.parametrize("bad", [torch.zeros(5), torch.zeros(2, 1, 8, 8), np.zeros((1, 2, 3, 4))])
def test_masks_of_other_shapes_raise_one_config_error(bad):
    with pytest.raises(ConfigError, match=r"shape \(.*\); expected \(H, W\) or \(B, H, W\)") as err:
        sample_points(bad)
    assert "mask[:, 0]" in err.value.fix
    with pytest.raises(ConfigError, match="expected"):
        boxes_from_masks(bad)


def test_masks_that_are_not_arrays_or_have_no_pixels_raise_config_errors():
    with pytest.raises(ConfigError, match="is a list"):
        sample_points([[0, 1], [1, 0]])
    with pytest.raises(ConfigError, match="without pixels"):
        sample_points(torch.zeros(2, 0, 5))
    with pytest.raises(ConfigError, match="dtype"):
        sample_points(np.array([["a", "b"]]))


def test_unknown_strategy_suggests_the_close_name():
    with pytest.raises(ConfigError, match="unknown prompt strategy 'interor'") as err:
        sample_points(blob(), strategy="interor")
    assert "did you mean 'interior'" in err.value.fix


# --- edge cases -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_empty_foreground_pads_every_positive_slot(strategy):
    p = sample_points(torch.zeros(16, 16), 3, 2, strategy, seed=0)
    assert p.labels.tolist() == [[-1, -1, -1, 0, 0]]
    assert p.coords[0, :3].eq(0).all()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fewer_foreground_pixels_than_positives_takes_them_all(strategy):
    m = torch.zeros(16, 16, dtype=torch.bool)
    m[3, 4] = m[10, 12] = m[10, 13] = True
    p = sample_points(m, 5, 2, strategy, seed=0)
    assert p.labels.tolist() == [[1, 1, 1, -1, -1, 0, 0]]
    pos, _ = split(p, 5)
    assert sorted(pos[:3]) == [(4, 3), (12, 10), (13, 10)] and pos[3:] == [(0, 0), (0, 0)]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_all_foreground_pads_every_negative_slot(strategy):
    p = sample_points(torch.ones(2, 6, 6), 2, 3, strategy, seed=0)
    assert p.labels.tolist() == [[1, 1, -1, -1, -1]] * 2
    assert p.coords[:, 2:].eq(0).all()


def test_an_image_smaller_than_the_slots_is_padded_not_crashed():
    m = torch.tensor([[True, False], [False, False]])
    p = sample_points(m, n_pos=10, n_neg=10, seed=0)
    assert p.labels[0].tolist() == [1] + [-1] * 9 + [0] * 3 + [-1] * 7
    assert point_hits(p, m)[0].tolist() == [True] + [False] * 19


def test_zero_positives_or_zero_negatives_are_allowed_but_not_both():
    assert sample_points(blob(), n_pos=0, n_neg=4, seed=0).labels.tolist() == [[0] * 4]
    assert sample_points(blob(), n_pos=3, n_neg=0, strategy="interior", seed=0).labels.tolist() == [[1] * 3]
    with pytest.raises(ConfigError, match="no points at all"):
        sample_points(blob(), n_pos=0, n_neg=0)
    with pytest.raises(ConfigError, match="n_pos must be a whole number"):
        sample_points(blob(), n_pos=-1)
    with pytest.raises(ConfigError, match="n_neg must be a whole number"):
        sample_points(blob(), n_neg=2.0)


def test_an_empty_batch_gives_empty_points():
    p = sample_points(torch.zeros(0, 8, 8), 2, 2, "interior", seed=[])
    assert p.coords.shape == (0, 4, 2) and len(p) == 0
    assert boxes_from_masks(torch.zeros(0, 8, 8)).shape == (0, 4)


# --- Points -----------------------------------------------------------------------------------------------------


def test_points_select_keeps_the_batch_axis():
    p = sample_points(batch_of_three(), 2, 2, seed=[0, 1, 2])
    assert len(p) == 3
    for idx, rows in [
        (1, [1]),
        (-1, [2]),
        (slice(0, 2), [0, 1]),
        (torch.tensor([2, 0]), [2, 0]),
        (torch.tensor(1), [1]),
    ]:
        s = p.select(idx)
        assert torch.equal(s.coords, p.coords[rows]) and torch.equal(s.labels, p.labels[rows])
    assert torch.equal(p.select(torch.tensor([True, False, True])).labels, p.labels[[0, 2]])
    with pytest.raises(ConfigError, match="image 3 is out of range for a batch of 3"):
        p.select(3)
    assert p.to("cpu").coords.device.type == "cpu"


def test_points_of_mismatched_shapes_are_refused():
    with pytest.raises(ConfigError, match="do not fit"):
        Points(torch.zeros(2, 3, 2), torch.zeros(2, 4, dtype=torch.int64))
    with pytest.raises(ConfigError, match="do not fit"):
        Points(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.int64))


# --- point_hits -------------------------------------------------------------------------------------------------


def test_point_hits_reads_mask_at_row_y_column_x():
    m = blob()
    coords = torch.tensor(
        [[[20.0, 5.0], [5.0, 20.0], [23.4, 8.2], [23.6, 8.0], [-1.0, 5.0], [40.0, 5.0], [21, 6]]]
    )
    labels = torch.tensor([[1, 1, 1, 1, 1, 1, -1]])
    hits = point_hits(Points(coords, labels), m)
    # on the blob; swapped (misses); rounds onto the blob; rounds off it; left of and right of the image; padding
    assert hits.tolist() == [[True, False, True, False, False, False, False]]
    with pytest.raises(ConfigError, match="1 point sets for 3 masks"):
        point_hits(Points(coords, labels), batch_of_three())
    with pytest.raises(ConfigError, match="not Points"):
        point_hits(coords, m)


# --- boxes ------------------------------------------------------------------------------------------------------


def test_box_is_tight_and_inclusive():
    box = boxes_from_masks(blob())
    assert box.dtype == torch.float32 and box.tolist() == [[20.0, 5.0, 23.0, 8.0]]


def test_box_covers_every_component_of_a_batch():
    box = boxes_from_masks(torch.stack([blob(), two_discs()[:32, :40], blob(rows=(20, 30), cols=(2, 9))]))
    # two_discs cropped: the small disc spans rows 6..14, columns 8..16; the large one rows 21..31 (cut), columns 31..39.
    assert box.tolist() == [[20, 5, 23, 8], [8, 6, 39, 31], [2, 20, 9, 30]]


def test_box_margin_grows_and_clips_at_the_image_edge():
    assert boxes_from_masks(blob(), margin=2).tolist() == [[18, 3, 25, 10]]
    corner = blob(rows=(0, 2), cols=(37, 39))
    assert boxes_from_masks(corner, margin=3).tolist() == [[34, 0, 39, 5]]
    assert boxes_from_masks(blob(), margin=100).tolist() == [[0, 0, 39, 31]]
    with pytest.raises(ConfigError, match="margin"):
        boxes_from_masks(blob(), margin=-1)


def test_an_empty_mask_gives_the_whole_image_box():
    masks = torch.stack([torch.zeros(32, 40, dtype=torch.bool), blob()])
    assert boxes_from_masks(masks, margin=1).tolist() == [[0, 0, 39, 31], [19, 4, 24, 9]]


def test_interior_point_is_the_most_interior_pixel_nearest_the_centroid():
    """A square with a long thin tail: the tail pulls the centroid away from the square's centre, so the rule
    "largest distance to the background, ties broken by the centroid" is checked against a brute-force count of
    it here (a looser tie tolerance, or another distance to the centroid, picks another pixel)."""
    from scipy import ndimage

    m = np.zeros((40, 48), dtype=bool)
    m[4:16, 4:16] = True  # a 12 x 12 square: its four central pixels tie as the most interior
    m[9:12, 16:46] = True  # a 3-pixel-wide tail to the right, below the square's middle
    dist = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    rows, cols = np.nonzero(m)
    top = dist[rows, cols] == dist[rows, cols].max()
    near = (rows[top] - rows.mean()) ** 2 + (cols[top] - cols.mean()) ** 2
    want = (int(rows[top][np.argmin(near)]), int(cols[top][np.argmin(near)]))
    p = sample_points(torch.from_numpy(m)[None], n_pos=1, n_neg=0, strategy="interior", seed=0)
    x, y = p.coords[0, 0].tolist()
    assert top.sum() == 4 and (int(y), int(x)) == want == (10, 10)  # not (9, 9), the first in raster order


def test_interior_skips_an_empty_mask_and_goes_on_to_the_next():
    m = torch.zeros(3, 16, 16, dtype=torch.bool)
    m[1, 4:12, 4:12] = True
    m[2, 2:6, 8:14] = True
    p = sample_points(m, n_pos=1, n_neg=0, strategy="interior", seed=0)
    assert p.labels[:, 0].tolist() == [-1, 1, 1]  # the empty image's slot is padding, the others are points
    assert p.coords[1, 0].tolist() == [7.0, 7.0] and p.coords[2, 0].tolist()[1] in (3.0, 4.0)


def test_select_accepts_every_index_python_would_and_names_the_range():
    p = sample_points(torch.ones(3, 8, 8, dtype=torch.bool), n_pos=1, n_neg=0, seed=[0, 1, 2])
    for i in (-3, -1, 0, 2):
        assert torch.equal(p.select(i).coords, p.coords[i : i + 1] if i != -1 else p.coords[-1:])
    with pytest.raises(ConfigError, match="out of range for a batch of 3[\\s\\S]*from 0 to 2"):
        p.select(3)
    with pytest.raises(ConfigError, match="this batch is empty"):
        p.select(slice(0, 0)).select(0)


# --- helpers the training loop uses -----------------------------------------------------------------------------


def test_points_cat_stacks_batches_in_order():
    masks = torch.stack([blob(), blob(rows=(10, 20), cols=(2, 9)), blob(rows=(0, 3), cols=(30, 39))])
    whole = sample_points(masks, 3, 2, seed=[4, 5, 6])
    parts = [whole.select(0), whole.select(slice(1, 3))]
    assert_same(Points.cat(parts), whole)
    swapped = Points.cat([whole.select(slice(1, 3)), whole.select(0)])
    assert torch.equal(swapped.coords[2], whole.coords[0]) and torch.equal(
        swapped.labels[:2], whole.labels[1:]
    )


def test_shift_seed_moves_ints_to_other_streams_and_leaves_generators_alone():
    from scsam_lite.prompts import shift_seed

    assert shift_seed(None, 3) is None
    g = torch.Generator().manual_seed(0)
    assert shift_seed(g, 3) is g
    assert shift_seed(7, 0) == 7
    one, two = shift_seed(7, 1), shift_seed(7, 2)
    assert len({7, one, two}) == 3 and all(0 <= s < 2**63 for s in (one, two))
    assert one == (7 + 0x9E3779B1) % 2**63 and two == (7 + 2 * 0x9E3779B1) % 2**63
    assert shift_seed(2**63 - 1, 1) == (2**63 - 1 + 0x9E3779B1) % 2**63  # wraps, stays a valid seed
    assert shift_seed([7, 8], 1) == [one, shift_seed(8, 1)]
    assert shift_seed(torch.tensor([7, 8]), 1) == [one, shift_seed(8, 1)]
    assert shift_seed(np.array([7, 8]), 1) == [one, shift_seed(8, 1)]
    # a shifted seed is another draw: other points, the same ones again for the same shift
    m = blob()
    assert_same(sample_points(m, 3, 3, seed=shift_seed(7, 1)), sample_points(m, 3, 3, seed=one))
    assert not torch.equal(sample_points(m, 3, 3, seed=one).coords, sample_points(m, 3, 3, seed=7).coords)


@pytest.mark.parametrize("kind", ["points", "box", "points+box"])
def test_prompts_from_masks_gives_what_the_config_asks_for(kind):
    from scsam_lite.config import PromptConfig
    from scsam_lite.prompts import prompts_from_masks

    masks = torch.stack([blob(), blob(rows=(10, 20), cols=(2, 9))])
    cfg = PromptConfig(n_pos=2, n_neg=4, strategy="interior", kind=kind)
    points, boxes = prompts_from_masks(masks, cfg, seed=[3, 4])
    if "points" in kind:
        assert_same(points, sample_points(masks, 2, 4, "interior", seed=[3, 4]))
    else:
        assert points is None
    if "box" in kind:
        assert torch.equal(boxes, boxes_from_masks(masks))
    else:
        assert boxes is None


# --- what mutation testing found untested (docs/records/mutation-testing.md) ------------------------------------


def _error(fn, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        fn(*args, **kwargs)
    return err.value


def test_every_prompt_error_names_the_problem_and_the_fix():
    m = blob()
    cases = [
        (_error(sample_points, m, -1, 5), "n_pos must be a whole number >= 0, got -1", "pass e.g. n_pos=5"),
        (
            _error(sample_points, m, 0, 0),
            "n_pos=0 and n_neg=0 ask for no points at all",
            "ask for at least one point, e.g. n_pos=5",
        ),
        (
            _error(sample_points, np.array([["a"]]), 1, 1),
            "which is not a mask",
            "pass a bool, int or float array",
        ),
        (_error(sample_points, [[1]], 1, 1), "mask is a list", "a batch of shape (B, H, W)"),
        (
            _error(sample_points, torch.zeros(2, 0, 3), 1, 1),
            "an image without pixels",
            "a batch of shape (B, H, W)",
        ),
        (
            _error(sample_points, torch.zeros(2, 3, dtype=torch.complex64), 1, 1),
            "not a mask",
            "pass a bool, int or float tensor",
        ),
        (
            _error(Points(torch.zeros(0, 1, 2), torch.zeros(0, 1)).select, 0),
            "out of range",
            "this batch is empty",
        ),
        (
            _error(sample_points, m, 1, 1, seed=[1.5]),
            "seed 1.5 is not an int",
            "seeds must be whole numbers, e.g. dataset item indices",
        ),
        (
            _error(sample_points, m, 1, 1, seed=[2**64]),
            "is out of range",
            "use a seed between 0 and 2**63 - 1",
        ),
        (
            _error(sample_points, m, 1, 1, seed="ab"),
            "neither an int",
            "pass e.g. seed=0, seed=[the dataset indices of the batch's images] or seed=None",
        ),
        (
            _error(sample_points, m, 1, 1, seed=[1, 2]),
            "2 seeds for a batch of 1 masks",
            "pass one seed per image, or one int for the batch",
        ),
        (_error(point_hits, [(1, 2)], m), "points is a list, not Points", "pass the result of sample_points"),
        (
            _error(point_hits, sample_points(m, 1, 1), torch.stack([m, m])),
            "1 point sets for 2 masks",
            "pass the mask batch the points were sampled from",
        ),
        (_error(boxes_from_masks, m, margin=-2), "margin must be a whole number", "pass e.g. margin=5"),
        (
            _error(Points, torch.zeros(1, 2, 3), torch.zeros(1, 2)),
            "do not fit",
            "coords must be (B, N, 2) and labels (B, N)",
        ),
    ]
    for err, message, fix in cases:
        assert message in err.message and err.fix and fix in err.fix, (err.message, err.fix)
        if not fix.startswith("a batch of shape"):  # the rest word for word
            assert err.fix == fix, (err.message, err.fix)


def test_a_half_is_background_for_arrays_and_tensors_and_one_pixel_wide_images_are_masks():
    half = np.full((4, 4), 0.5)
    half[1, 2] = 0.75
    for mask in (half, torch.from_numpy(half)):
        pos, _ = split(sample_points(mask, 3, 0, seed=0), 3)
        assert pos == [(2, 1), (0, 0), (0, 0)]  # the one pixel above 0.5, then padding
    column = torch.zeros(5, 1, dtype=torch.bool)
    column[3] = True
    assert split(sample_points(column, 1, 0, seed=0), 1)[0] == [(0, 3)]


def test_interior_joins_pixels_that_touch_at_a_corner_into_one_component():
    m = torch.zeros(12, 12, dtype=torch.bool)
    m[2:5, 2:5] = True
    m[5:7, 5:7] = True  # touches the first square only at a corner: one object under 8-connectivity
    m[9:11, 9:11] = True  # a separate object
    pos, _ = split(sample_points(m, 3, 0, "interior", seed=0), 3)
    assert pos[0] == (3, 3)  # the joined object is the largest: its most interior pixel
    assert pos[1] in {(9, 9), (10, 9), (9, 10), (10, 10)}  # then the separate one, not the corner square


def test_default_counts_are_five_and_five_and_an_empty_seed_list_gives_an_empty_batch():
    p = sample_points(blob())
    assert p.coords.shape == (1, 10, 2) and p.labels[0].tolist() == [1] * 5 + [0] * 5
    empty = sample_points(torch.zeros(0, 4, 4, dtype=torch.bool), 1, 1, seed=[])
    assert empty.coords.shape == (0, 2, 2) and empty.labels.shape == (0, 2)


def test_point_hits_counts_negatives_and_refuses_everything_off_the_image():
    m = torch.zeros(4, 5, dtype=torch.bool)
    m[0, :] = m[:, 0] = True
    xy = [[0, 0], [4, 0], [5, 0], [0, 4], [-1, 0], [0, -1], [50, 0], [0, 50], [-50, -50], [2, 2]]
    points = Points(torch.tensor([xy], dtype=torch.float32), torch.tensor([[0, 1, 1, 1, 1, 1, 1, 1, 1, -1]]))
    assert point_hits(points, m)[0].tolist() == [True, True] + [False] * 8


def test_a_box_touching_the_first_row_and_column_ends_there():
    m = torch.zeros(6, 7, dtype=torch.bool)
    m[0, 0] = True
    assert boxes_from_masks(m)[0].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_shift_seed_keeps_every_seed_of_a_list_in_range():
    from scsam_lite.prompts import shift_seed

    big = 2**63 - 1
    assert shift_seed([big, 0], 1) == [(big + 0x9E3779B1) % 2**63, 0x9E3779B1]
