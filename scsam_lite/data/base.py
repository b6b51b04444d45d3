"""The in-memory form every dataset loads into.

All datasets, synthetic or real, 2D or volumetric, end up as one :class:`SegData`: uint8 arrays at the training
resolution (decoded once, see :mod:`scsam_lite.data.cache`), item names, the case each item belongs to, the group of
correlated items it comes from where known (a video, a patient), and the train/val/test indices. Trainers and
notebooks only ever see this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError


@dataclass
class SegData:
    """A binary segmentation dataset at one resolution.

    Attributes:
        name: registry name, e.g. ``"kvasir-seg"``.
        images: ``(N, H, W, C)`` uint8, C = 3 (RGB) or 1 (grayscale).
        masks: ``(N, H, W)`` uint8 with values in {0, 1}.
        ids: item names (file stem, or ``CaseXX_slice_NNN`` for volumes).
        cases: the case (patient, volume) of each item; equal to ``ids`` for 2D datasets. Slices of one case are
            contiguous and in slice order.
        splits: ``"train"``, ``"val"``, ``"test"`` -> sorted int64 indices into the arrays.
        spacing: ``(N, 2)`` float pixel spacing (y, x) in mm at this resolution; NaN where unknown (photos).
        slice_spacing: case -> spacing between slices in mm (volumes only), for 3D metrics.
        resolution: side of the square training resolution in pixels.
        info: free-form provenance (source folder, split rule, cache path) shown by notebooks and saved in runs.
        groups: the group of each item (e.g. ``"seq07"``, the video a CVC-ClinicDB frame comes from; the case of a
            PROMISE12 slice), or None when unknown. Items of one group are not independent: splits keep a group
            whole and ``scsam-lite compare`` resamples groups, not items.
    """

    name: str
    images: np.ndarray
    masks: np.ndarray
    ids: list[str]
    cases: list[str]
    splits: dict[str, np.ndarray]
    spacing: np.ndarray
    resolution: int
    slice_spacing: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        if self.groups is not None:
            self.groups = [str(g) for g in self.groups]
            if len(self.groups) != len(self.ids):
                raise DataError(
                    f"{len(self.groups)} group ids for {len(self.ids)} items", "give one group id per item"
                )

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        masks: np.ndarray,
        splits: dict[str, np.ndarray] | None = None,
        *,
        name: str = "arrays",
        ids: list[str] | None = None,
        groups: list | None = None,
    ) -> SegData:
        """Your own images as a dataset: square ``(N, H, H, C)`` (or ``(N, H, H)``) uint8 images, ``(N, H, H)`` masks.

        For trying the widgets and methods on a handful of your own pictures, and for tests. Masks may be 0/1 or
        0/255; ``splits`` defaults to everything in ``train``. Pixel spacing is unknown (distances in pixels).
        ``groups``: one id per image for images that are not independent (frames of one video), else None.
        """
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        masks = np.asarray(masks)
        n = images.shape[0]
        if images.ndim != 4 or images.shape[1] != images.shape[2] or masks.shape != images.shape[:3]:
            raise DataError(
                f"images {images.shape} and masks {masks.shape} do not match",
                "pass square images (N, H, H, C) or (N, H, H) and masks (N, H, H) of the same size",
            )
        if images.dtype != np.uint8:
            raise DataError(
                f"images are {images.dtype}, not uint8", "scale them to 0-255 and use .astype(np.uint8)"
            )
        names = ids if ids is not None else [f"{name}{i:04d}" for i in range(n)]
        splits = splits if splits is not None else {"train": np.arange(n)}
        return cls(
            name=name,
            images=images,
            masks=(masks > 0).astype(np.uint8),
            ids=list(names),
            cases=list(names),
            splits={k: np.asarray(v, dtype=np.int64) for k, v in splits.items()},
            spacing=np.full((n, 2), np.nan),
            resolution=int(images.shape[1]),
            groups=None if groups is None else list(groups),
        )

    @property
    def channels(self) -> int:
        return int(self.images.shape[-1])

    @property
    def is_volumetric(self) -> bool:
        return bool(self.slice_spacing)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def split_cases(self, split: str) -> dict[str, np.ndarray]:
        """Case -> indices (slice order) of the items of ``split``: volumes for 3D metrics and case-level splits."""
        out: dict[str, list[int]] = {}
        for i in self.splits[split]:
            out.setdefault(self.cases[int(i)], []).append(int(i))
        return {c: np.asarray(v, dtype=np.int64) for c, v in out.items()}

    def summary(self) -> str:
        parts = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        kind = "volumes" if self.is_volumetric else "images"
        n_cases = len(set(self.cases))
        text = (
            f"{self.name}: {len(self)} items from {n_cases} {'cases' if self.is_volumetric else kind} at "
            f"{self.resolution} px, {self.channels} channel(s); {parts}"
        )
        if self.groups is not None and not self.is_volumetric:
            text += f"; {len(set(self.groups))} groups ({self.info.get('groups', 'correlated items')})"
        if self.info.get("masks"):
            text += f"; {self.info['masks']}"
        return text
