"""Train/val/test partitions of the real datasets: fixed, documented rules that do not depend on a run's seed.

A run's seed changes which images get labels (:mod:`scsam_lite.data.label_split`), never which images are
held out, so that runs with different seeds are scored on the same validation and test images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from importlib import resources

import numpy as np

from ..errors import ConfigError


def shipped_ids(filename: str) -> list[str]:
    """An id list shipped with the package (``scsam_lite/data/splits/<filename>``), one id a line."""
    text = (
        resources.files("scsam_lite.data").joinpath("splits").joinpath(filename).read_text(encoding="utf-8")
    )
    return [line.strip() for line in text.splitlines() if line.strip()]


def check_fraction(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a fraction in [0, 1), got {value!r}", f"e.g. {name}=0.1")
    return float(value)


def hashed_holdout(ids: Sequence[str], fraction: float, salt: str) -> np.ndarray:
    """A boolean mask choosing ``round(fraction * len(ids))`` of ``ids`` by the hash of ``salt + id``.

    Unlike a seeded permutation, an id's fate does not depend on which other ids are present or in what order,
    so the held-out set is the same on every machine and for every copy of the dataset.
    """
    n_out = int(round(fraction * len(ids)))
    order = sorted(range(len(ids)), key=lambda i: hashlib.sha256((salt + ids[i]).encode()).hexdigest())
    out = np.zeros(len(ids), dtype=bool)
    out[order[:n_out]] = True
    return out


def contiguous_blocks(n: int, val_fraction: float, test_fraction: float) -> dict[str, np.ndarray]:
    """Indices ``0..n-1`` (in frame order) cut into three contiguous blocks: train, then val, then test.

    For video frames: neighbouring frames are near-duplicates, so a random split would put the same polyp in
    train and test. Three blocks have only two borders where one video can straddle two splits.
    """
    n_val = int(round(val_fraction * n))
    n_test = int(round(test_fraction * n))
    n_train = n - n_val - n_test
    if n_train <= 0:
        raise ConfigError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} leave no training frames",
            "use smaller fractions (the defaults are 0.1 and 0.1)",
        )
    idx = np.arange(n, dtype=np.int64)
    return {"train": idx[:n_train], "val": idx[n_train : n_train + n_val], "test": idx[n_train + n_val :]}


def _hash_order(names: Iterable[str], salt: str) -> list[str]:
    return sorted(names, key=lambda g: hashlib.sha256((salt + g).encode()).hexdigest())


def whole_groups(
    groups: Sequence[str], val_fraction: float, test_fraction: float, salt: str
) -> dict[str, np.ndarray]:
    """Item indices split so that every group (a video, a patient) lies whole in train, val or test.

    Groups are visited in the order of a hash of ``salt + name`` (the same on every machine, whatever else is
    present); a group goes to test when it brings test closer to ``test_fraction`` of the items, then likewise to
    val; the rest is train. Groups differ in size, so the fractions are met only approximately.
    """
    arr = np.asarray(groups, dtype=str)
    names, sizes = np.unique(arr, return_counts=True)
    size = dict(zip(names.tolist(), sizes.tolist(), strict=True))
    chosen: dict[str, str] = {}
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        target, count = fraction * len(arr), 0
        for g in _hash_order(size, salt):
            if g not in chosen and abs(count + size[g] - target) < abs(count - target):
                chosen[g] = split
                count += size[g]
    where = np.array([chosen.get(g, "train") for g in arr.tolist()])
    out = {k: np.flatnonzero(where == k).astype(np.int64) for k in ("train", "val", "test")}
    if len(out["train"]) == 0:
        raise ConfigError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} leave no group for training",
            "use smaller fractions (the defaults are 0.1 and 0.1)",
        )
    return out


def group_names(groups: Sequence[str], indices: np.ndarray) -> list[str]:
    """The distinct groups of ``indices``, in order of first appearance."""
    return list(dict.fromkeys(groups[int(i)] for i in indices))


def by_case(
    cases: Sequence[str], val_cases: Iterable[str], test_cases: Iterable[str]
) -> dict[str, np.ndarray]:
    """Item indices split by case: every item of a val (test) case goes to val (test), the rest to train."""
    val, test = set(val_cases), set(test_cases)
    both = sorted(val & test)
    if both:
        raise ConfigError(
            f"cases {', '.join(both)} are in both val_cases and test_cases", "list each case once"
        )
    arr = np.asarray(cases)
    in_val = np.isin(arr, sorted(val))
    in_test = np.isin(arr, sorted(test))
    return {
        "train": np.flatnonzero(~in_val & ~in_test).astype(np.int64),
        "val": np.flatnonzero(in_val).astype(np.int64),
        "test": np.flatnonzero(in_test).astype(np.int64),
    }


def case_ranges(cases: Sequence[str]) -> str:
    """``Case35-39, Case41`` for a list of case names (runs of consecutive numbers collapsed)."""
    nums = sorted({int(c[4:]) for c in cases if c[4:].isdigit()})
    width = max((len(c) - 4 for c in cases), default=2)
    runs: list[list[int]] = []
    for n in nums:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [f"Case{r[0]:0{width}d}" + (f"-{r[-1]:0{width}d}" if len(r) > 1 else "") for r in runs]
    parts += sorted(c for c in cases if not c[4:].isdigit())
    return ", ".join(parts) or "none"
