"""Point and box prompts for SAM, made from masks.

SC-SAM never asks a person to click: it turns a mask (the U-Net's hard prediction while co-training, or the ground
truth when SAM is fine-tuned or benchmarked alone) into prompts for SAM. Every point prompt in this package is
sampled here, by :func:`sample_points`; :func:`boxes_from_masks` gives the box prompt of the same mask.

Coordinates
    A point is ``(x, y) = (column, row)``, in pixel indices of the *mask* it was sampled from, so that
    ``mask[b, y, x]`` is the pixel it sits on. That is SAM's own order (its prompt encoder takes ``(x, y)``), but SAM
    wants them in the frame of its resized input, pixel centre to pixel centre:
    ``x' = (x + 0.5) * W_sam / W_mask - 0.5`` and likewise for y (:mod:`scsam_lite.generalist` does this; SAM's
    prompt encoder then adds 0.5 itself). The reference implementation swaps x and y, which mirrors every point
    across the diagonal; a test pins the convention used here.

Layout
    :class:`Points` holds ``n_pos + n_neg`` slots per image: the positives (label 1) first, then the negatives
    (label 0). A slot that cannot be filled keeps its place and holds coordinates ``(0, 0)`` with label ``-1``, SAM's
    "not a point": SAM ignores the position of such a point and adds its learned not-a-point embedding instead. So
    every image of a batch has the same number of points, and one batched SAM call serves them all.

Edge cases (none of them raises)
    - empty foreground: every positive slot is padding (SAM gets negatives only);
    - fewer foreground pixels than ``n_pos``: all of them, the remaining positive slots padded;
    - no background (all foreground), or fewer background pixels than ``n_neg``: likewise for the negatives;
    - ``n_pos=0`` or ``n_neg=0`` gives no slots of that kind; both 0 is a :class:`ConfigError`.

Strategies (:data:`STRATEGIES`)
    - ``"random"`` (the reference's): positives uniform without replacement among the foreground pixels, negatives
      uniform without replacement among the background pixels. One random score per pixel, masked, top-k: no loop
      over pixels.
    - ``"interior"``: the first positives are the most interior pixel (largest distance to the background) of each
      connected component (8-connectivity), the largest component first, up to ``n_pos``; the other positive slots
      are uniform among the remaining foreground pixels, the negatives as in ``"random"``. The image border counts
      as background here, so an object cut off by the border is not prompted at its cut edge. Where several pixels
      are equally interior (a rectangle's ridge), the one nearest the component's centroid wins. A click in the
      middle of each object is what a person would give; uniform points may fall on an object's rim.

Seeds
    ``seed`` is an int (one generator for the batch), a sequence of one int per image (one generator per image, so
    an image gets the same prompts whatever batch it is in: evaluation passes the dataset item indices), a
    ``torch.Generator`` (used as is) or None (torch's global RNG). Int seeds draw on the CPU and move the scores to
    the mask's device, so a seed gives the same prompts on a laptop and on a GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from .errors import ConfigError
from .registry import unknown_name

#: The point-sampling strategies :func:`sample_points` knows.
STRATEGIES = ("random", "interior")
#: SAM's label for a slot that holds no point.
PAD_LABEL = -1

Seed = int | Sequence[int] | torch.Generator | None

_MASK_FIX = "pass one mask of shape (H, W) or a batch of shape (B, H, W); for (B, 1, H, W) use mask[:, 0]"


@dataclass
class Points:
    """Point prompts for a batch: ``coords`` (B, N, 2) float32 ``(x, y)``, ``labels`` (B, N) int64 in {1, 0, -1}."""

    coords: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        c, lab = self.coords, self.labels
        if c.ndim != 3 or c.shape[-1] != 2 or tuple(lab.shape) != tuple(c.shape[:2]):
            raise ConfigError(
                f"point coords of shape {tuple(c.shape)} and labels of shape {tuple(lab.shape)} do not fit",
                "coords must be (B, N, 2) and labels (B, N)",
            )

    def to(self, device: torch.device | str) -> Points:
        """The same points on ``device``."""
        return Points(self.coords.to(device), self.labels.to(device))

    def __len__(self) -> int:
        return self.coords.shape[0]

    @staticmethod
    def cat(parts: Sequence[Points]) -> Points:
        """Several batches' points as one batch (equal numbers of points per image)."""
        return Points(torch.cat([p.coords for p in parts]), torch.cat([p.labels for p in parts]))

    def select(self, idx: int | slice | torch.Tensor | Sequence[int]) -> Points:
        """The points of some images of the batch; an int keeps the batch axis (B = 1)."""
        if isinstance(idx, torch.Tensor) and idx.ndim == 0:
            idx = int(idx.item())
        if _is_int(idx):
            b, i = len(self), int(idx)
            if not -b <= i < b:
                raise ConfigError(
                    f"image {i} is out of range for a batch of {b} point sets",
                    f"pass an index from 0 to {b - 1}" if b else "this batch is empty",
                )
            i %= b
            idx = slice(i, i + 1)
        elif isinstance(idx, torch.Tensor):
            idx = idx.to(self.coords.device)
        return Points(self.coords[idx], self.labels[idx])


def _as_mask(mask: Any) -> torch.Tensor:
    """A (B, H, W) bool tensor on the mask's device (numpy -> cpu); foreground is ``True`` or ``> 0.5``."""
    if isinstance(mask, np.ndarray):
        if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)) or np.iscomplexobj(mask):
            raise ConfigError(
                f"mask has dtype {mask.dtype}, which is not a mask", "pass a bool, int or float array"
            )
        mask = torch.from_numpy(np.ascontiguousarray(mask if mask.dtype == bool else mask > 0.5))
    elif not isinstance(mask, torch.Tensor):
        raise ConfigError(f"mask is a {type(mask).__name__}, not a tensor or numpy array", _MASK_FIX)
    if mask.ndim == 2:
        mask = mask[None]
    elif mask.ndim != 3:
        raise ConfigError(f"mask has shape {tuple(mask.shape)}; expected (H, W) or (B, H, W)", _MASK_FIX)
    if mask.shape[1] == 0 or mask.shape[2] == 0:
        raise ConfigError(f"mask has shape {tuple(mask.shape)}, an image without pixels", _MASK_FIX)
    if mask.dtype == torch.bool:
        return mask
    if mask.is_complex():
        raise ConfigError(
            f"mask has dtype {mask.dtype}, which is not a mask", "pass a bool, int or float tensor"
        )
    return mask > 0.5


def _count(name: str, n: Any) -> int:
    if not _is_int(n) or n < 0:
        raise ConfigError(f"{name} must be a whole number >= 0, got {n!r}", f"pass e.g. {name}=5")
    return int(n)


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _generator(seed: Any) -> torch.Generator:
    if not _is_int(seed):
        raise ConfigError(
            f"seed {seed!r} is not an int", "seeds must be whole numbers, e.g. dataset item indices"
        )
    try:
        return torch.Generator().manual_seed(int(seed))
    except (RuntimeError, ValueError):
        raise ConfigError(f"seed {seed} is out of range", "use a seed between 0 and 2**63 - 1") from None


def _scores(seed: Seed, batch: int, n: int, device: torch.device) -> torch.Tensor:
    """(batch, n) uniform scores in [0, 1) on ``device``, drawn as the module notes on seeds say."""
    if seed is None:
        return torch.rand(batch, n, device=device)
    if isinstance(seed, torch.Generator):
        return torch.rand(batch, n, generator=seed, device=seed.device).to(device)
    if isinstance(seed, (torch.Tensor, np.ndarray)):
        seed = seed.tolist()
    if _is_int(seed):
        return torch.rand(batch, n, generator=_generator(seed)).to(device)
    if isinstance(seed, (str, bytes)) or not isinstance(seed, Sequence):
        raise ConfigError(
            f"seed {seed!r} is neither an int, a sequence of ints nor a torch.Generator",
            "pass e.g. seed=0, seed=[the dataset indices of the batch's images] or seed=None",
        )
    if len(seed) != batch:
        raise ConfigError(
            f"{len(seed)} seeds for a batch of {batch} masks",
            "pass one seed per image, or one int for the batch",
        )
    # One generator per image: an image's scores do not depend on the batch it came in.
    rows = [torch.rand(n, generator=_generator(s)) for s in seed]
    return (torch.stack(rows) if rows else torch.empty(0, n)).to(device)


def _top(scores: torch.Tensor, allowed: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices (B, k) of the ``k`` best-scored allowed pixels and whether each slot got one."""
    batch, n = scores.shape
    take = min(k, n)
    values, idx = torch.where(allowed, scores, torch.full_like(scores, -1.0)).topk(take, dim=1)
    valid = values >= 0
    if take < k:
        idx = torch.cat([idx, idx.new_zeros(batch, k - take)], dim=1)
        valid = torch.cat([valid, valid.new_zeros(batch, k - take)], dim=1)
    return idx, valid


def _peaks(dist: np.ndarray, labels: np.ndarray, ids: np.ndarray) -> list[tuple[int, int]]:
    """Per component in ``ids``: the pixel of largest ``dist``; among ties (a ridge), the one nearest the centroid.

    Rectangles and elongated objects have a whole ridge of equally interior pixels; the one nearest the centroid
    is the middle of the object rather than the ridge's first pixel in raster order.
    """
    rows, cols = np.nonzero(labels)
    lab, d = labels[rows, cols], dist[rows, cols]
    peaks = []
    for i in ids:  # a handful of components (at most n_pos), not pixels
        on = np.flatnonzero(lab == i)
        r, c, di = rows[on], cols[on], d[on]
        ridge = np.flatnonzero(di >= di.max() - 1e-6)
        off = (r[ridge] - r.mean()) ** 2 + (c[ridge] - c.mean()) ** 2
        best = ridge[np.argmin(off)]
        peaks.append((int(r[best]), int(c[best])))
    return peaks


def _interior(fg: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices (B, k) of each component's distance-transform maximum, largest component first."""
    batch, _, width = fg.shape
    idx = np.zeros((batch, k), dtype=np.int64)
    valid = np.zeros((batch, k), dtype=bool)
    eight = np.ones((3, 3), dtype=bool)
    for b, m in enumerate(fg.cpu().numpy()):
        labels, n = ndimage.label(m, structure=eight)
        if n == 0:
            continue
        # Pad with background so the image border counts as the object's edge (and an all-foreground
        # image gets its centre, not a corner).
        dist = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        order = np.argsort(-sizes[1:], kind="stable")[:k] + 1
        for j, (r, c) in enumerate(_peaks(dist, labels, order)):
            idx[b, j] = r * width + c
            valid[b, j] = True
    return torch.from_numpy(idx).to(fg.device), torch.from_numpy(valid).to(fg.device)


def _points(
    idx: torch.Tensor, valid: torch.Tensor, width: int, label: int
) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.stack([idx % width, idx // width], dim=-1).to(torch.float32)
    coords = torch.where(valid[..., None], coords, torch.zeros_like(coords))
    labels = torch.where(valid, torch.full_like(idx, label), torch.full_like(idx, PAD_LABEL))
    return coords, labels


def sample_points(
    mask: torch.Tensor | np.ndarray,
    n_pos: int = 5,
    n_neg: int = 5,
    strategy: str = "random",
    seed: Seed = None,
) -> Points:
    """Positive points on the mask's foreground and negative points on its background (see the module notes).

    ``mask`` is (H, W) or (B, H, W), bool or numbers (foreground where > 0.5); the points come back on its device
    with ``n_pos + n_neg`` slots per image, unfillable slots padded with label -1.
    """
    if strategy not in STRATEGIES:
        raise unknown_name("prompt strategy", strategy, list(STRATEGIES))
    n_pos, n_neg = _count("n_pos", n_pos), _count("n_neg", n_neg)
    if n_pos + n_neg == 0:
        raise ConfigError(
            "n_pos=0 and n_neg=0 ask for no points at all", "ask for at least one point, e.g. n_pos=5"
        )
    fg = _as_mask(mask)
    batch, height, width = fg.shape
    flat = fg.reshape(batch, height * width)
    scores = _scores(seed, batch, height * width, fg.device)

    if strategy == "interior" and n_pos:
        first, first_ok = _interior(fg, n_pos)
        taken = torch.zeros_like(flat).scatter_(1, first, first_ok)
        rest, rest_ok = _top(scores, flat & ~taken, n_pos)
        # The interior points fill the first slots (one per component); random ones follow.
        n_first = first_ok.sum(dim=1, keepdim=True)
        slot = torch.arange(n_pos, device=fg.device).expand(batch, n_pos)
        from_rest = (slot - n_first).clamp(min=0)
        use_first = slot < n_first
        pos = torch.where(use_first, first, rest.gather(1, from_rest))
        pos_ok = torch.where(use_first, first_ok, rest_ok.gather(1, from_rest))
    else:
        pos, pos_ok = _top(scores, flat, n_pos)
    neg, neg_ok = _top(scores, ~flat, n_neg)

    pos_xy, pos_lab = _points(pos, pos_ok, width, 1)
    neg_xy, neg_lab = _points(neg, neg_ok, width, 0)
    return Points(torch.cat([pos_xy, neg_xy], dim=1), torch.cat([pos_lab, neg_lab], dim=1))


def boxes_from_masks(mask: torch.Tensor | np.ndarray, margin: int = 0) -> torch.Tensor:
    """SAM box prompts (B, 4) float32 ``x0, y0, x1, y1`` (inclusive pixel indices) on the mask's device.

    The tight box of all foreground pixels, grown by ``margin`` pixels on every side and clipped to the image. An
    empty mask gives the whole image, ``(0, 0, W - 1, H - 1)``: "look everywhere" is the honest prompt when the
    specialist found nothing.
    """
    margin = _count("margin", margin)
    fg = _as_mask(mask)
    batch, height, width = fg.shape
    rows, cols = fg.any(dim=2), fg.any(dim=1)
    r = torch.arange(height, device=fg.device).expand(batch, height)
    c = torch.arange(width, device=fg.device).expand(batch, width)
    y0, y1 = torch.where(rows, r, height).amin(dim=1), torch.where(rows, r, -1).amax(dim=1)
    x0, x1 = torch.where(cols, c, width).amin(dim=1), torch.where(cols, c, -1).amax(dim=1)
    box = torch.stack(
        [
            (x0 - margin).clamp(min=0),
            (y0 - margin).clamp(min=0),
            (x1 + margin).clamp(max=width - 1),
            (y1 + margin).clamp(max=height - 1),
        ],
        dim=1,
    )
    whole = torch.tensor([0, 0, width - 1, height - 1], device=fg.device)
    box = torch.where(rows.any(dim=1, keepdim=True), box, whole)
    return box.to(torch.float32)


def point_hits(points: Points, mask: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(B, N) bool on the mask's device: does each real point lie on the mask's foreground?

    Coordinates are rounded to the nearest pixel; padding (label -1) and points outside the image are False.
    Positives should all hit the mask they came from and negatives all miss it, which is what tests and the
    prompt widget check.
    """
    if not isinstance(points, Points):
        raise ConfigError(
            f"points is a {type(points).__name__}, not Points", "pass the result of sample_points"
        )
    fg = _as_mask(mask)
    batch, height, width = fg.shape
    if len(points) != batch:
        raise ConfigError(
            f"{len(points)} point sets for {batch} masks", "pass the mask batch the points were sampled from"
        )
    xy = points.coords.to(fg.device).round().long()
    x, y = xy[..., 0], xy[..., 1]
    real = points.labels.to(fg.device) >= 0
    inside = real & (x >= 0) & (x < width) & (y >= 0) & (y < height)
    flat = y.clamp(0, height - 1) * width + x.clamp(0, width - 1)
    return fg.reshape(batch, height * width).gather(1, flat) & inside


def shift_seed(seed: Seed, offset: int) -> Seed:
    """Seed(s) of another, independent draw (a second set of prompts for the same images): an int or each int of a
    sequence moves to a stream of its own; a generator or None is used as it is (it moves on by itself)."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, (torch.Tensor, np.ndarray)):
        seed = seed.tolist()
    if _is_int(seed):
        return (int(seed) + offset * 0x9E3779B1) % 2**63
    return [(int(s) + offset * 0x9E3779B1) % 2**63 for s in seed]


def prompts_from_masks(
    mask: torch.Tensor, cfg: Any, seed: Seed = None
) -> tuple[Points | None, torch.Tensor | None]:
    """The prompts a run's ``cfg`` (a :class:`~scsam_lite.config.PromptConfig`) asks for, from hard masks.

    ``cfg.kind``: ``points`` (``n_pos`` + ``n_neg`` points by ``strategy``), ``box``, or ``points+box``; the part not
    asked for is None.
    """
    points = boxes = None
    if cfg.kind in ("points", "points+box"):
        points = sample_points(mask, cfg.n_pos, cfg.n_neg, cfg.strategy, seed=seed)
    if cfg.kind in ("box", "points+box"):
        boxes = boxes_from_masks(mask)
    return points, boxes
