"""CVC-ClinicDB: 612 colonoscopy frames (384x288) from 29 videos, with polyp masks (Bernal et al., 2015).

Layouts found by discovery (official zip or Kaggle)::

    Original/<n>.tif         frames numbered 1..612      (or PNG/Original/<n>.png)
    Ground Truth/<n>.tif     binary masks                (or PNG/Ground Truth/<n>.png)

Split: frames come from 29 videos in contiguous runs of frame numbers, and neighbouring frames show the same
polyp, so a random split would leak test polyps into training. The frames are therefore cut, in frame-number
order, into three contiguous blocks: the first 80% train, the next ``val_fraction`` (10%) val, the last
``test_fraction`` (10%) test; with 612 frames that is 490 / 61 / 61 (train 1-490, val 491-551, test 552-612).
A video may still straddle one of the two borders; per-video splits would need the official video table.

Masks must be binary (two grey levels); ``mask_threshold=127`` accepts re-encoded masks with more levels.
"""

from __future__ import annotations

import os

from .base import SegData
from .cache import cache_info, load_or_build
from .discover import GROUND_TRUTH_NAMES, locate
from .images2d import IMAGE_SUFFIXES_2D, decode_pairs, pair_files
from .partition import check_fraction, contiguous_blocks

NAME = "cvc-clinicdb"
DOWNLOAD_HINT = "scsam-lite download cvc-clinicdb --root DIR"
CITATION = (
    "Bernal et al., WM-DOVA maps for accurate polyp highlighting in colonoscopy: Validation vs. saliency maps "
    "from physicians, Computerized Medical Imaging and Graphics 43, 2015"
)


def load_cvc(
    root: str | os.PathLike | None = None,
    resolution: int = 256,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    mask_threshold: int | None = None,
) -> SegData:
    """CVC-ClinicDB at ``resolution`` px (square), decoded once and cached; split by contiguous frame blocks.

    Args:
        val_fraction, test_fraction: sizes of the val and test blocks (the last frames go to test).
        mask_threshold: threshold (0-255) for masks with more than two grey levels; ``None`` rejects them.
        seed: unused; the split is fixed so that runs with different seeds share val and test frames.
    """
    del seed
    val_fraction = check_fraction("val_fraction", val_fraction)
    test_fraction = check_fraction("test_fraction", test_fraction)
    folder = locate(NAME, root, DOWNLOAD_HINT)
    kids = {p.name.lower(): p for p in folder.iterdir()}
    gt = next(kids[n] for n in GROUND_TRUTH_NAMES if n in kids)
    pairs = pair_files(kids["original"], gt, IMAGE_SUFFIXES_2D)
    splits = contiguous_blocks(len(pairs), val_fraction, test_fraction)
    files = [p for _, image, mask in pairs for p in (image, mask)]
    arrays, meta = load_or_build(
        NAME,
        resolution,
        files,
        folder,
        lambda: decode_pairs(pairs, resolution, f"decoding {NAME} once (cached afterwards)", mask_threshold),
        cache_dir=cache_dir,
        params={"mask_threshold": mask_threshold},
    )
    ids = list(arrays.ids)
    blocks = ", ".join(f"{k} {ids[v[0]]}-{ids[v[-1]]}" for k, v in splits.items() if len(v))
    return SegData(
        name=NAME,
        images=arrays.images,
        masks=arrays.masks,
        ids=ids,
        cases=list(arrays.cases),
        splits=splits,
        spacing=arrays.spacing,
        resolution=resolution,
        info={
            "source": str(folder),
            "split_rule": f"contiguous frame blocks in frame-number order: {blocks}",
            "citation": CITATION,
            **cache_info(meta),
        },
    )
