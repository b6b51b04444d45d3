"""Reading 2D image/mask pairs (Kvasir-SEG, CVC-ClinicDB): pairing by name, decoding, checking, resizing.

Every problem a real copy can have is caught here and named: an image without its mask (or the reverse), a
file that is not an image, a mask whose size differs from its image's, a mask that is not binary. Decoding runs
in a thread pool (Pillow releases the GIL while decoding) and happens once per resolution; the cache keeps the
result.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError
from ..progress import progress_bar
from .cache import Arrays
from .discover import few
from .preprocess import binarize_mask, resize_image, resize_mask

LOSSY = (".jpg", ".jpeg")
IMAGE_SUFFIXES_2D = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


def natural_key(name: str) -> tuple:
    """Sort ``2`` before ``10`` (CVC-ClinicDB frames are numbered), names with text in plain order."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def list_images(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Stem -> file for the images in ``folder`` (hidden files skipped); two files with one stem is an error."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes:
            if p.stem in out:
                raise DataError(
                    f"two files named {p.stem} in {folder}: {out[p.stem].name} and {p.name}",
                    "keep one file per image",
                )
            out[p.stem] = p
    return out


def pair_files(image_dir: Path, mask_dir: Path, suffixes: tuple[str, ...]) -> list[tuple[str, Path, Path]]:
    """``(id, image, mask)`` for every image, matched by file stem, in natural order.

    Raises a DataError listing the images without a mask and the masks without an image.
    """
    images, masks = list_images(image_dir, suffixes), list_images(mask_dir, suffixes)
    lonely_images = sorted(set(images) - set(masks), key=natural_key)
    lonely_masks = sorted(set(masks) - set(images), key=natural_key)
    if lonely_images or lonely_masks:
        parts = []
        if lonely_images:
            parts.append(f"{len(lonely_images)} image(s) in {image_dir} have no mask: {few(lonely_images)}")
        if lonely_masks:
            parts.append(f"{len(lonely_masks)} mask(s) in {mask_dir} have no image: {few(lonely_masks)}")
        raise DataError(
            "; ".join(parts),
            "every image needs a mask with the same name (and the reverse): re-extract the dataset, or remove "
            "the unmatched files",
        )
    if not images:
        raise DataError(f"no images in {image_dir}", f"expected files ending in {', '.join(suffixes)}")
    return [(stem, images[stem], masks[stem]) for stem in sorted(images, key=natural_key)]


def open_image(path: Path, draft_to: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image and its original (width, height); a DataError naming the file if it is unreadable.

    ``draft_to`` lets the JPEG decoder shrink by 2, 4 or 8 while decoding (never below ``draft_to`` pixels),
    which makes the one-time decode of large photos several times faster.
    """
    try:
        img = Image.open(path)
        size = img.size
        if draft_to is not None and path.suffix.lower() in LOSSY:
            img.draft(img.mode, (draft_to, draft_to))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"cannot read {path}: {exc}",
            "the file is damaged or not an image: re-extract or re-download the dataset, or delete this file "
            "and its partner (image or mask)",
        ) from None
    return img, size


def read_pair(
    image_path: Path, mask_path: Path, res: int, mask_threshold: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """One image ``(res, res, 3)`` uint8 and its mask ``(res, res)`` in {0, 1}, checked and resized."""
    img, img_size = open_image(image_path, draft_to=res)
    mask_img, mask_size = open_image(mask_path)
    if img_size != mask_size:
        raise DataError(
            f"mask {mask_path.name} is {mask_size[0]}x{mask_size[1]} but its image {image_path.name} is "
            f"{img_size[0]}x{img_size[1]}",
            "the mask must have its image's size: replace it with the matching mask from the original dataset",
        )
    mask = np.asarray(mask_img.convert("RGB") if mask_img.mode not in ("L", "1", "RGB") else mask_img)
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    lossy = mask_path.suffix.lower() in LOSSY
    binary = binarize_mask(mask, str(mask_path), lossy=lossy, threshold=mask_threshold)
    return resize_image(img.convert("RGB"), res), resize_mask(binary, res)


def decode_pairs(
    pairs: list[tuple[str, Path, Path]], res: int, desc: str, mask_threshold: int | None = None
) -> Arrays:
    """Decode, check and resize all pairs (in threads) into :class:`~scsam_lite.data.cache.Arrays`."""
    images = np.empty((len(pairs), res, res, 3), np.uint8)
    masks = np.empty((len(pairs), res, res), np.uint8)

    def work(i: int) -> None:
        _, image_path, mask_path = pairs[i]
        images[i], masks[i] = read_pair(image_path, mask_path, res, mask_threshold)

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        bar = progress_bar(len(pairs), desc, unit="img") if len(pairs) >= 200 else None
        for _ in pool.map(work, range(len(pairs))):
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    ids = [p[0] for p in pairs]
    return Arrays(images, masks, ids, list(ids), np.full((len(pairs), 2), np.nan))
