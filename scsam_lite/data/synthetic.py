"""Synthetic stand-ins for the real datasets: no download, no data root, made in about a second.

They exist so that every notebook and test runs on a laptop CPU or offline, and so that a student sees the
semi-supervised effect (few labels lose to many; unlabeled data closes part of the gap) within minutes. They
are built to be *not* trivially separable: the polyp colour overlaps the background's, so a colour threshold
fails and a network has to learn shape, shading and texture cues from examples.

- ``synthetic-polyp``: RGB "colonoscopy" frames: pink mucosa with uneven lighting, folds and vessels; 0-2
  polyps per frame (irregular lobed ellipses, dome shading, a shadowed rim, specular glints), about a fifth of
  the frames empty. Bright glints and fold shadows also appear on the background as distractors.
- ``synthetic-prostate``: grayscale "T2 MRI" volumes of a few axial slices each: a body outline, fat, rectum,
  bladder and pelvic bones around a gland whose lobed outline changes from slice to slice and vanishes at the
  ends of the volume; per-case contrast, bias field and noise. Split by case, as real volumes must be.

Everything is drawn from one ``numpy`` generator seeded by ``seed``, so the same seed gives the same bytes.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .base import SegData
from .partition import by_case, case_ranges, contiguous_blocks
from .preprocess import normalize_intensity, to_uint8


def _grid(res: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] (y, x)."""
    c = (np.arange(res, dtype=np.float32) + 0.5) / res * 2 - 1
    return np.meshgrid(c, c, indexing="ij")


def _smooth(rng: np.random.Generator, n: int, cells: int, res: int) -> np.ndarray:
    """``n`` smooth random fields of unit spread: ``cells`` x ``cells`` noise, Gaussian-interpolated to ``res``.

    The upsampling is one separable matrix product, which is what keeps generation well under a second.
    """
    coarse = rng.standard_normal((n, cells + 2, cells + 2)).astype(np.float32)
    pos = (np.arange(res, dtype=np.float32) + 0.5) / res * cells + 0.5  # pixel centre in coarse-cell units
    weights = np.exp(-0.5 * ((pos[:, None] - np.arange(cells + 2, dtype=np.float32)[None, :]) / 0.6) ** 2)
    weights /= weights.sum(axis=1, keepdims=True)
    field = np.einsum("rc,ncd,sd->nrs", weights, coarse, weights, optimize=True)
    field -= field.mean(axis=(1, 2), keepdims=True)
    return field / (field.std(axis=(1, 2), keepdims=True) + 1e-6)


def _lobed_radius(theta: np.ndarray, rng: np.random.Generator, aspect: float, amp: float) -> np.ndarray:
    """Radius (relative) of an irregular ellipse at angles ``theta``: an ellipse plus a few random harmonics."""
    rot = rng.uniform(0, np.pi)
    t = theta - rot
    r = aspect / np.sqrt((aspect * np.cos(t)) ** 2 + np.sin(t) ** 2)
    for k in (2, 3, 4, 5):
        r = r * (1 + rng.uniform(0, amp) / k * np.cos(k * theta + rng.uniform(0, 2 * np.pi)))
    return r


def _blob(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r0: float, rng, aspect: float, amp: float):
    """Normalised distance to an irregular blob (< 1 inside) and the polar angle around its centre."""
    dy, dx = yy - cy, xx - cx
    theta = np.arctan2(dy, dx)
    rho = np.sqrt(dy**2 + dx**2)
    return rho / (r0 * _lobed_radius(theta, rng, aspect, amp)), theta


def _mucosa(
    rng: np.random.Generator,
    yy: np.ndarray,
    xx: np.ndarray,
    light: np.ndarray,
    folds_warp: np.ndarray,
    vessel_field: np.ndarray,
    vessel_field2: np.ndarray,
    mucosa: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One frame's empty background (uneven lighting, folds, vessels) and its vessel map.

    Kept apart so that a frame reads as background, then polyps, then distractors; it draws from ``rng`` in the
    order the reference data were made with, so the frames stay bit-identical.
    """
    base = np.array([0.78, 0.42, 0.36], np.float32) * rng.uniform(0.85, 1.1) + rng.normal(0, 0.035, 3)
    # lighting: a scope light off-centre, falling off towards the corners, plus slow unevenness
    ly, lx = rng.uniform(-0.4, 0.4, 2)
    illum = 1.05 - rng.uniform(0.25, 0.5) * ((yy - ly) ** 2 + (xx - lx) ** 2) / 2 + 0.08 * light
    # folds: warped ridges in a random direction, shading only (no colour change)
    ang = rng.uniform(0, np.pi)
    phase = rng.uniform(2.5, 6.0) * (np.cos(ang) * xx + np.sin(ang) * yy) * np.pi + 1.8 * folds_warp
    folds = rng.uniform(0.04, 0.16) * (np.sin(phase) ** 3)
    # vessels: thin curvy lines where a smooth field crosses zero
    width = rng.uniform(0.05, 0.1)
    vessels = np.exp(-((vessel_field / width) ** 2)) * rng.uniform(0.3, 0.7)
    vessels += np.exp(-((vessel_field2 / (width * 0.7)) ** 2)) * rng.uniform(0.1, 0.4)
    vessels = np.clip(vessels, 0, 1)
    shade = illum * (1 + folds + 0.04 * mucosa)
    img = base[None, None, :] * shade[..., None]
    img = img * (1 - vessels[..., None] * np.array([0.25, 0.55, 0.45], np.float32))
    return img, vessels


def _add_polyp(
    rng: np.random.Generator,
    img: np.ndarray,
    vessels: np.ndarray,
    yy: np.ndarray,
    xx: np.ndarray,
    polyp_tex: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """``img`` with one more polyp drawn in, and the polyp's mask; None (``img`` unchanged) if it came out tiny.

    One polyp per call keeps :func:`make_polyp_images` short; the random draws are those of the original loop
    body, in the same order, so the frames stay bit-identical.
    """
    r0 = rng.uniform(0.18, 0.5) if rng.random() < 0.75 else rng.uniform(0.1, 0.18)
    cy, cx = rng.uniform(-0.75 + r0 * 0.5, 0.75 - r0 * 0.5, 2)
    d, theta = _blob(yy, xx, cy, cx, r0, rng, rng.uniform(0.55, 1.0), 0.6)
    inside = d < 1
    if inside.sum() < 6:
        return img, None
    # dome shading towards a highlight, a shadowed rim just outside, a slightly different tint
    hy, hx = rng.uniform(-0.4, 0.4, 2)
    dome = np.clip(1 - d**2, 0, 1)
    lift = rng.uniform(0.04, 0.16) * dome + 0.03 * polyp_tex * dome
    rim = np.exp(-(((d - 1.0) / 0.12) ** 2)) * rng.uniform(0.12, 0.3)
    tint = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.9, 1.1)], np.float32)
    sharp = np.clip((1.0 - d) / 0.08, 0, 1)[..., None]
    pol = img * tint * (1 + lift[..., None]) / np.maximum(1 - vessels[..., None] * 0.4, 0.5)
    img = img * (1 - sharp) + pol * sharp
    img = img * (1 - rim[..., None] * (d[..., None] >= 0.9))
    glint_r = rng.uniform(0.02, 0.05) * r0 / 0.3
    gy = cy + hy * r0 * 0.5
    gx = cx + hx * r0 * 0.5
    glint = np.exp(-((yy - gy) ** 2 + (xx - gx) ** 2) / (2 * glint_r**2))
    img = img + (rng.random() < 0.6) * glint[..., None] * 0.6
    return img, inside


def _add_distractors(rng: np.random.Generator, img: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """``img`` with glints and a dark shadow patch on the mucosa, so that brightness alone does not find polyps."""
    for _ in range(rng.integers(0, 3)):
        gy, gx = rng.uniform(-0.9, 0.9, 2)
        glint_r = rng.uniform(0.01, 0.03)
        img = img + np.exp(-((yy - gy) ** 2 + (xx - gx) ** 2) / (2 * glint_r**2))[..., None] * 0.5
    if rng.random() < 0.5:
        d, _ = _blob(yy, xx, *rng.uniform(-0.7, 0.7, 2), rng.uniform(0.1, 0.3), rng, 0.7, 0.6)
        img = img * (1 - 0.12 * np.clip(1 - d, 0, 1)[..., None])
    return img


def make_polyp_images(
    n: int, res: int, seed: int, empty_fraction: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` RGB frames ``(n, res, res, 3)`` uint8, masks ``(n, res, res)`` in {0, 1}, and polyp counts."""
    rng = np.random.default_rng(seed)
    yy, xx = _grid(res)
    light = _smooth(rng, n, 2, res)
    folds_warp = _smooth(rng, n, 3, res)
    vessel_field = _smooth(rng, n, 5, res)
    vessel_field2 = _smooth(rng, n, 9, res)
    mucosa = _smooth(rng, n, max(4, res // 6), res)
    polyp_tex = _smooth(rng, n, max(4, res // 8), res)
    images = np.empty((n, res, res, 3), np.float32)
    masks = np.zeros((n, res, res), np.uint8)
    counts = np.zeros(n, np.int64)
    for i in range(n):
        img, vessels = _mucosa(
            rng, yy, xx, light[i], folds_warp[i], vessel_field[i], vessel_field2[i], mucosa[i]
        )
        # polyps
        k = 0 if rng.random() < empty_fraction else (1 if rng.random() < 0.7 else 2)
        mask = np.zeros((res, res), bool)
        for _ in range(k):
            img, inside = _add_polyp(rng, img, vessels, yy, xx, polyp_tex[i])
            if inside is not None:
                mask |= inside
        img = _add_distractors(rng, img, yy, xx)
        img = img + rng.normal(0, rng.uniform(0.01, 0.03), img.shape).astype(np.float32)
        images[i] = img
        masks[i] = mask
        counts[i] = k
    return to_uint8(images), masks, counts


def synthetic_polyp(
    resolution: int = 64, seed: int = 0, n_images: int = 400, empty_fraction: float = 0.2
) -> SegData:
    """The synthetic polyp dataset: ``n_images`` frames split 80/10/10 (train/val/test) in order."""
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 10:
        raise ConfigError(
            f"n_images must be an int >= 10, got {n_images!r}", "e.g. n_images=400 (the default)"
        )
    if not 0 <= empty_fraction <= 1:
        raise ConfigError(
            f"empty_fraction must be in [0, 1], got {empty_fraction!r}", "e.g. empty_fraction=0.2"
        )
    images, masks, counts = make_polyp_images(n_images, resolution, seed, empty_fraction)
    ids = [f"synpolyp_{i:04d}" for i in range(n_images)]
    return SegData(
        name="synthetic-polyp",
        images=images,
        masks=masks,
        ids=ids,
        cases=list(ids),
        splits=contiguous_blocks(n_images, 0.1, 0.1),
        spacing=np.full((n_images, 2), np.nan),
        resolution=resolution,
        info={
            "source": f"generated (seed {seed}, {n_images} images)",
            "split_rule": "first 80% train, next 10% val, last 10% test (the images are independent)",
            "polyps_per_image": counts.tolist(),
        },
    )


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2


def _pelvis(
    yy: np.ndarray,
    xx: np.ndarray,
    u: float,
    body_r: tuple[float, float],
    fat: float,
    muscle: float,
    gland_c: tuple[float, float],
    gland_r: tuple[float, float],
) -> np.ndarray:
    """One slice's anatomy around the gland (body, fat, bones, rectum, bladder): no random draws, so pulling it
    out of :func:`make_prostate_case` leaves the generator's sequence, and the volumes, unchanged.

    ``u`` is the slice's position relative to the gland's half-length (the bladder shows below -0.2);
    ``body_r`` the body's radii (y, x); ``gland_c`` and ``gland_r`` the gland's centre and radii (y, x), which
    place the organs around it.
    """
    body_ry, body_rx = body_r
    gy, gx = gland_c
    g_ry, g_rx = gland_r
    body = _ellipse(yy, xx, 0.05, 0, body_ry, body_rx)
    img = np.where(body < 1, muscle, 0.02).astype(np.float32)
    inner = _ellipse(yy, xx, 0.05, 0, body_ry - fat, body_rx - fat)
    img = np.where((body < 1) & (inner >= 1), 0.8, img)  # subcutaneous fat
    # pelvic bones (dark cortex, brighter marrow), rectum behind the gland, bladder in front at the base
    for side in (-1, 1):
        bone = _ellipse(yy, xx, 0.05, side * 0.58, 0.2, 0.1)
        img = np.where(bone < 1, 0.55, img)
        img = np.where((bone >= 0.6) & (bone < 1), 0.1, img)
        obt = _ellipse(yy, xx, gy, gx + side * (g_rx + 0.16), 0.22, 0.1)
        img = np.where(obt < 1, muscle * 0.8, img)
    rect = _ellipse(yy, xx, gy + g_ry + 0.17, gx, 0.12, 0.16)
    img = np.where(rect < 1, 0.15, img)
    img = np.where((rect >= 0.55) & (rect < 1), 0.5, img)
    if u < -0.2:
        bl = _ellipse(yy, xx, gy - g_ry - 0.25, gx, 0.25 * min(1, -u), 0.4 * min(1, -u))
        img = np.where(bl < 1, 0.95, img)
    return img


def make_prostate_case(rng: np.random.Generator, res: int, n_slices: int) -> tuple[np.ndarray, np.ndarray]:
    """One volume ``(Z, res, res)`` float in [0, 1] (normalised per case) and its gland mask ``(Z, res, res)``."""
    yy, xx = _grid(res)
    # per-case anatomy and acquisition
    body_ry, body_rx = rng.uniform(0.7, 0.85), rng.uniform(0.85, 0.97)
    fat = rng.uniform(0.06, 0.12)
    muscle = rng.uniform(0.3, 0.4)
    contrast = rng.uniform(0.04, 0.2)  # gland brighter than muscle, by a per-case amount
    noise = rng.uniform(0.02, 0.07)
    gy, gx = rng.uniform(-0.1, 0.2), rng.uniform(-0.12, 0.12)
    g_ry = rng.uniform(0.22, 0.32)
    g_rx = g_ry * rng.uniform(1.1, 1.4)
    half_len = rng.uniform(0.7, 0.85)  # the gland spans this part of the volume; the end slices show none
    tilt = rng.uniform(-0.3, 0.3)
    lobes_a = rng.uniform(0, 0.15, 4), rng.uniform(0, 2 * np.pi, 4)
    lobes_b = rng.uniform(0, 0.15, 4), rng.uniform(0, 2 * np.pi, 4)
    bias = _smooth(rng, 1, 2, res)[0]
    tex = _smooth(rng, n_slices, max(4, res // 8), res)
    z = np.linspace(-1, 1, n_slices)
    vol = np.empty((n_slices, res, res), np.float32)
    seg = np.zeros((n_slices, res, res), np.uint8)
    for k, zk in enumerate(z):
        u = zk / half_len
        img = _pelvis(yy, xx, u, (body_ry, body_rx), fat, muscle, (gy, gx), (g_ry, g_rx))
        # the gland: a lobed ellipse that narrows towards apex and base and changes shape across slices
        scale = np.sqrt(max(0.0, 1 - u**2)) * (1 - 0.25 * max(u, 0))
        if scale > 0.25:
            w = (u + 1) / 2
            amp = (1 - w) * lobes_a[0] + w * lobes_b[0]
            ph = (1 - w) * lobes_a[1] + w * lobes_b[1]
            dy, dx = yy - (gy + tilt * 0.1 * u), xx - gx
            th = np.arctan2(dy, dx)
            r = g_rx * g_ry / np.sqrt((g_ry * np.cos(th)) ** 2 + (g_rx * np.sin(th)) ** 2)
            for j, h in enumerate((2, 3, 4, 5)):
                r = r * (1 + amp[j] / h * np.cos(h * th + ph[j]))
            d = np.sqrt(dy**2 + dx**2) / (r * scale)
            inside = d < 1
            if inside.sum() >= 4:
                seg[k] = inside
                pz = np.clip((dy / (g_ry * scale) - 0.2) * 1.5, 0, 1) * 0.12  # brighter peripheral zone
                gland = muscle + contrast + pz + 0.05 * tex[k]
                img = np.where(inside, gland, img)
                img = np.where((d >= 1) & (d < 1.12), np.minimum(img, muscle - 0.08), img)  # capsule
        img = img * (1 + 0.15 * bias)
        n1 = rng.normal(0, noise, img.shape)
        n2 = rng.normal(0, noise, img.shape)
        vol[k] = np.sqrt((img + n1) ** 2 + n2**2)  # Rician, like magnitude MRI
    return normalize_intensity(vol), seg


def synthetic_prostate(
    resolution: int = 64, seed: int = 0, n_cases: int = 50, slices: tuple[int, int] = (6, 10)
) -> SegData:
    """The synthetic prostate dataset: ``n_cases`` volumes of ``slices`` (min, max) axial slices each.

    Split by case like PROMISE12's default: of the 50 cases, Case35-39 are val, Case40-49 test and the rest
    train; with another ``n_cases`` the last 30% of the cases are held out the same way (a third of them val).
    """
    if isinstance(n_cases, bool) or not isinstance(n_cases, int) or n_cases < 4:
        raise ConfigError(f"n_cases must be an int >= 4, got {n_cases!r}", "e.g. n_cases=50 (the default)")
    if not 3 <= slices[0] <= slices[1]:
        raise ConfigError(
            f"slices must be (min, max) with 3 <= min <= max, got {slices!r}", "e.g. slices=(6, 10)"
        )
    rng = np.random.default_rng(seed)
    images, masks, ids, cases, spacing = [], [], [], [], []
    slice_spacing: dict[str, float] = {}
    for c in range(n_cases):
        case = f"Case{c:02d}"
        n_slices = int(rng.integers(slices[0], slices[1] + 1))
        vol, seg = make_prostate_case(rng, resolution, n_slices)
        images.append(to_uint8(vol))
        masks.append(seg)
        ids += [f"{case}_slice_{k:03d}" for k in range(n_slices)]
        cases += [case] * n_slices
        fov = rng.uniform(150, 200)  # mm across the square field of view
        spacing += [(fov / resolution, fov / resolution)] * n_slices
        slice_spacing[case] = float(rng.uniform(3.0, 4.0))
    # the last 30% of cases are held out, a third of them val: with 50 cases, val Case35-39, test Case40-49
    n_hold = max(2, int(round(0.3 * n_cases)))
    held = [f"Case{c:02d}" for c in range(n_cases - n_hold, n_cases)]
    n_val = max(1, n_hold // 3)
    val, test = held[:n_val], held[n_val:]
    splits = by_case(cases, val, test)
    return SegData(
        name="synthetic-prostate",
        images=np.concatenate(images)[..., None],
        masks=np.concatenate(masks),
        ids=ids,
        cases=cases,
        splits=splits,
        spacing=np.asarray(spacing, dtype=np.float64),
        resolution=resolution,
        slice_spacing=slice_spacing,
        info={
            "source": f"generated (seed {seed}, {n_cases} cases)",
            "split_rule": f"by case: val {case_ranges(val)}; test {case_ranges(test)}; train the rest",
        },
    )
