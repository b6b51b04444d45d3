"""Weak (geometric) and strong (photometric) views of a batch, as pure functions of a seed.

Mean teacher and its relatives compare a teacher's prediction on a *weak* view with a student's prediction on
a *strong* view of the same pixels. So the two views must be pixel-aligned: all geometry lives in
:func:`weak_view` (applied identically to image and mask), and :func:`strong_view` only changes intensities.

Both take batched tensors on any device and draw every random parameter from ``seed`` with a local generator:
the global torch/numpy random state is neither used nor changed, so a run resumed at step k produces the same
augmented batch bit for bit. The whole batch is warped with one ``grid_sample`` call and blurred with one
grouped convolution (kornia), so augmentation costs little next to a training step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

#: Weak view: probability of a small rotation/scale on top of the random rot90 and flip, and its ranges.
ROTATE_PROB = 0.5
MAX_DEGREES = 20.0
SCALE_RANGE = (0.9, 1.1)

#: Strong view: (probability, range) of each photometric change.
BRIGHTNESS = (0.8, 0.15)  # additive shift in [-0.15, 0.15]
CONTRAST = (0.8, (0.7, 1.3))  # factor around the image mean
SATURATION = (0.5, (0.6, 1.4))  # RGB only: mix with the grey image
GAMMA = (0.5, (0.7, 1.5))
BLUR = (0.3, (0.2, 1.0))  # Gaussian sigma in pixels
NOISE = (0.5, 0.04)  # Gaussian noise standard deviation up to this


def _check_images(images: torch.Tensor) -> None:
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"expected float images (B, C, H, W), got {tuple(images.shape)} {images.dtype}")


def weak_matrices(batch: int, seed: int) -> np.ndarray:
    """The ``(batch, 2, 2)`` geometric transforms of :func:`weak_view` (output -> input, normalised coords)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 4, batch)
    flip = rng.random(batch) < 0.5
    rotate = rng.random(batch) < ROTATE_PROB
    angle = np.where(rotate, rng.uniform(-MAX_DEGREES, MAX_DEGREES, batch), 0.0) * math.pi / 180
    scale = np.where(rotate, rng.uniform(*SCALE_RANGE, batch), 1.0)
    out = np.empty((batch, 2, 2))
    for i in range(batch):
        a = k[i] * math.pi / 2 + angle[i]
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        if not rotate[i]:
            rot = np.round(rot)  # exact quarter turns, so un-rotated samples are resampled exactly
        mirror = np.diag([-1.0, 1.0]) if flip[i] else np.eye(2)
        out[i] = rot @ mirror / scale[i]
    return out


def weak_view(
    images: torch.Tensor, masks: torch.Tensor | None = None, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random quarter turns, flips and (half the time) a small rotation and zoom, the same on image and mask.

    Args:
        images: ``(B, C, H, W)`` float images.
        masks: ``(B, H, W)`` integer masks, or ``None`` (unlabeled images).
        seed: every random choice comes from this; the same seed gives the same output.

    Images are resampled bilinearly, masks by nearest neighbour (they stay integer labels); both are padded
    with zeros where the rotated frame leaves the image.
    """
    _check_images(images)
    b = images.shape[0]
    if b == 0:
        return images, masks
    grid = _weak_grid(b, images.shape[1], images.shape[2:], seed, images.dtype, images.device)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if masks is None:
        return out, None
    if masks.shape != (b, *images.shape[2:]):
        raise ValueError(f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}")
    return out, _warp_masks(masks, grid)


def weak_view_masks(masks: torch.Tensor, *, seed: int) -> torch.Tensor:
    """The geometry of :func:`weak_view` with the same ``seed`` applied to masks ``(B, H, W)`` alone.

    For labels made in the un-augmented frame (e.g. SAM's masks from cached embeddings) that must line up with a
    batch augmented by ``weak_view(images, seed=seed)``: same batch size and seed, same warp.
    """
    if masks.ndim != 3:
        raise ValueError(f"expected masks (B, H, W), got {tuple(masks.shape)}")
    if masks.shape[0] == 0:
        return masks
    grid = _weak_grid(masks.shape[0], 1, masks.shape[1:], seed, torch.float32, masks.device)
    return _warp_masks(masks, grid)


def _weak_grid(b: int, c: int, size, seed: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    lin = torch.as_tensor(weak_matrices(b, seed), dtype=dtype, device=device)
    theta = torch.cat([lin, torch.zeros(b, 2, 1, dtype=dtype, device=device)], dim=2)
    return F.affine_grid(theta, [b, c, *size], align_corners=False)


def _warp_masks(masks: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    m = F.grid_sample(
        masks[:, None].to(grid.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    return m[:, 0].round().to(masks.dtype)


def strong_view(images: torch.Tensor, *, seed: int) -> torch.Tensor:
    """Photometric changes only: brightness, contrast, saturation (RGB), gamma, blur and noise.

    Pixel positions do not move, so a prediction on the strong view lines up with one on the input (weak) view.
    Output values stay in [0, 1].
    """
    _check_images(images)
    b, c = images.shape[:2]
    if b == 0:
        return images
    rng = np.random.default_rng(seed)
    dev, dt = images.device, images.dtype

    def per_sample(spec, default: float) -> torch.Tensor:
        p, rng_range = spec
        lo, hi = rng_range if isinstance(rng_range, tuple) else (-rng_range, rng_range)
        on = rng.random(b) < p
        vals = np.where(on, rng.uniform(lo, hi, b), default)
        return torch.as_tensor(vals, dtype=dt, device=dev).view(b, 1, 1, 1)

    brightness = per_sample(BRIGHTNESS, 0.0)
    contrast = per_sample(CONTRAST, 1.0)
    saturation = per_sample(SATURATION, 1.0)
    gamma = per_sample(GAMMA, 1.0)
    blur_on = rng.random(b) < BLUR[0]
    sigma = rng.uniform(*BLUR[1], b)
    noise_std = np.where(rng.random(b) < NOISE[0], rng.uniform(0, NOISE[1], b), 0.0)
    noise_seed = int(rng.integers(0, 2**62))

    x = images
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + brightness
    if c == 3:
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * saturation
    x = x.clamp(0, 1) ** gamma
    if blur_on.any():
        idx = torch.as_tensor(np.flatnonzero(blur_on), device=dev)
        s = torch.as_tensor(sigma[blur_on], dtype=dt, device=dev)[:, None].repeat(1, 2)
        x = x.clone()
        x[idx] = gaussian_blur2d(x[idx], (5, 5), s)
    if noise_std.any():
        gen = torch.Generator(device=dev).manual_seed(noise_seed)
        noise = torch.randn(x.shape, generator=gen, device=dev, dtype=dt)
        x = x + noise * torch.as_tensor(noise_std, dtype=dt, device=dev).view(b, 1, 1, 1)
    return x.clamp(0, 1)
