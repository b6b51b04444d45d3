"""Weak and strong views: aligned image/mask geometry, photometric-only strong views, pure functions of a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scsam_lite.data import load_dataset, strong_view, weak_view


@pytest.fixture(scope="module")
def masks():
    return torch.from_numpy(load_dataset("synthetic-polyp", n_images=48).masks).long()


def test_weak_view_keeps_image_and_mask_aligned(masks):
    """An image drawn from the mask, once augmented, thresholds back to the augmented mask."""
    image = masks[:, None].float().repeat(1, 3, 1, 1) * 0.8 + 0.1
    moved = 0
    for seed in range(10):
        out, m = weak_view(image, masks, seed=seed)
        assert out.shape == image.shape and m.shape == masks.shape and m.dtype == torch.int64
        assert set(m.unique().tolist()) <= {0, 1}
        agree = ((out[:, 0] > 0.45).long() == m).float().mean(dim=(1, 2))
        assert agree.min() > 0.99
        moved += int((m != masks).any(dim=(1, 2)).sum())
    assert moved > 0  # the transform does move things


def test_weak_view_quarter_turns_are_exact():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    seen = set()
    for seed in range(40):
        out, _ = weak_view(x, None, seed=seed)
        vals = sorted(out.flatten().tolist())
        if vals == list(range(16)):  # no small rotation drawn: a pure rot90/flip, a permutation of pixels
            seen.add(tuple(out.flatten().tolist()))
    assert len(seen) >= 4


def test_views_are_pure_functions_of_seed(masks):
    image = torch.rand(8, 3, 64, 64)
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = weak_view(image, masks[:8], seed=7)
    b = weak_view(image, masks[:8], seed=7)
    s1, s2 = strong_view(image, seed=7), strong_view(image, seed=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(s1, s2)
    assert torch.equal(torch.rand(1), before)  # the global random state was not used
    assert not torch.equal(weak_view(image, masks[:8], seed=8)[0], a[0])
    assert not torch.equal(strong_view(image, seed=8), s1)


def test_strong_view_is_photometric_only():
    image = torch.zeros(16, 3, 64, 64)
    image[:, :, 20:40, 10:30] = 0.8
    image += 0.1
    out = strong_view(image, seed=1)
    assert out.shape == image.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, image)
    inside = out[:, :, 22:38, 12:28].mean(dim=(1, 2, 3))
    outside = out[:, :, 45:, 35:].mean(dim=(1, 2, 3))
    assert (inside > outside + 0.2).all()  # the square stays where it was


def test_grayscale_and_empty_batches():
    x = torch.rand(3, 1, 32, 32)
    assert strong_view(x, seed=0).shape == x.shape
    assert weak_view(x, None, seed=0)[0].shape == x.shape
    empty = torch.zeros(0, 3, 32, 32)
    assert (
        weak_view(empty, None, seed=0)[0].shape == empty.shape
        and strong_view(empty, seed=0).shape == empty.shape
    )
    with pytest.raises(ValueError):
        weak_view(torch.zeros(3, 32, 32), None, seed=0)


def test_values_stay_in_range():
    x = torch.rand(12, 3, 32, 32)
    for seed in range(5):
        w, _ = weak_view(x, None, seed=seed)
        s = strong_view(w, seed=seed)
        assert float(w.min()) >= 0 and float(w.max()) <= 1 + 1e-6
        assert float(s.min()) >= 0 and float(s.max()) <= 1
        assert np.isfinite(s.numpy()).all()
