"""Browse a dataset: pick a split and an item, toggle the mask, compare the augmentation views."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .. import viz
from ..errors import ConfigError
from ..runtime import draw_seed
from .explorer import Explorer

#: A view turns (image, mask, seed) into an augmented (image, mask) pair of the same shapes and dtypes.
View = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _to_batch(image: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` uint8 -> ``(1, C, H, W)`` float in [0, 1], the layout the augmentations take."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0


def _from_batch(x: torch.Tensor) -> np.ndarray:
    return (x[0].permute(1, 2, 0).clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


def weak(image: np.ndarray, mask: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training weak view (geometry, same on image and mask) of one ``(H, W, C)`` uint8 item."""
    from ..data.augment import weak_view

    img, m = weak_view(_to_batch(image), torch.from_numpy(np.ascontiguousarray(mask))[None], seed=seed)
    return _from_batch(img), m[0].numpy()


def strong(image: np.ndarray, mask: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The strong view as a student sees it: photometric changes on top of the *same* weak view."""
    from ..data.augment import strong_view, weak_view

    img, m = weak_view(_to_batch(image), torch.from_numpy(np.ascontiguousarray(mask))[None], seed=seed)
    return _from_batch(strong_view(img, seed=seed + 1)), m[0].numpy()


def augmented_views(
    image: np.ndarray, mask: np.ndarray, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"original", "weak", "strong"}`` -> (image, mask) of one item, for :func:`scsam_lite.viz.views_row`."""
    return {"original": (image, mask), "weak": weak(image, mask, seed), "strong": strong(image, mask, seed)}


def default_views() -> dict[str, View]:
    """Weak and strong augmentation as the training methods use them (:mod:`scsam_lite.data.augment`)."""
    return {"weak": weak, "strong": strong}


class DatasetBrowser(Explorer):
    """Dropdown for the split, a slider for the item, an overlay toggle and a view dropdown.

    Args:
        data: the dataset (a :class:`~scsam_lite.data.base.SegData`).
        label_split: optional labeled/unlabeled split of the training set (anything with ``labeled`` and
            ``unlabeled`` index arrays, e.g. a ``LabelSplit``); adds "labeled" and "unlabeled" to the split menu.
        views: name -> augmentation, shown next to "original"; defaults to the package's weak and strong views.
        seed: augmentations are drawn from ``seed`` and the item index, so the same item always looks the same.
    """

    def __init__(
        self,
        data: Any,
        label_split: Any = None,
        *,
        views: Mapping[str, View] | None = None,
        seed: int = 0,
    ) -> None:
        self.data = data
        self.seed = seed
        self.views: dict[str, View] = dict(default_views() if views is None else views)
        self.split_indices: dict[str, np.ndarray] = {
            k: np.asarray(v, dtype=np.int64) for k, v in data.splits.items() if len(v)
        }
        if label_split is not None:
            self.split_indices["labeled"] = np.asarray(label_split.labeled, dtype=np.int64)
            self.split_indices["unlabeled"] = np.asarray(label_split.unlabeled, dtype=np.int64)
        if not self.split_indices:
            raise ConfigError(f"dataset {data.name!r} has no items in any split", "load a dataset with items")
        first = next(iter(self.split_indices))
        controls = {
            "split": W.Dropdown(options=list(self.split_indices), value=first, description="split"),
            "item": W.IntSlider(
                value=0,
                min=0,
                max=len(self.split_indices[first]) - 1,
                description="item",
                continuous_update=False,
            ),
            "overlay": W.Checkbox(value=True, description="show mask"),
            "view": W.Dropdown(options=["original", *self.views], value="original", description="view"),
        }
        controls["split"].observe(self._on_split, names="value")
        super().__init__(controls)

    def _on_split(self, change: dict) -> None:
        slider = self.controls["item"]
        n = len(self.split_indices[change["new"]])
        slider.value = min(slider.value, n - 1)
        slider.max = n - 1

    def item(self, split: str, item: int, view: str = "original") -> tuple[int, np.ndarray, np.ndarray]:
        """Dataset index, image and mask of the ``item``-th element of ``split`` under ``view``."""
        indices = self.split_indices[split]
        idx = int(indices[min(max(item, 0), len(indices) - 1)])
        image, mask = self.data.images[idx], self.data.masks[idx]
        if view != "original":
            image, mask = self.views[view](image, mask, draw_seed(self.seed, idx))
        return idx, np.asarray(image), np.asarray(mask)

    def render(self, split: str, item: int, overlay: bool, view: str) -> Figure:
        idx, image, mask = self.item(split, item, view)
        fig, ax = plt.subplots(figsize=(4.2, 4.4))
        n = len(self.split_indices[split])
        title = f"{self.data.name} · {split} {min(item, n - 1) + 1}/{n} · {self.data.ids[idx]} · {view}"
        viz.overlay(ax, image, mask if overlay else None, title=title)
        fig.tight_layout()
        return fig
