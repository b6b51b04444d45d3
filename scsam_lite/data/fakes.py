"""Tiny fake copies of the real datasets' folder layouts, for tests and for trying the loaders offline.

Each writer lays out a few small images exactly as the official archive (or the Kaggle copy) does, with a
bright ellipse as the "lesion" and its mask, and returns the folder the loader will read. They make it
possible to test discovery, decoding, caching, splits and every error message without downloading anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image


def ellipse_pair(
    seed: int, width: int = 40, height: int = 32, channels: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image with a brighter ellipse, and the ellipse's mask (0/255), both ``height x width``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    ry, rx = rng.uniform(0.15, 0.3) * height, rng.uniform(0.15, 0.3) * width
    mask = (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1).astype(np.uint8) * 255
    base = rng.integers(40, 90, (height, width, channels))
    image = np.clip(base + (mask[..., None] > 0) * 120, 0, 255).astype(np.uint8)
    return (image[..., 0] if channels == 1 else image), mask


def write_kvasir(
    root: Path, ids: Sequence[str], *, kaggle: bool = False, size: tuple[int, int] = (40, 32)
) -> Path:
    """``root/kvasir-seg/Kvasir-SEG/{images,masks}/<id>.jpg`` (``kaggle``: one more ``Kvasir-SEG`` level)."""
    folder = Path(root) / "kvasir-seg" / "Kvasir-SEG"
    if kaggle:
        folder = folder / "Kvasir-SEG"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(ids):
        image, mask = ellipse_pair(i, *size)
        Image.fromarray(image).save(folder / "images" / f"{name}.jpg", quality=95)
        Image.fromarray(np.repeat(mask[..., None], 3, axis=2)).save(
            folder / "masks" / f"{name}.jpg", quality=90
        )
    return folder


def write_cvc(root: Path, n: int, *, fmt: str = "tif", size: tuple[int, int] = (48, 36)) -> Path:
    """Frames ``1..n``: ``root/cvc-clinicdb/{Original,Ground Truth}/<k>.tif``, or under ``PNG/`` for png."""
    folder = Path(root) / "cvc-clinicdb"
    if fmt == "png":
        folder = folder / "PNG"
    for sub in ("Original", "Ground Truth"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for k in range(1, n + 1):
        image, mask = ellipse_pair(k, *size)
        Image.fromarray(image).save(folder / "Original" / f"{k}.{fmt}")
        Image.fromarray(mask).save(folder / "Ground Truth" / f"{k}.{fmt}")
    return folder


def anti_aliased(mask: np.ndarray, seed: int) -> np.ndarray:
    """A 0/255 mask as the official CVC-ClinicDB TIFFs are: a soft edge (many grey levels) and faint noise."""
    from PIL import ImageFilter

    soft = np.asarray(Image.fromarray(mask).filter(ImageFilter.GaussianBlur(1.5)), dtype=np.int16)
    noise = np.random.default_rng(seed).integers(0, 6, mask.shape)  # levels 0-5 where the mask is 0
    return np.clip(soft + noise * (soft < 128), 0, 255).astype(np.uint8)


def write_cvc_official(
    root: Path,
    sequences: int = 29,
    frames: int = 3,
    *,
    size: tuple[int, int] = (32, 24),
    anti_aliased_every: int = 4,
    readme: bool = True,
) -> Path:
    """The official CVC-ClinicDB layout: ``root/cvc-clinicdb/{Original,Ground Truth}/<k>.tif`` with RGB frames
    tagged BlackIsZero (as the official TIFFs), ``sequences`` videos of ``frames`` frames each, every
    ``anti_aliased_every``-th mask anti-aliased (many grey levels), and a README with the video table."""
    import tifffile

    folder = Path(root) / "cvc-clinicdb"
    for sub in ("Original", "Ground Truth"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    n = sequences * frames
    for k in range(1, n + 1):
        image, mask = ellipse_pair(k, *size)
        tifffile.imwrite(
            folder / "Original" / f"{k}.tif", image, photometric="minisblack", planarconfig="contig"
        )
        if anti_aliased_every and k % anti_aliased_every == 0:
            mask = anti_aliased(mask, k)
        Image.fromarray(mask).save(folder / "Ground Truth" / f"{k}.tif")
    if readme:
        rows = [f"| {s + 1} | {s * frames + 1}-{(s + 1) * frames} |" for s in range(sequences)]
        text = [
            "CVC-ClinicDB (a fake of the official layout, for tests)",
            f"{n} frames of 384x288 pixels from {sequences} sequences, 2015-03-01.",
            "",
            "| Sequence | Frames |",
            "| --- | --- |",
            *rows,
        ]
        (folder / "README.txt").write_text("\n".join(text) + "\n")
    return folder


def write_mhd(path: Path, array: np.ndarray, spacing: tuple[float, float, float]) -> None:
    """``array`` ``(Z, Y, X)`` as ``path`` (.mhd + .raw) with spacing ``(x, y, z)`` in mm."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(path), useCompression=False)


def write_promise12(
    root: Path,
    cases: Sequence[str],
    *,
    shape: tuple[int, int, int] = (5, 40, 40),
    spacing: tuple[float, float, float] = (0.625, 0.625, 3.6),
) -> Path:
    """``root/promise12/training_data/CaseXX.mhd`` and ``CaseXX_segmentation.mhd`` (a gland in middle slices)."""
    folder = Path(root) / "promise12" / "training_data"
    folder.mkdir(parents=True, exist_ok=True)
    z, h, w = shape
    for i, case in enumerate(cases):
        rng = np.random.default_rng(i)
        vol = rng.normal(300, 40, shape).astype(np.int16)
        seg = np.zeros(shape, np.uint8)
        for k in range(1, z - 1):
            _, mask = ellipse_pair(i * 100 + k, w, h, channels=1)
            seg[k] = mask > 0
        vol[seg > 0] += 400
        write_mhd(folder / f"{case}.mhd", vol, spacing)
        write_mhd(folder / f"{case}_segmentation.mhd", seg, spacing)
    return folder
