"""Two-stream batches: a few labeled and a few unlabeled images per step, as in SSL4MIS's two-stream sampler.

:meth:`TwoStreamBatches.batch` is a pure function of ``(seed, step)``: which items, in which order and with
which augmentation all follow from those two numbers. A run resumed at step k therefore needs no sampler
state and sees exactly the batches an uninterrupted run would have seen.

Each stream walks through its items in epochs: a fresh permutation per epoch (seeded by ``(seed, stream,
epoch)``), so every labeled image is used once per pass over the labeled set, however small that set is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .augment import weak_view
from .base import SegData
from .label_split import LabelSplit

_LABELED, _UNLABELED, _AUG_L, _AUG_U = 1, 2, 3, 4


@dataclass
class Batch:
    """One training step's inputs, on the sampler's device.

    ``labeled_image`` ``(B, C, H, W)`` float32 in [0, 1], ``labeled_mask`` ``(B, H, W)`` int64,
    ``unlabeled_image`` ``(B2, C, H, W)`` (``B2 = 0`` when there is nothing unlabeled), and the dataset
    indices of both streams. ``labeled_aug_seed`` / ``unlabeled_aug_seed``: the seeds of their
    :func:`~scsam_lite.data.augment.weak_view` (``None``: not augmented), so that labels made on the un-augmented
    images can be warped into the batch's frame with :func:`~scsam_lite.data.augment.weak_view_masks`.
    """

    labeled_image: torch.Tensor
    labeled_mask: torch.Tensor
    unlabeled_image: torch.Tensor
    labeled_index: np.ndarray
    unlabeled_index: np.ndarray
    labeled_aug_seed: int | None = None
    unlabeled_aug_seed: int | None = None


def load_images(data: SegData, index: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """Items ``index`` of ``data`` as float images ``(B, C, H, W)`` in [0, 1] on ``device``, un-augmented."""
    index = np.asarray(index, dtype=np.int64)
    # sort for a sequential read of memory-mapped arrays, then restore the asked order
    order = np.argsort(index, kind="stable")
    arr = np.empty((len(index), *data.images.shape[1:]), np.uint8)
    arr[order] = data.images[index[order]]
    t = torch.from_numpy(arr).to(device, non_blocking=True)
    return t.permute(0, 3, 1, 2).float().div_(255).contiguous()


def load_masks(data: SegData, index: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """Items ``index`` of ``data`` as int64 masks ``(B, H, W)`` on ``device``, un-augmented."""
    index = np.asarray(index, dtype=np.int64)
    order = np.argsort(index, kind="stable")
    arr = np.empty((len(index), *data.masks.shape[1:]), np.uint8)
    arr[order] = data.masks[index[order]]
    return torch.from_numpy(arr).to(device).long()


def _seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from several integers (so neighbouring steps get unrelated streams)."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1
    )


class _Stream:
    """Positions ``step * size ...`` of an endless sequence of per-epoch permutations of ``items``."""

    def __init__(self, items: np.ndarray, size: int, seed: int, stream: int) -> None:
        self.items, self.size, self.seed, self.stream = items, size, seed, stream
        self._perm: tuple[int, np.ndarray] | None = None  # the last epoch's permutation (a cache, not state)

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng(_seed(self.seed, self.stream, epoch))
            self._perm = (epoch, rng.permutation(self.items))
        return self._perm[1]

    def take(self, step: int) -> np.ndarray:
        n = len(self.items)
        if self.size == 0 or n == 0:
            return np.zeros(0, dtype=np.int64)
        pos = step * self.size + np.arange(self.size)
        return np.asarray([self._permutation(int(p // n))[int(p % n)] for p in pos], dtype=np.int64)


class TwoStreamBatches:
    """Batches of ``n_labeled`` labeled and ``n_unlabeled`` unlabeled images from a :class:`LabelSplit`.

    Args:
        data: the dataset (arrays stay on the CPU, memory-mapped or not; only the batch moves).
        split: which training items are labeled and unlabeled.
        seed: the run's seed; with ``step`` it fixes every batch.
        device: where the batch tensors are made (augmentation runs there too).
        augment: ``"weak"`` (flips, quarter turns, small rotation/zoom on both streams, see
            :func:`~scsam_lite.data.augment.weak_view`) or ``"none"``. Strong views are the trainer's to make,
            on top of the weak unlabeled images.
    """

    def __init__(
        self,
        data: SegData,
        split: LabelSplit,
        n_labeled: int = 6,
        n_unlabeled: int = 6,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        augment: str = "weak",
    ) -> None:
        if augment not in ("weak", "none"):
            raise ConfigError(f"unknown augment {augment!r}", "use augment='weak' or augment='none'")
        if n_labeled < 1 or n_unlabeled < 0:
            raise ConfigError(
                f"batch sizes must be n_labeled >= 1 and n_unlabeled >= 0, got {n_labeled} and {n_unlabeled}",
                "e.g. n_labeled=6, n_unlabeled=6",
            )
        if len(split.labeled) == 0:
            raise ConfigError("the label split has no labeled items", "label at least one item")
        self.data, self.split, self.seed, self.augment = data, split, int(seed), augment
        self.device = torch.device(device)
        self.n_labeled, self.n_unlabeled = n_labeled, n_unlabeled
        self._labeled = _Stream(np.asarray(split.labeled, np.int64), n_labeled, self.seed, _LABELED)
        self._unlabeled = _Stream(np.asarray(split.unlabeled, np.int64), n_unlabeled, self.seed, _UNLABELED)

    def steps_per_epoch(self) -> int:
        """Steps for one pass over the labeled items."""
        return -(-len(self.split.labeled) // self.n_labeled)

    def batch(self, step: int) -> Batch:
        """The batch of ``step`` (0, 1, 2, ...): the same step always gives the same tensors."""
        if step < 0:
            raise ConfigError(f"step must be >= 0, got {step}", "count steps from 0")
        li = self._labeled.take(step)
        ui = self._unlabeled.take(step)
        limg = load_images(self.data, li, self.device)
        lmask = load_masks(self.data, li, self.device)
        uimg = load_images(self.data, ui, self.device)
        if self.augment != "weak":
            return Batch(limg, lmask, uimg, li, ui)
        lseed, useed = _seed(self.seed, _AUG_L, step), _seed(self.seed, _AUG_U, step)
        limg, lmask = weak_view(limg, lmask, seed=lseed)
        uimg, _ = weak_view(uimg, None, seed=useed)
        return Batch(limg, lmask, uimg, li, ui, lseed, useed)

    def __iter__(self):
        """Endless batches from step 0 (use :meth:`batch` to start elsewhere)."""
        step = 0
        while True:
            yield self.batch(step)
            step += 1
