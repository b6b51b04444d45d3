"""Label-ratio splits: sizes, determinism, units, and the errors for ratios that leave a stream empty."""

from __future__ import annotations

import numpy as np
import pytest

from scsam_lite.data import LabelSplit, load_dataset, make_label_split
from scsam_lite.errors import ConfigError


@pytest.fixture(scope="module")
def polyp():
    return load_dataset("synthetic-polyp")


@pytest.fixture(scope="module")
def prostate():
    return load_dataset("synthetic-prostate")


def test_ratio_and_count(polyp):
    n = len(polyp.splits["train"])
    s = make_label_split(polyp, 0.05)
    assert isinstance(s, LabelSplit) and s.unit == "image"
    assert len(s.labeled) == round(0.05 * n) and len(s.labeled) + len(s.unlabeled) == n
    assert set(s.labeled) | set(s.unlabeled) == set(polyp.splits["train"].tolist())
    assert not set(s.labeled) & set(s.unlabeled)
    assert f"{len(s.labeled)} of {n} train images labeled" in s.description and "seed 0" in s.description
    assert len(make_label_split(polyp, 28).labeled) == 28
    assert len(make_label_split(polyp, "5%").labeled) == len(s.labeled)
    assert len(make_label_split(polyp, 1).labeled) == 1  # int 1 is one image, float 1.0 is all of them


def test_deterministic_seeded_and_nested(polyp):
    a, b = make_label_split(polyp, 0.1, seed=3), make_label_split(polyp, 0.1, seed=3)
    assert np.array_equal(a.labeled, b.labeled)
    assert not np.array_equal(a.labeled, make_label_split(polyp, 0.1, seed=4).labeled)
    small = make_label_split(polyp, 0.05, seed=3)
    assert set(small.labeled) <= set(a.labeled)


def test_volumes_label_by_case(prostate):
    s = make_label_split(prostate, 0.05)
    assert s.unit == "case"
    labeled_cases = {prostate.cases[i] for i in s.labeled}
    assert len(labeled_cases) == 2  # 5% of 35 train cases, rounded
    assert not labeled_cases & {prostate.cases[i] for i in s.unlabeled}  # whole cases only
    train_cases = prostate.split_cases("train")
    assert sum(len(train_cases[c]) for c in labeled_cases) == len(s.labeled)
    assert "2 of 35 train cases labeled" in s.description and "by case" in s.description
    at_least_one = make_label_split(prostate, 0.001)
    assert len({prostate.cases[i] for i in at_least_one.labeled}) == 1
    assert len({prostate.cases[i] for i in make_label_split(prostate, 3).labeled}) == 3


def test_slice_unit_takes_the_first_sorted_slices(prostate):
    s = make_label_split(prostate, 28, unit="slice", seed=5)
    assert s.unit == "slice" and len(s.labeled) == 28
    order = sorted(prostate.splits["train"], key=lambda i: (prostate.cases[i], prostate.ids[i]))
    assert s.labeled.tolist() == sorted(order[:28])
    assert np.array_equal(s.labeled, make_label_split(prostate, 28, unit="slice", seed=9).labeled)
    assert "first 28" in s.description and "slice" in s.description


def test_zero_labeled_or_zero_unlabeled_is_an_error(polyp):
    n = len(polyp.splits["train"])
    for bad in (0, 0.0, -0.1, 1.5, n + 1):
        with pytest.raises(ConfigError):
            make_label_split(polyp, bad)
    with pytest.raises(ConfigError, match="none unlabeled") as err:
        make_label_split(polyp, 1.0)
    assert "require_unlabeled=False" in err.value.fix
    with pytest.raises(ConfigError, match="none unlabeled"):
        make_label_split(polyp, n)
    full = make_label_split(polyp, 1.0, require_unlabeled=False)
    assert len(full.labeled) == n and len(full.unlabeled) == 0


def test_bad_units_and_splits(polyp, prostate):
    with pytest.raises(ConfigError, match="no slices"):
        make_label_split(polyp, 0.1, unit="slice")
    with pytest.raises(ConfigError, match="volumetric"):
        make_label_split(prostate, 0.1, unit="image")
    with pytest.raises(ConfigError, match="unknown label unit"):
        make_label_split(polyp, 0.1, unit="patient")
    with pytest.raises(ConfigError, match="no split"):
        make_label_split(polyp, 0.1, split="training")
    with pytest.raises(ConfigError):
        make_label_split(polyp, True)
    with pytest.raises(ConfigError):
        make_label_split(polyp, "lots")


def test_other_pool_and_to_dict(polyp):
    s = make_label_split(polyp, 0.5, split="val")
    assert set(s.labeled) <= set(polyp.splits["val"].tolist())
    d = s.to_dict()
    assert d["unit"] == "image" and d["labeled"] == s.labeled.tolist() and isinstance(d["description"], str)


def test_unlabeled_limit_takes_a_seeded_subset_and_leaves_the_labels_alone(polyp, prostate):
    full = make_label_split(polyp, 0.05, seed=2)
    some = make_label_split(polyp, 0.05, seed=2, unlabeled_limit=30)
    assert np.array_equal(full.labeled, some.labeled)
    assert len(some.unlabeled) == 30 and set(some.unlabeled) <= set(full.unlabeled)
    assert np.array_equal(some.unlabeled, make_label_split(polyp, 0.05, seed=2, unlabeled_limit=30).unlabeled)
    assert not np.array_equal(
        some.unlabeled, make_label_split(polyp, 0.05, seed=3, unlabeled_limit=30).unlabeled
    )
    assert "30 of" in some.description and "at most 30" in some.description
    assert np.array_equal(
        make_label_split(polyp, 0.05, unlabeled_limit=10_000).unlabeled,
        make_label_split(polyp, 0.05).unlabeled,
    )
    # volumes: whole cases, as many as fit
    vol = make_label_split(prostate, 1, unlabeled_limit=40)
    cases = {prostate.cases[i] for i in vol.unlabeled}
    per_case = {c: sum(prostate.cases[i] == c for i in prostate.splits["train"]) for c in cases}
    assert 0 < len(vol.unlabeled) <= 40 and sum(per_case.values()) == len(vol.unlabeled)
    with pytest.raises(ConfigError, match="unlabeled_limit"):
        make_label_split(polyp, 0.05, unlabeled_limit=0)
