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
from .preprocess import binarize_mask, grey_levels, resize_image, resize_mask

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


TIFF = (".tif", ".tiff")


def to_8bit(array: np.ndarray) -> np.ndarray:
    """Pixel values as uint8: 16-bit (and other integer) images scaled from their type's range, floats from
    [0, 1] (or their own maximum when above 1); never clipped (a 16-bit image clipped to 255 is all white)."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        top = float(np.iinfo(array.dtype).max) if array.max(initial=0) > 255 else 255.0
        return np.round(np.clip(array, 0, None) / top * 255).astype(np.uint8)
    top = max(1.0, float(np.nanmax(array, initial=0.0)))
    return np.round(np.clip(np.nan_to_num(array), 0, None) / top * 255).astype(np.uint8)


def _read_tiff(path: Path) -> Image.Image:
    """A TIFF through tifffile: medical TIFFs (e.g. CVC-ClinicDB's RGB frames tagged BlackIsZero) that Pillow
    cannot identify, and 16-bit ones, which it would saturate."""
    import tifffile

    array = tifffile.imread(path)
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # planar (C, H, W)
    if array.ndim == 3:
        array = array[..., :3] if array.shape[-1] >= 3 else array[..., 0]
    if array.ndim != 2 and not (array.ndim == 3 and array.shape[-1] == 3):
        raise ValueError(f"unexpected TIFF shape {array.shape}")
    return Image.fromarray(to_8bit(array))


def open_image(path: Path, draft_to: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """The decoded image and its original (width, height); a DataError naming the file if it is unreadable.

    ``draft_to`` lets the JPEG decoder shrink by 2, 4 or 8 while decoding (never below ``draft_to`` pixels),
    which makes the one-time decode of large photos several times faster. TIFFs are read with tifffile, and
    images of more than 8 bits are scaled to 8 bits, never clipped.
    """
    try:
        if path.suffix.lower() in TIFF:
            img = _read_tiff(path)
            return img, img.size
        img = Image.open(path)
        size = img.size
        if draft_to is not None and path.suffix.lower() in LOSSY:
            img.draft(img.mode, (draft_to, draft_to))
        img.load()
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # more than 8 bits: scale, do not clip
            img = Image.fromarray(to_8bit(np.asarray(img)))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(
            f"cannot read {path}: {exc}",
            "the file is damaged or not an image: re-extract or re-download the dataset, or delete this file "
            "and its partner (image or mask)",
        ) from None
    return img, size


def read_pair(
    image_path: Path,
    mask_path: Path,
    res: int,
    mask_threshold: int | None,
    multilevel_threshold: int | None = None,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """One image ``(res, res, 3)`` uint8, its mask ``(res, res)`` in {0, 1}, checked and resized, and whether the
    mask was a lossless one with more than two grey levels thresholded at ``multilevel_threshold`` (the dataset's
    own rule, used when ``mask_threshold`` is None)."""
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
    threshold, multilevel = mask_threshold, False
    if threshold is None and multilevel_threshold is not None and not lossy and grey_levels(mask) > 2:
        threshold, multilevel = multilevel_threshold, True
    binary = binarize_mask(mask, str(mask_path), lossy=lossy, threshold=threshold)
    return resize_image(img.convert("RGB"), res), resize_mask(binary, res), multilevel


def check_some_foreground(masks: np.ndarray, folder: str) -> None:
    """A dataset whose masks are all empty trains on nothing and scores a perfect Dice: an error."""
    if len(masks) and not masks.any():
        raise DataError(
            f"every mask read from {folder} is empty",
            "check that the masks folder holds the masks (foreground > 0), and that they are not saved darker "
            "than the images (e.g. 0/1 values are read as two-level masks; others need mask_threshold)",
        )


def decode_pairs(
    pairs: list[tuple[str, Path, Path]],
    res: int,
    desc: str,
    mask_threshold: int | None = None,
    multilevel_threshold: int | None = None,
) -> Arrays:
    """Decode, check and resize all pairs (in threads) into :class:`~scsam_lite.data.cache.Arrays`.

    ``multilevel_threshold``: see :func:`read_pair`; how many masks it thresholded goes into the arrays' notes.
    """
    images = np.empty((len(pairs), res, res, 3), np.uint8)
    masks = np.empty((len(pairs), res, res), np.uint8)
    multilevel = np.zeros(len(pairs), bool)

    def work(i: int) -> None:
        _, image_path, mask_path = pairs[i]
        images[i], masks[i], multilevel[i] = read_pair(
            image_path, mask_path, res, mask_threshold, multilevel_threshold
        )

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        bar = progress_bar(len(pairs), desc, unit="img") if len(pairs) >= 200 else None
        for _ in pool.map(work, range(len(pairs))):
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    check_some_foreground(masks, str(pairs[0][2].parent) if pairs else "")
    ids = [p[0] for p in pairs]
    notes = {}
    if multilevel_threshold is not None and mask_threshold is None:
        notes = {"multilevel_masks": int(multilevel.sum()), "multilevel_threshold": multilevel_threshold}
    return Arrays(images, masks, ids, list(ids), np.full((len(pairs), 2), np.nan), notes=notes)
