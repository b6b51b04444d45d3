"""What can be downloaded, from where, and how each download is verified.

Checksums come from independent public records, never from guesses:

- SAM checkpoints: the sha256 and sizes of the three official files agree across many projects that pin them
  (e.g. micro-sam's model registry and several deployment scripts).
- PROMISE12 ``training_data.zip``: md5 as published by Zenodo (record 8026660) and a sha256 pinned by at least two
  independent projects (torch-em's PROMISE12 loader among them); both are checked.
- Kvasir-SEG: no trustworthy sha256 of ``kvasir-seg.zip`` is published, so the *extracted* files are verified
  instead: :data:`KVASIR_SEG_DIGEST` is the sha256 of the sorted ``"<sha256>  <path>"`` lines of the 2000 files
  under ``images/`` and ``masks/`` of the official release (see :func:`tree_digest`), with the file counts.
- Kaggle archives may be repacked by Kaggle, so their archive sha256 cannot be pinned: the structure is verified
  (file counts, paired image/mask names) and the observed sha256 is recorded in the dataset's manifest file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DownloadError
from .http import CHUNK

#: sha256 of the sorted lines "<sha256 of file>  <images|masks>/<file name>\n" of the official Kvasir-SEG release
#: (1000 images, 1000 masks; all .jpg).
KVASIR_SEG_DIGEST = "010f104f211d4f8779ca72ce88868b6a6f71e6fd2216bd67511acd984b5d6043"

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")

#: (folder) -> summary dict; ``quick=True`` skips content hashing (used to re-check an existing download).
Check = Callable[..., dict]


@dataclass(frozen=True)
class Source:
    """One way to get one dataset or checkpoint."""

    name: str  # download name, e.g. "kvasir-seg"
    origin: str  # "official" | "kaggle" | "zenodo"
    kind: str  # "dataset" | "checkpoint"
    filename: str  # archive or checkpoint file name
    page: str  # human page: where to download by hand, terms, citation
    url: str | None = None  # direct http(s) URL (None for Kaggle)
    kaggle: str | None = None  # Kaggle dataset slug "owner/name"
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None  # bytes
    check: Check | None = field(default=None, compare=False)  # verifies an extracted dataset
    note: str = ""  # one line for the help text


def _image_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    try:
        return sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
        )
    except OSError:
        return []


def tree_digest(folder: Path, subfolders: tuple[str, ...], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> str:
    """One sha256 for a file tree: the sha256 of the sorted lines ``"<sha256>  <subfolder>/<name>\\n"``.

    The lines are in ``sha256sum`` format, so the digest of a release can be derived from its published
    ``SHA256SUMS`` without shipping (or even downloading) the files.
    """
    lines = []
    for sub in subfolders:
        for p in _image_files(folder / sub, suffixes):
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while block := f.read(CHUNK):
                    h.update(block)
            lines.append(f"{h.hexdigest()}  {sub}/{p.name}\n")
    return hashlib.sha256("".join(sorted(lines, key=lambda line: line[66:])).encode()).hexdigest()


def _folders(top: Path, max_depth: int = 4) -> list[Path]:
    out, queue = [], [(top, 0)]
    while queue:
        folder, depth = queue.pop(0)
        out.append(folder)
        if depth < max_depth:
            try:
                subs = sorted(
                    p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))
                )
            except OSError:
                subs = []
            queue.extend((p, depth + 1) for p in subs)
    return out


def _child(folder: Path, names: tuple[str, ...]) -> Path | None:
    try:
        kids = {p.name.lower(): p for p in folder.iterdir() if p.is_dir()}
    except OSError:
        return None
    return next((kids[n] for n in names if n in kids), None)


def paired_folders(
    images: tuple[str, ...],
    masks: tuple[str, ...],
    count: int,
    *,
    digest: str | None = None,
    digest_required: bool = True,
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES,
) -> Check:
    """A check for image/mask datasets: some folder holds ``images`` and ``masks`` subfolders (names compared
    lower-case) with ``count`` files each and the same file stems; optionally the content digest must match.

    ``digest_required=False`` records whether the digest matches instead of failing (Kaggle copies)."""

    def check(tree: Path, quick: bool = False) -> dict:
        good, bad = [], []
        for folder in _folders(tree):
            img_dir, mask_dir = _child(folder, images), _child(folder, masks)
            if img_dir is None or mask_dir is None:
                continue
            imgs, msks = _image_files(img_dir, suffixes), _image_files(mask_dir, suffixes)
            rel = folder.relative_to(tree).as_posix()
            if len(imgs) != count or len(msks) != count:
                bad.append(f"{rel}: {len(imgs)} images, {len(msks)} masks")
            elif {p.stem for p in imgs} != {p.stem for p in msks}:
                bad.append(f"{rel}: image and mask names differ")
            else:
                good.append((rel, folder, img_dir.name, mask_dir.name))
        if bad or not good:  # every copy inside must be whole: the loaders may pick any of them
            found = "; ".join(bad) if bad else f"no folder with {images[0]}/ and {masks[0]}/ inside"
            raise DownloadError(
                f"the archive does not hold the expected {count} images in {images[0]}/ and {count} masks in "
                f"{masks[0]}/ ({found})",
                "the archive is incomplete or not this dataset; run again with --force, or download by hand",
            )
        rel, folder, img_name, mask_name = good[0]
        summary: dict = {"folder": rel, "images": count, "masks": count}
        if len(good) > 1:
            summary["copies"] = [g[0] for g in good]
        if digest and not quick:
            got = tree_digest(folder, (img_name, mask_name), suffixes)
            summary["content_sha256"] = got
            summary["matches_reference_release"] = got == digest
            if got != digest and digest_required:
                raise DownloadError(
                    f"the extracted files differ from the reference release: content sha256 {got}, expected {digest}",
                    "the archive is damaged or has changed upstream; run again with --force, or report it",
                )
        return summary

    return check


_CASE = re.compile(r"^(case\d+)_segmentation\.mhd$", re.IGNORECASE)


def volume_cases(count: int) -> Check:
    """A check for PROMISE12: ``count`` cases, each ``CaseXX.mhd/.raw`` with ``CaseXX_segmentation.mhd/.raw``."""

    def check(tree: Path, quick: bool = False) -> dict:
        cases: dict[str, Path] = {}
        missing = []
        for folder in _folders(tree):
            try:
                names = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
            except OSError:
                continue
            for lower in names:
                m = _CASE.match(lower)
                if not m:
                    continue
                case = m.group(1)
                need = [f"{case}.mhd", f"{case}.raw", f"{case}_segmentation.raw"]
                absent = [n for n in need if n not in names]
                if absent:
                    missing.append(f"{case}: no {', '.join(absent)}")
                else:
                    cases[case] = folder
        if len(cases) != count or missing:
            detail = "; ".join(missing[:5]) or f"found {len(cases)}"
            raise DownloadError(
                f"expected {count} complete cases (CaseXX.mhd/.raw with CaseXX_segmentation.mhd/.raw): {detail}",
                "the archive is incomplete or not PROMISE12 training data; run again with --force",
            )
        folders = sorted({p.relative_to(tree).as_posix() for p in cases.values()})
        return {"folder": folders[0] if len(folders) == 1 else ".", "cases": count}

    return check


_KVASIR_PAGE = "https://datasets.simula.no/kvasir-seg/"
_KVASIR_KAGGLE = "debeshjha1/kvasirseg"
_CVC_KAGGLE = "balraj98/cvcclinicdb"
_SAM_PAGE = "https://github.com/facebookresearch/segment-anything#model-checkpoints"


def _sam(variant: str, filename: str, sha256: str, size: int, note: str) -> Source:
    return Source(
        name=f"sam-{variant.replace('_', '-')}",
        origin="official",
        kind="checkpoint",
        filename=filename,
        page=_SAM_PAGE,
        url=f"https://dl.fbaipublicfiles.com/segment_anything/{filename}",
        sha256=sha256,
        size=size,
        note=note,
    )


#: name -> origin -> Source; the first origin of each name is its default.
SOURCES: dict[str, dict[str, Source]] = {
    "kvasir-seg": {
        "official": Source(
            name="kvasir-seg",
            origin="official",
            kind="dataset",
            filename="kvasir-seg.zip",
            page=_KVASIR_PAGE,
            url="https://datasets.simula.no/downloads/kvasir-seg.zip",
            check=paired_folders(("images",), ("masks",), 1000, digest=KVASIR_SEG_DIGEST),
            note="1000 colonoscopy polyp images with masks, about 50 MB, no login; research/education only",
        ),
        "kaggle": Source(
            name="kvasir-seg",
            origin="kaggle",
            kind="dataset",
            filename="kvasirseg.zip",
            page=f"https://www.kaggle.com/datasets/{_KVASIR_KAGGLE}",
            kaggle=_KVASIR_KAGGLE,
            check=paired_folders(
                ("images",), ("masks",), 1000, digest=KVASIR_SEG_DIGEST, digest_required=False
            ),
            note="the same data via the Kaggle API (the authors' upload; needs Kaggle credentials)",
        ),
    },
    "cvc-clinicdb": {
        "kaggle": Source(
            name="cvc-clinicdb",
            origin="kaggle",
            kind="dataset",
            filename="cvcclinicdb.zip",
            page=f"https://www.kaggle.com/datasets/{_CVC_KAGGLE}",
            kaggle=_CVC_KAGGLE,
            check=paired_folders(("original",), ("ground truth", "groundtruth", "ground_truth"), 612),
            note="612 colonoscopy frames with polyp masks via the Kaggle API (needs Kaggle credentials)",
        ),
    },
    "promise12": {
        "zenodo": Source(
            name="promise12",
            origin="zenodo",
            kind="dataset",
            filename="training_data.zip",
            page="https://zenodo.org/records/8026660",
            url="https://zenodo.org/records/8026660/files/training_data.zip?download=1",
            sha256="150287d0c74cd0105d8b70b43af4a7bf4f1fd3e1748829779177a0ccaf948f45",
            md5="f6d23994117c989daf07e5291edd0aea",
            size=323664221,
            check=volume_cases(50),
            note="50 prostate T2 MRI volumes with masks (MetaImage), ~324 MB, Zenodo record 8026660, no login",
        ),
    },
    "sam-vit-b": {
        "official": _sam(
            "vit_b",
            "sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            375042383,
            "SAM ViT-B checkpoint, 358 MB (the generalist's default)",
        ),
    },
    "sam-vit-l": {
        "official": _sam(
            "vit_l",
            "sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            1249524607,
            "SAM ViT-L checkpoint, 1.2 GB",
        ),
    },
    "sam-vit-h": {
        "official": _sam(
            "vit_h",
            "sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            2564550879,
            "SAM ViT-H checkpoint, 2.4 GB",
        ),
    },
}

#: Every name ``scsam-lite download`` accepts.
DOWNLOAD_NAMES: tuple[str, ...] = tuple(SOURCES)


def help_text() -> str:
    """The list of downloadable names and their sources, for the command line's help."""
    lines = ["names (source: the first is the default):"]
    for name, by_origin in SOURCES.items():
        origins = "|".join(by_origin)
        first = next(iter(by_origin.values()))
        lines.append(f"  {name:<13} [{origins}] {first.note}")
    lines.append("datasets land in ROOT/<name>/, checkpoints in ROOT/ (default: SCSAM_CHECKPOINT_DIR).")
    return "\n".join(lines)
