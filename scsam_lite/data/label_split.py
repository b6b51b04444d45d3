"""Which training items keep their labels: the "5% labeled" of a semi-supervised experiment.

Three units, because papers count differently and the count changes the result:

- ``"image"`` (2D datasets): a seeded random choice of images.
- ``"case"`` (volumes, the default there): a seeded random choice of whole cases (patients); every slice of a
  chosen case is labeled. This is how a clinic would label, and a ratio means a ratio of cases (at least one).
- ``"slice"`` (volumes): the first k slices in sorted (case, slice) order, the rule of the reference code: its
  PROMISE12 "5%" is ``labeled=28, unit="slice"``, which labels slices of the first one or two cases only.

With one seed, smaller ratios label a subset of what larger ratios label (both take a prefix of one
permutation), so a 5% run's labels are also labeled in the 10% run. The split's ``description`` is a sentence
that runs save next to their results, so a number is never separated from what it was measured on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError
from .base import SegData
from .images2d import natural_key

UNITS = ("auto", "image", "case", "slice")


@dataclass
class LabelSplit:
    """Indices (into the dataset's arrays) of the labeled and unlabeled training items."""

    labeled: np.ndarray
    unlabeled: np.ndarray
    unit: str
    description: str

    def to_dict(self) -> dict:
        """A JSON-ready record (index lists included) to save with a run."""
        d = asdict(self)
        d["labeled"] = [int(i) for i in self.labeled]
        d["unlabeled"] = [int(i) for i in self.unlabeled]
        return d


def _parse(labeled: object) -> float | int:
    """A ratio (float in (0, 1]) or a count (int); strings such as ``"5%"``, ``"0.05"`` or ``"28"`` too."""
    if isinstance(labeled, str):
        text = labeled.strip()
        try:
            if text.endswith("%"):
                return float(text[:-1]) / 100
            return int(text) if text.isdigit() else float(text)
        except ValueError:
            raise ConfigError(
                f"cannot read labeled={labeled!r}", "give a ratio (0.05 or '5%') or a count (28)"
            ) from None
    if isinstance(labeled, bool) or not isinstance(labeled, (int, float, np.integer, np.floating)):
        raise ConfigError(
            f"labeled must be a ratio or a count, got {labeled!r}", "e.g. labeled=0.05 or labeled=28"
        )
    return int(labeled) if isinstance(labeled, (int, np.integer)) else float(labeled)


def _count(labeled: float | int, n: int, what: str, require_unlabeled: bool) -> int:
    if isinstance(labeled, float):
        if not 0 < labeled <= 1:
            raise ConfigError(
                f"labeled ratio {labeled} is outside (0, 1]",
                "a ratio is a fraction like 0.05; counts are ints",
            )
        k = max(1, math.floor(labeled * n + 0.5))
    else:
        k = labeled
        if k > n:
            raise ConfigError(f"labeled={k} but the split has only {n} {what}", f"ask for at most {n} {what}")
    if k <= 0:
        raise ConfigError(f"labeled={labeled} leaves no labeled {what}", "label at least one item")
    if k == n and require_unlabeled:
        raise ConfigError(
            f"labeled={labeled} labels all {n} {what} and leaves none unlabeled for semi-supervised training",
            "label fewer, or pass require_unlabeled=False for a fully supervised run",
        )
    return k


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}%"


def _resolve_unit(data: SegData, unit: str) -> str:
    """The unit ``"auto"`` stands for, or ``unit`` itself once it is checked to fit the data's dimensionality.

    Apart from :func:`make_label_split` so that the rules for 2D and volumetric data read in one place.
    """
    volumes = data.is_volumetric
    if unit == "auto":
        unit = "case" if volumes else "image"
    if not volumes and unit == "case":
        unit = "image"  # each 2D image is its own case
    if not volumes and unit == "slice":
        raise ConfigError(f"{data.name} is 2D: it has no slices", "use unit='image' (or 'auto')")
    if volumes and unit == "image":
        raise ConfigError(
            f"{data.name} is volumetric: label by 'case' (whole patients) or 'slice' (the reference's first-k "
            "slices)",
            "use unit='case' (the default) or unit='slice'",
        )
    return unit


def _choose_labeled(
    data: SegData,
    pool: np.ndarray,
    want: float | int,
    unit: str,
    split: str,
    seed: int,
    require_unlabeled: bool,
) -> tuple[np.ndarray, str]:
    """The labeled items of ``pool`` by ``unit`` (a resolved one) and the sentence that describes the choice.

    Kept out of :func:`make_label_split` so that the three counting rules sit side by side. The generator is
    seeded from ``seed`` alone (the unlabeled subset draws from a stream of its own), so a seed always labels
    the same items.
    """
    asked = f", asked {want:.4g}" if isinstance(want, float) else ""
    rng = np.random.default_rng(seed)
    if unit == "image":
        k = _count(want, len(pool), "images", require_unlabeled)
        chosen = np.sort(rng.permutation(pool)[:k])
        text = (
            f"{k} of {len(pool)} {split} images labeled ({_pct(k, len(pool))}{asked}), by image, seed {seed}"
        )
    elif unit == "case":
        cases = sorted({data.cases[i] for i in pool}, key=natural_key)
        k = _count(want, len(cases), "cases", require_unlabeled)
        picked = {cases[i] for i in rng.permutation(len(cases))[:k]}
        chosen = np.asarray([i for i in pool if data.cases[i] in picked], dtype=np.int64)
        text = (
            f"{k} of {len(cases)} {split} cases labeled ({_pct(k, len(cases))}{asked}; {len(chosen)} of "
            f"{len(pool)} slices), by case, seed {seed}: {', '.join(sorted(picked, key=natural_key))}"
        )
    else:
        order = sorted(pool, key=lambda i: (natural_key(data.cases[i]), natural_key(data.ids[i])))
        k = _count(want, len(pool), "slices", require_unlabeled)
        chosen = np.sort(np.asarray(order[:k], dtype=np.int64))
        text = (
            f"first {k} of {len(pool)} {split} slices labeled ({_pct(k, len(pool))}{asked}) in sorted "
            f"(case, slice) order, by slice (the reference's rule; seed not used)"
        )
    return chosen, text


def make_label_split(
    data: SegData,
    labeled: float | int | str,
    *,
    seed: int = 0,
    unit: str = "auto",
    split: str = "train",
    require_unlabeled: bool = True,
    unlabeled_limit: int | None = None,
) -> LabelSplit:
    """Choose the labeled items of ``data.splits[split]``; the rest are unlabeled.

    Args:
        labeled: a ratio (float in (0, 1], e.g. 0.05) or a count (int, e.g. 28): ``1.0`` is everything, ``1``
            is one item. A ratio is rounded to the nearest count, at least 1.
        seed: which items (cases) are chosen for units ``"image"`` and ``"case"``.
        unit: ``"auto"`` (``"case"`` for volumes, ``"image"`` for 2D), ``"image"``, ``"case"`` or ``"slice"``.
        require_unlabeled: when true (semi-supervised runs), a split that leaves nothing unlabeled is an error.
        unlabeled_limit: use at most this many unlabeled items (whole cases for volumes, as many as fit), a
            seeded subset of the rest; None: all of them. The labeled items do not depend on it. A CPU profile
            uses it to embed and learn from fewer unlabeled images.
    """
    if unit not in UNITS:
        raise ConfigError(f"unknown label unit {unit!r}", f"use one of {', '.join(UNITS)}")
    if split not in data.splits:
        raise ConfigError(f"{data.name} has no split {split!r}", f"use one of {', '.join(data.splits)}")
    pool = np.asarray(data.splits[split], dtype=np.int64)
    if len(pool) == 0:
        raise ConfigError(f"the {split} split of {data.name} is empty", "use a split that holds items")
    want = _parse(labeled)
    unit = _resolve_unit(data, unit)
    chosen, text = _choose_labeled(data, pool, want, unit, split, seed, require_unlabeled)
    unlabeled = np.setdiff1d(pool, chosen).astype(np.int64)
    if unlabeled_limit is not None and unlabeled_limit < len(unlabeled):
        unlabeled, used = _subset(data, unlabeled, unlabeled_limit, seed)
        text += f"; {used} of the unlabeled used (at most {unlabeled_limit}, seed {seed})"
    return LabelSplit(labeled=chosen.astype(np.int64), unlabeled=unlabeled, unit=unit, description=text)


def _subset(data: SegData, unlabeled: np.ndarray, limit: int, seed: int) -> tuple[np.ndarray, str]:
    """A seeded subset of at most ``limit`` unlabeled items (whole cases for volumes) and how it is described."""
    if limit < 1:
        raise ConfigError(
            f"data.unlabeled_limit={limit} leaves no unlabeled item", "use a positive count or none"
        )
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the labeled choice does not move
    if not data.is_volumetric:
        kept = np.sort(rng.permutation(unlabeled)[:limit])
        return kept, f"{len(kept)} of {len(unlabeled)} images"
    by_case: dict[str, list[int]] = {}
    for i in unlabeled:
        by_case.setdefault(data.cases[i], []).append(int(i))
    kept_cases, kept = [], []
    for c in rng.permutation(sorted(by_case, key=natural_key)):
        if len(kept) + len(by_case[c]) <= limit:
            kept_cases.append(c)
            kept += by_case[c]
    if not kept:
        raise ConfigError(
            f"data.unlabeled_limit={limit} is smaller than any unlabeled case", "raise it or set it to none"
        )
    text = f"{len(kept_cases)} of {len(by_case)} cases ({len(kept)} slices)"
    return np.sort(np.asarray(kept, np.int64)), text
