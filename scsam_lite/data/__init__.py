"""Datasets for scsam-lite: loading, label-ratio splits, augmentation and two-stream batches.

    from scsam_lite.data import load_dataset, make_label_split, TwoStreamBatches

    data = load_dataset("synthetic-polyp")              # or "kvasir-seg", "cvc-clinicdb", "promise12"
    split = make_label_split(data, 0.05, seed=0)         # 5% of the training images keep their labels
    batches = TwoStreamBatches(data, split, seed=0)
    b = batches.batch(0)                                 # b.labeled_image, b.labeled_mask, b.unlabeled_image

Modules: ``registry`` (DATASETS, load_dataset), ``discover`` (finding a copy on disk), ``cache`` (decode once),
``preprocess`` (resizing, mask checks), ``images2d`` (image/mask pairs), ``kvasir``, ``cvc``, ``promise12``,
``synthetic``, ``partition`` (train/val/test rules), ``label_split``, ``augment``, ``batches``.

Names are imported lazily, so ``import scsam_lite.data.discover`` (the downloader does) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "DATASETS": "registry",
    "DatasetSpec": "registry",
    "load_dataset": "registry",
    "make_label_split": "label_split",
    "LabelSplit": "label_split",
    "TwoStreamBatches": "batches",
    "Batch": "batches",
    "weak_view": "augment",
    "strong_view": "augment",
    "SegData": "base",
    "find_existing": "discover",
}

__all__ = [
    "DATASETS",
    "Batch",
    "DatasetSpec",
    "LabelSplit",
    "SegData",
    "TwoStreamBatches",
    "find_existing",
    "load_dataset",
    "make_label_split",
    "strong_view",
    "weak_view",
]

if TYPE_CHECKING:  # for editors and type checkers
    from .augment import strong_view, weak_view
    from .base import SegData
    from .batches import Batch, TwoStreamBatches
    from .discover import find_existing
    from .label_split import LabelSplit, make_label_split
    from .registry import DATASETS, DatasetSpec, load_dataset


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
