"""CVC-ClinicDB: 612 colonoscopy frames (384x288) from 29 videos, with polyp masks (Bernal et al., 2015).

Layouts found by discovery (official zip or Kaggle)::

    Original/<n>.tif         frames numbered 1..612      (or PNG/Original/<n>.png)
    Ground Truth/<n>.tif     binary masks                (or PNG/Ground Truth/<n>.png)

Groups: the frames come from 29 video sequences, each a contiguous run of frame numbers, and neighbouring frames
show the same polyp. Each frame carries its sequence (``"seq01"`` .. ``"seq29"``) as its group. The video table is
read from a README inside the dataset folder (or the folder above it) when one lists the frame ranges (lines such
as ``| 1 | 1-25 |`` or ``Sequence 1: frames 1 to 25``, chained from frame 1); otherwise the table below is used,
:data:`SEQUENCES`, as reproduced identically by two independent public sources (the dataset-ninja ``cvc-612``
converter and a second repository's sequence mapping): 1-25, 26-50, ..., 592-612.

Split (default ``split="sequences"``): whole sequences go to train, val or test, never a sequence across two;
sequences are taken in a fixed hashed order until test holds about ``test_fraction`` of the frames, then val about
``val_fraction`` (:func:`~scsam_lite.data.partition.whole_groups`). With the official frames and the defaults:
test sequences 6, 16, 27 (73 frames), val 10, 17, 18, 23 (59), train the other 22 (480). Deterministic and
independent of the run's seed.

Leaky splits that some papers use, for comparing with them only (near-duplicate frames of one polyp then sit in
train and test, which inflates test scores): ``split="contiguous"`` cuts the frames in frame-number order into
train (first 80%), val and test blocks (490 / 61 / 61; a video can straddle the two borders), ``split="random"``
draws frames by a fixed hash of their number.

Masks: the official TIFF masks are anti-aliased (138 of 612 have 44-50 grey levels, mostly faint noise around
the polyp) although the dataset documents binary masks. So a mask with more than two grey levels is thresholded
at 127 (:data:`MULTILEVEL_THRESHOLD`) and the dataset's summary says how many were; ``mask_threshold=N``
thresholds every mask at N instead.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .base import SegData
from .cache import Arrays, cache_info, load_or_build
from .discover import GROUND_TRUTH_NAMES, few, locate
from .images2d import IMAGE_SUFFIXES_2D, decode_pairs, pair_files
from .partition import check_fraction, contiguous_blocks, group_names, hashed_holdout, whole_groups

NAME = "cvc-clinicdb"
DOWNLOAD_HINT = "scsam-lite download cvc-clinicdb --root DIR"
CITATION = (
    "Bernal et al., WM-DOVA maps for accurate polyp highlighting in colonoscopy: Validation vs. saliency maps "
    "from physicians, Computerized Medical Imaging and Graphics 43, 2015"
)
#: The 29 video sequences as (first frame, last frame), in order (see the module docstring for the sources).
SEQUENCES: tuple[tuple[int, int], ...] = (
    (1, 25), (26, 50), (51, 67), (68, 78), (79, 103), (104, 126), (127, 151), (152, 177), (178, 199),
    (200, 205), (206, 227), (228, 252), (253, 277), (278, 297), (298, 317), (318, 342), (343, 363), (364, 383),
    (384, 408), (409, 428), (429, 447), (448, 466), (467, 478), (479, 503), (504, 528), (529, 546), (547, 571),
    (572, 591), (592, 612),
)  # fmt: skip
#: Masks with more than two grey levels (the official anti-aliased TIFFs) are thresholded here.
MULTILEVEL_THRESHOLD = 127
SPLITS = ("sequences", "contiguous", "random")
_RANGE = re.compile(r"(?<![\d.x])(\d{1,5})\s*(?:-|–|—|to)\s*(\d{1,5})(?![\d.x])", re.IGNORECASE)


def parse_video_table(text: str) -> list[tuple[int, int]] | None:
    """The frame ranges of a README's video table, in order, or None when it has none.

    Every ``a-b`` (or ``a to b``) on a line is a candidate; the table is the chain that starts at frame 1 and
    continues with a range starting one past the previous end, so unrelated numbers (sizes, years) are ignored.
    """
    ranges = {}
    for line in text.splitlines():
        for a, b in _RANGE.findall(line):
            if int(a) <= int(b):
                ranges.setdefault(int(a), int(b))
    chain, start = [], 1
    while start in ranges:
        chain.append((start, ranges[start]))
        start = ranges[start] + 1
    return chain if len(chain) >= 2 else None


def _readmes(folder: Path) -> list[Path]:
    """README files in the dataset folder and the folder above it (the archive's top level)."""
    out = []
    for d in (folder, folder.parent):
        try:
            out += sorted(p for p in d.iterdir() if p.is_file() and p.name.lower().startswith("readme"))
        except OSError:
            continue
    return out


def video_table(folder: Path) -> tuple[tuple[tuple[int, int], ...], str]:
    """The sequences' frame ranges and where they come from: a README beside the data, else :data:`SEQUENCES`."""
    for path in _readmes(folder):
        try:
            if path.stat().st_size > 1_000_000:
                continue
            table = parse_video_table(path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        if table:
            return tuple(table), f"the video table of {path.name}"
    return SEQUENCES, "the published video table"


def sequence_groups(ids: list[str], table: tuple[tuple[int, int], ...]) -> list[str] | None:
    """``seqNN`` for every frame id, or None when some frame is not in the table (a renamed or other copy)."""
    starts = np.array([a for a, _ in table])
    width = max(2, len(str(len(table))))
    out = []
    for frame in ids:
        if not frame.isdigit():
            return None
        k = int(np.searchsorted(starts, int(frame), side="right")) - 1
        if k < 0 or int(frame) > table[k][1]:
            return None
        out.append(f"seq{k + 1:0{width}d}")
    return out


def _outside(ids: list[str], table: tuple[tuple[int, int], ...]) -> list[str]:
    last = table[-1][1]
    return [i for i in ids if not i.isdigit() or not 1 <= int(i) <= last]


def _splits(
    ids: list[str], groups: list[str] | None, split: str, val_fraction: float, test_fraction: float
) -> tuple[dict[str, np.ndarray], str]:
    if split == "sequences" and groups is not None:
        splits = whole_groups(groups, val_fraction, test_fraction, "cvc-sequence:")
        names = {k: ", ".join(group_names(groups, v)) or "none" for k, v in splits.items() if k != "train"}
        return splits, f"whole video sequences: test {names['test']}; val {names['val']}; train the rest"
    if split == "contiguous":
        splits = contiguous_blocks(len(ids), val_fraction, test_fraction)
        blocks = ", ".join(f"{k} {ids[v[0]]}-{ids[v[-1]]}" for k, v in splits.items() if len(v))
        return (
            splits,
            f"contiguous frame blocks in frame-number order (leaky: videos straddle borders): {blocks}",
        )
    idx = np.arange(len(ids), dtype=np.int64)
    in_test = hashed_holdout(ids, test_fraction, "cvc-test:")
    pool = idx[~in_test]
    in_val = hashed_holdout([ids[i] for i in pool], val_fraction / (1 - test_fraction), "cvc-val:")
    splits = {"train": pool[~in_val], "val": pool[in_val], "test": idx[in_test]}
    return splits, "frames drawn by a fixed hash (leaky: frames of one video in train and test)"


def _frame_pairs(folder: Path) -> list[tuple[str, Path, Path]]:
    """The (frame id, image, mask) triples of the ``Original`` and ground-truth folders, whatever their spelling."""
    kids = {p.name.lower(): p for p in folder.iterdir()}
    gt = next(kids[n] for n in GROUND_TRUTH_NAMES if n in kids)
    return pair_files(kids["original"], gt, IMAGE_SUFFIXES_2D)


def _outside_error(
    ids: list[str], table: tuple[tuple[int, int], ...], folder: Path, source: str
) -> DataError:
    """Why a sequence split is impossible (frames the video table lacks) and the ways out, raised before decoding."""
    outside = _outside(ids, table)
    return DataError(
        f"{len(outside)} CVC-ClinicDB frame(s) in {folder} are in no video sequence of {source} "
        f"(frames 1-{table[-1][1]}): {few(outside)}",
        "use the official release (scsam-lite download cvc-clinicdb), or put a README listing each "
        "sequence's frame range (e.g. '| 1 | 1-25 |') in the dataset folder; for a frame split that ignores "
        "videos (leaky) load it from Python with load_dataset('cvc-clinicdb', split='contiguous')",
    )


def _decode_cached(
    pairs: list[tuple[str, Path, Path]],
    folder: Path,
    resolution: int,
    cache_dir: str | os.PathLike | None,
    mask_threshold: int | None,
) -> tuple[Arrays, dict]:
    """The decoded frames and masks from the cache, keyed on the mask thresholds too since they change the masks."""
    multilevel = MULTILEVEL_THRESHOLD if mask_threshold is None else None
    files = [p for _, image, mask in pairs for p in (image, mask)]
    return load_or_build(
        NAME,
        resolution,
        files,
        folder,
        lambda: decode_pairs(
            pairs, resolution, f"decoding {NAME} once (cached afterwards)", mask_threshold, multilevel
        ),
        cache_dir=cache_dir,
        params={"mask_threshold": mask_threshold, "multilevel_threshold": multilevel},
    )


def _masks_note(notes: dict, n_frames: int, mask_threshold: int | None) -> str:
    """The summary's line on how masks were thresholded ("" when none needed it), since the dataset says binary."""
    if mask_threshold is not None:
        return f"every mask thresholded at {mask_threshold} (data.mask_threshold)"
    if notes.get("multilevel_masks"):
        return (
            f"{notes['multilevel_masks']} of {n_frames} masks had more than two grey levels (anti-aliased): "
            f"thresholded at {notes['multilevel_threshold']}"
        )
    return ""


def load_cvc(
    root: str | os.PathLike | None = None,
    resolution: int = 256,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split: str = "sequences",
    mask_threshold: int | None = None,
) -> SegData:
    """CVC-ClinicDB at ``resolution`` px (square), decoded once and cached; split by whole video sequences.

    Args:
        val_fraction, test_fraction: approximate shares of the frames in val and test.
        split: ``"sequences"`` (whole videos, the default), or the leaky ``"contiguous"`` / ``"random"`` frame
            splits of some papers (see the module docstring).
        mask_threshold: threshold (0-254) for every mask; ``None`` thresholds only masks with more than two grey
            levels, at 127.
        seed: unused; the split is fixed so that runs with different seeds share val and test frames.
    """
    del seed
    if split not in SPLITS:
        raise ConfigError(f"unknown CVC-ClinicDB split {split!r}", f"use split= one of {', '.join(SPLITS)}")
    val_fraction = check_fraction("val_fraction", val_fraction)
    test_fraction = check_fraction("test_fraction", test_fraction)
    folder = locate(NAME, root, DOWNLOAD_HINT)
    pairs = _frame_pairs(folder)
    ids = [p[0] for p in pairs]
    table, source = video_table(folder)
    groups = sequence_groups(ids, table)
    if groups is None and split == "sequences":  # before decoding: fail fast
        raise _outside_error(ids, table, folder, source)
    splits, rule = _splits(ids, groups, split, val_fraction, test_fraction)
    arrays, meta = _decode_cached(pairs, folder, resolution, cache_dir, mask_threshold)
    masks_note = _masks_note(arrays.notes, len(ids), mask_threshold)
    info = {
        "source": str(folder),
        "split_rule": rule,
        "citation": CITATION,
        **cache_info(meta),
    }
    if groups is not None:
        info["groups"] = f"video sequences from {source}"
    if masks_note:
        info["masks"] = masks_note
    return SegData(
        name=NAME,
        images=arrays.images,
        masks=arrays.masks,
        ids=list(arrays.ids),
        cases=list(arrays.cases),
        splits=splits,
        spacing=arrays.spacing,
        resolution=resolution,
        info=info,
        groups=groups,
    )
