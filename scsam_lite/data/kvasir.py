"""Kvasir-SEG: 1000 colonoscopy frames with polyp masks (Jha et al., MMM 2020).

Layout (official ``kvasir-seg.zip``; Kaggle copies nest it one level deeper, which discovery handles)::

    Kvasir-SEG/images/<id>.jpg    RGB frames, 333 different sizes
    Kvasir-SEG/masks/<id>.jpg     masks saved as 3-channel JPEG: thresholded at 127 (compression noise)

Split (default ``split="medico2020"``): the dataset authors' own 880/120 split from MediaEval Medico 2020,
shipped with this package as id lists. The 120 become ``test``; ``val`` is a fixed 10% of the 880
(``val_fraction``), chosen by a hash of each id so every machine holds out the same images; ``train`` is the
rest (792 with the defaults). ``split="random"`` (for copies whose ids are not the official ones) holds out
12% as test and ``val_fraction`` of the rest as val, by the same hash rule.

Frames are resized to a square (aspect ratio not kept, as in the reference code); the default is 256 px.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError, DataError
from .base import SegData
from .cache import cache_info, load_or_build
from .discover import few, locate
from .images2d import IMAGE_SUFFIXES_2D, decode_pairs, pair_files
from .partition import check_fraction, hashed_holdout, shipped_ids

NAME = "kvasir-seg"
DOWNLOAD_HINT = "scsam-lite download kvasir-seg --root DIR"
CITATION = "Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MultiMedia Modeling (MMM) 2020"
SPLIT_FILES = ("kvasir_medico2020_train.txt", "kvasir_medico2020_val.txt")
RANDOM_TEST_FRACTION = 0.12


def _splits(ids: list[str], split: str, val_fraction: float) -> tuple[dict[str, np.ndarray], str]:
    n = len(ids)
    idx = np.arange(n, dtype=np.int64)
    if split == "medico2020":
        train_ids, test_ids = set(shipped_ids(SPLIT_FILES[0])), set(shipped_ids(SPLIT_FILES[1]))
        unknown = [i for i in ids if i not in train_ids and i not in test_ids]
        if unknown:
            raise DataError(
                f"{len(unknown)} Kvasir-SEG image(s) are not in the official Medico 2020 split: {few(unknown)}",
                "use the official release (scsam-lite download kvasir-seg), whose file names the split lists; a "
                "renamed copy can be split by a fixed hash from Python only: load_dataset('kvasir-seg', "
                "split='random') (the command line and the notebooks train on the official split)",
            )
        in_test = np.array([i in test_ids for i in ids], dtype=bool)
        rule = "Medico 2020 split (880 train / 120 test ids)"
    elif split == "random":
        in_test = hashed_holdout(ids, RANDOM_TEST_FRACTION, "kvasir-test:")
        rule = f"hashed split: {RANDOM_TEST_FRACTION:.0%} test"
    else:
        raise ConfigError(
            f"unknown Kvasir-SEG split {split!r}", "use split='medico2020' (default) or 'random'"
        )
    pool = idx[~in_test]
    in_val = hashed_holdout([ids[i] for i in pool], val_fraction, "kvasir-val:")
    splits = {"train": pool[~in_val], "val": pool[in_val], "test": idx[in_test]}
    rule += f"; val = {val_fraction:.0%} of the non-test images by a fixed hash of their ids"
    return splits, rule


def load_kvasir(
    root: str | os.PathLike | None = None,
    resolution: int = 256,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    split: str = "medico2020",
    mask_threshold: int | None = None,
) -> SegData:
    """Kvasir-SEG at ``resolution`` px, decoded once and cached.

    Args:
        root: data root holding the dataset (see :func:`scsam_lite.data.discover.find_existing`).
        val_fraction: share of the non-test images held out for validation.
        split: ``"medico2020"`` (the authors' split) or ``"random"`` (a fixed hash split for other copies).
        mask_threshold: grey level (0-254) to threshold the JPEG masks at instead of 127.
        seed: unused; the split is fixed so that runs with different seeds share val and test images.
    """
    del seed
    val_fraction = check_fraction("val_fraction", val_fraction)
    folder = locate(NAME, root, DOWNLOAD_HINT)
    pairs = pair_files(folder / "images", folder / "masks", IMAGE_SUFFIXES_2D)
    splits, rule = _splits([p[0] for p in pairs], split, val_fraction)  # before decoding: fail fast
    files = [p for _, image, mask in pairs for p in (image, mask)]
    arrays, meta = load_or_build(
        NAME,
        resolution,
        files,
        folder,
        lambda: decode_pairs(pairs, resolution, f"decoding {NAME} once (cached afterwards)", mask_threshold),
        cache_dir=cache_dir,
        params={"mask": "jpeg>127, area resize"}
        | ({} if mask_threshold is None else {"mask_threshold": mask_threshold}),
    )
    return SegData(
        name=NAME,
        images=arrays.images,
        masks=arrays.masks,
        ids=list(arrays.ids),
        cases=list(arrays.cases),
        splits=splits,
        spacing=arrays.spacing,
        resolution=resolution,
        info={"source": str(folder), "split_rule": rule, "citation": CITATION, **cache_info(meta)},
    )
