"""PROMISE12: 50 prostate T2 MRI volumes with gland masks (Litjens et al., Medical Image Analysis 2014).

Files (``training_data.zip`` from Zenodo record 8026660; the challenge's TrainingData_Part1..3 folders work
too)::

    CaseXX.mhd + CaseXX.raw                              the volume
    CaseXX_segmentation.mhd + CaseXX_segmentation.raw    its binary gland mask

Preprocessing: each volume's intensities are scaled between its 0.5th and 99.5th percentiles (MRI has no fixed
units), every axial slice is resized to a square ``resolution`` (image bilinear, mask nearest), and the
in-plane spacing is rescaled to the new pixel size; the slice spacing is kept per case for 3D metrics.

Each slice carries its case as its group (``SegData.groups``). Split, by case (slices of one patient never straddle
splits): val Case35-39, test Case40-49, train the other 35
(Case00-34); ``val_cases`` and ``test_cases`` override it. PROMISE12 has no official split of its 50 labelled
cases and the reference SC-SAM code ships no lists of its own: this one is a public case-level split used by
semi-supervised papers (the 'abd' lists), not necessarily the paper's.
Another public split (Mamba-UNet's lists) uses val Case02, 07, 22, 31, 46 and test Case05, 09, 16, 30, 34, 36,
38, 43, 45, 49; pass those to compare with papers that used it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError
from .base import SegData
from .cache import Arrays, cache_info, load_or_build
from .discover import few, locate
from .images2d import natural_key
from .partition import by_case, case_ranges
from .preprocess import PERCENTILES, binarize_mask, normalize_intensity, resize_slices, to_uint8

NAME = "promise12"
DOWNLOAD_HINT = "scsam-lite download promise12 --root DIR"
CITATION = (
    "Litjens et al., Evaluation of prostate segmentation algorithms for MRI: the PROMISE12 challenge, "
    "Medical Image Analysis 18(2), 2014"
)
VAL_CASES = tuple(f"Case{i:02d}" for i in range(35, 40))
TEST_CASES = tuple(f"Case{i:02d}" for i in range(40, 50))
_FILE = re.compile(r"^(case\d+)(_segmentation)?\.mhd$", re.IGNORECASE)


def _case_files(folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Case -> volume .mhd and case -> segmentation .mhd, in ``folder`` and its direct subfolders."""
    volumes: dict[str, Path] = {}
    segs: dict[str, Path] = {}
    for d in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        for p in sorted(d.iterdir()):
            m = _FILE.match(p.name)
            if m:
                case = "Case" + m.group(1)[4:]
                (segs if m.group(2) else volumes)[case] = p
    return volumes, segs


def _companions(mhd: Path) -> list[Path]:
    """The .mhd header and the data file it points to (for the cache fingerprint)."""
    out = [mhd]
    for ext in (".raw", ".zraw"):
        if mhd.with_suffix(ext).exists():
            out.append(mhd.with_suffix(ext))
    return out


def read_volume(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A volume as ``(Z, Y, X)`` array and its spacing ``(z, y, x)`` in mm; DataError naming the file."""
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
        arr = sitk.GetArrayFromImage(img)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise DataError(
            f"cannot read {path}: {reason}",
            "the .mhd header or its .raw data file is damaged or missing: re-extract training_data.zip",
        ) from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(
            f"{path} is not a 3D volume (shape {arr.shape})", "use the PROMISE12 training volumes"
        )
    sx, sy, *rest = img.GetSpacing()
    return arr, (float(rest[0]) if rest else 1.0, float(sy), float(sx))


def _build(
    cases: list[str],
    volumes: dict[str, Path],
    segs: dict[str, Path],
    res: int,
    mask_threshold: int | None = None,
) -> Arrays:
    images, masks, ids, case_of, spacing = [], [], [], [], []
    slice_spacing: dict[str, float] = {}
    for case in cases:
        vol, (sz, sy, sx) = read_volume(volumes[case])
        seg, _ = read_volume(segs[case])
        if seg.shape != vol.shape:
            raise DataError(
                f"segmentation {segs[case].name} has shape {seg.shape} but {volumes[case].name} has {vol.shape}",
                "the mask must match its volume voxel for voxel: re-extract training_data.zip",
            )
        flat = seg.reshape(-1, seg.shape[-1])
        binary = binarize_mask(flat, str(segs[case]), lossy=False, threshold=mask_threshold).reshape(
            seg.shape
        )
        images.append(to_uint8(resize_slices(normalize_intensity(vol, PERCENTILES), res, mask=False)))
        masks.append(resize_slices(binary, res, mask=True).round().astype(np.uint8))
        z, h, w = vol.shape
        ids += [f"{case}_slice_{k:03d}" for k in range(z)]
        case_of += [case] * z
        spacing += [(sy * h / res, sx * w / res)] * z
        slice_spacing[case] = sz
    return Arrays(
        images=np.concatenate(images)[..., None],
        masks=np.concatenate(masks),
        ids=ids,
        cases=case_of,
        spacing=np.asarray(spacing, dtype=np.float64),
        slice_spacing=slice_spacing,
    )


def _check_pairs(volumes: dict[str, Path], segs: dict[str, Path], folder: Path) -> None:
    """DataError naming every case that lacks its volume or its segmentation: one message for all of them, so a
    half-extracted download is fixed in one go rather than case by case."""
    no_seg = sorted(set(volumes) - set(segs), key=natural_key)
    no_vol = sorted(set(segs) - set(volumes), key=natural_key)
    if no_seg or no_vol:
        parts = []
        if no_seg:
            parts.append(f"{len(no_seg)} volume(s) have no CaseXX_segmentation.mhd: {few(no_seg)}")
        if no_vol:
            parts.append(f"{len(no_vol)} segmentation(s) have no volume: {few(no_vol)}")
        raise DataError(
            f"{'; '.join(parts)} (in {folder})",
            "every CaseXX.mhd needs its CaseXX_segmentation.mhd (the test set has none: use training_data.zip)",
        )


def load_promise12(
    root: str | os.PathLike | None = None,
    resolution: int = 256,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    *,
    val_cases: Sequence[str] = VAL_CASES,
    test_cases: Sequence[str] = TEST_CASES,
    mask_threshold: int | None = None,
) -> SegData:
    """PROMISE12 as 2D axial slices at ``resolution`` px, decoded once and cached; split by case.

    Args:
        val_cases, test_cases: case names (``"Case35"``) of the val and test splits; the rest is train.
        mask_threshold: grey level (0-254) for segmentations with more than two levels; None rejects them.
        seed: unused; the split is fixed so that runs with different seeds share val and test cases.
    """
    del seed
    folder = locate(NAME, root, DOWNLOAD_HINT)
    volumes, segs = _case_files(folder)
    _check_pairs(volumes, segs, folder)
    cases = sorted(volumes, key=natural_key)
    files = [f for c in cases for mhd in (volumes[c], segs[c]) for f in _companions(mhd)]
    arrays, meta = load_or_build(
        NAME,
        resolution,
        files,
        folder,
        lambda: _build(cases, volumes, segs, resolution, mask_threshold),
        cache_dir=cache_dir,
        params={"percentiles": list(PERCENTILES), "image": "bilinear", "mask": "nearest"}
        | ({} if mask_threshold is None else {"mask_threshold": mask_threshold}),
    )
    splits = by_case(list(arrays.cases), val_cases, test_cases)
    if len(splits["train"]) == 0:
        raise ConfigError("no PROMISE12 case is left for training", "list fewer val_cases/test_cases")
    missing = sorted((set(val_cases) | set(test_cases)) - set(cases), key=natural_key)
    rule = f"by case: val {case_ranges(val_cases)}; test {case_ranges(test_cases)}; train the rest"
    if missing:
        rule += f" (not present here: {few(missing)})"
    return SegData(
        name=NAME,
        images=arrays.images,
        masks=arrays.masks,
        ids=list(arrays.ids),
        cases=list(arrays.cases),
        splits=splits,
        spacing=arrays.spacing,
        resolution=resolution,
        slice_spacing={k: float(v) for k, v in arrays.slice_spacing.items()},
        info={"source": str(folder), "split_rule": rule, "citation": CITATION, **cache_info(meta)},
        groups=list(arrays.cases),
    )
