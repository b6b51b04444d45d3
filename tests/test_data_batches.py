"""TwoStreamBatches: batches are a pure function of (seed, step), with the right shapes and coverage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scsam_lite.data import Batch, TwoStreamBatches, batches, load_dataset, make_label_split, weak_view
from scsam_lite.errors import ConfigError


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic-polyp", n_images=120)


@pytest.fixture(scope="module")
def split(data):
    return make_label_split(data, 20)


def _same(a: Batch, b: Batch) -> bool:
    return (
        torch.equal(a.labeled_image, b.labeled_image)
        and torch.equal(a.labeled_mask, b.labeled_mask)
        and torch.equal(a.unlabeled_image, b.unlabeled_image)
        and np.array_equal(a.labeled_index, b.labeled_index)
        and np.array_equal(a.unlabeled_index, b.unlabeled_index)
    )


def test_shapes_and_types(data, split):
    b = TwoStreamBatches(data, split, 6, 4, seed=0).batch(0)
    assert b.labeled_image.shape == (6, 3, 64, 64) and b.labeled_image.dtype == torch.float32
    assert b.labeled_mask.shape == (6, 64, 64) and b.labeled_mask.dtype == torch.int64
    assert b.unlabeled_image.shape == (4, 3, 64, 64)
    assert 0 <= float(b.labeled_image.min()) and float(b.labeled_image.max()) <= 1
    assert set(b.labeled_index) <= set(split.labeled) and set(b.unlabeled_index) <= set(split.unlabeled)


def test_pure_function_of_seed_and_step(data, split):
    fresh = TwoStreamBatches(data, split, seed=3)
    walked = TwoStreamBatches(data, split, seed=3)
    for step in range(12):
        walked.batch(step)
    assert _same(fresh.batch(11), walked.batch(11))  # resuming at step 11 needs no sampler state
    assert _same(fresh.batch(11), fresh.batch(11))
    assert not _same(fresh.batch(11), fresh.batch(12))
    assert not _same(fresh.batch(11), TwoStreamBatches(data, split, seed=4).batch(11))


def test_without_augmentation_the_batch_is_the_data(data, split):
    b = TwoStreamBatches(data, split, augment="none").batch(2)
    expected = torch.from_numpy(data.images[b.labeled_index]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(b.labeled_image, expected)
    assert torch.equal(b.labeled_mask, torch.from_numpy(data.masks[b.labeled_index]).long())


def test_augmented_mask_follows_the_image(data, split):
    plain = TwoStreamBatches(data, split, augment="none").batch(5)
    aug = TwoStreamBatches(data, split, augment="weak").batch(5)
    assert np.array_equal(plain.labeled_index, aug.labeled_index)
    assert not torch.equal(plain.labeled_image, aug.labeled_image)
    # the batch is the plain batch put through one weak_view call: image and mask moved together
    image, mask = weak_view(plain.labeled_image, plain.labeled_mask, seed=batches._seed(0, batches._AUG_L, 5))
    assert torch.equal(image, aug.labeled_image) and torch.equal(mask, aug.labeled_mask)


def test_each_labeled_item_once_per_epoch(data, split):
    sampler = TwoStreamBatches(data, split, 5, 5, seed=1, augment="none")
    assert sampler.steps_per_epoch() == 4
    seen = np.concatenate([sampler.batch(s).labeled_index for s in range(4)])
    assert sorted(seen.tolist()) == sorted(split.labeled.tolist())
    second = np.concatenate([sampler.batch(s).labeled_index for s in range(4, 8)])
    assert sorted(second.tolist()) == sorted(split.labeled.tolist()) and not np.array_equal(seen, second)


def test_fewer_labeled_items_than_the_batch(data):
    split = make_label_split(data, 2)
    b = TwoStreamBatches(data, split, 6, 6).batch(0)
    assert b.labeled_image.shape[0] == 6 and set(b.labeled_index) == set(split.labeled)


def test_supervised_split_gives_an_empty_unlabeled_stream(data):
    split = make_label_split(data, 1.0, require_unlabeled=False)
    b = TwoStreamBatches(data, split).batch(0)
    assert b.unlabeled_image.shape == (0, 3, 64, 64) and len(b.unlabeled_index) == 0


def test_volumes_and_bad_arguments():
    vol = load_dataset("synthetic-prostate", n_cases=10)
    b = TwoStreamBatches(vol, make_label_split(vol, 0.3)).batch(0)
    assert b.labeled_image.shape[1] == 1
    with pytest.raises(ConfigError):
        TwoStreamBatches(vol, make_label_split(vol, 0.3), augment="strong")
    with pytest.raises(ConfigError):
        TwoStreamBatches(vol, make_label_split(vol, 0.3), n_labeled=0)
    with pytest.raises(ConfigError):
        TwoStreamBatches(vol, make_label_split(vol, 0.3)).batch(-1)
