"""Plain matplotlib pictures for notebooks and widgets.

Every function returns a :class:`matplotlib.figure.Figure` made with ``pyplot``, so in Jupyter it appears like any
other plot at the end of the cell (end the line with ``;`` to avoid a second copy of the returned figure).
Colours are fixed throughout the course: the ground truth is a translucent green fill with a green outline, a
prediction is a magenta outline, so "green = truth, magenta = model" holds in every notebook.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

GT_COLOR = "#2bd92b"
PRED_COLOR = "#ff2bd5"
SPLIT_COLORS = {
    "train": "#4c72b0",
    "labeled": "#dd8452",
    "unlabeled": "#8c8c8c",
    "val": "#55a868",
    "test": "#c44e52",
}


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def show_image(ax: Axes, image: Any, title: str | None = None) -> None:
    """Draw an ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` image (uint8 or float in [0, 1]) without axis ticks."""
    img = _to_numpy(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        vmax = 255 if img.dtype == np.uint8 else None
        ax.imshow(img, cmap="gray", vmin=0 if vmax else None, vmax=vmax, interpolation="nearest")
    else:
        ax.imshow(img if img.dtype == np.uint8 else np.clip(img, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _outline(ax: Axes, mask: np.ndarray, color: str, style: str = "solid") -> None:
    if mask.any() and not mask.all():
        ax.contour(mask.astype(float), levels=[0.5], colors=[color], linewidths=1.5, linestyles=style)


def overlay(
    ax: Axes,
    image: Any,
    mask: Any = None,
    pred: Any = None,
    *,
    title: str | None = None,
    alpha: float = 0.35,
) -> None:
    """An image with the ground-truth mask (green fill + outline) and a prediction (magenta outline) on top."""
    show_image(ax, image, title)
    if mask is not None:
        m = _to_numpy(mask).astype(bool)
        rgba = np.zeros((*m.shape, 4))
        rgba[m] = to_rgba(GT_COLOR, alpha)
        ax.imshow(rgba, interpolation="nearest")
        _outline(ax, m, GT_COLOR)
    if pred is not None:
        _outline(ax, _to_numpy(pred).astype(bool), PRED_COLOR, "dashed")


def sample_grid(
    images: Sequence[Any],
    masks: Sequence[Any] | None = None,
    preds: Sequence[Any] | None = None,
    *,
    titles: Sequence[str] | None = None,
    ncols: int = 4,
    size: float = 2.6,
    suptitle: str | None = None,
) -> Figure:
    """A grid of images with optional mask fills and prediction outlines, one panel per item."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        overlay(
            ax,
            images[i],
            None if masks is None else masks[i],
            None if preds is None else preds[i],
            title=None if titles is None else titles[i],
        )
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def dataset_gallery(datasets: Sequence[Any], n: int = 4, split: str = "train", size: float = 2.4) -> Figure:
    """One row per dataset: its first ``n`` items of ``split`` with the mask overlaid, to compare them side by side."""
    rows = len(datasets)
    fig, axes = plt.subplots(rows, n, figsize=(size * n, size * rows + 0.2), squeeze=False)
    for r, data in enumerate(datasets):
        idx = np.asarray(data.splits[split])[:n]
        for c, ax in enumerate(axes[r]):
            if c >= len(idx):
                ax.axis("off")
                continue
            i = int(idx[c])
            overlay(ax, data.images[i], data.masks[i], title=data.ids[i])
        axes[r][0].set_ylabel(data.name, fontsize=11)
    fig.tight_layout()
    return fig


def split_counts(data: Any, label_split: Any = None) -> dict[str, int]:
    """Items per split, with the training set broken into labeled/unlabeled when a label split is given."""
    counts = {name: len(idx) for name, idx in data.splits.items()}
    if label_split is not None:
        counts.pop("train", None)
        counts = {
            "labeled": len(label_split.labeled),
            "unlabeled": len(label_split.unlabeled),
            **counts,
        }
    return counts


def split_bar(counts: Mapping[str, int], title: str | None = None, ax: Axes | None = None) -> Figure:
    """Horizontal bars of item counts per split (train, labeled, unlabeled, val, test), each labelled."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 0.45 * len(counts) + 0.9))
    else:
        fig = ax.figure
    names = list(counts)
    values = [int(counts[k]) for k in names]
    bars = ax.barh(names, values, color=[SPLIT_COLORS.get(k, "#4c72b0") for k in names])
    ax.bar_label(bars, labels=[str(v) for v in values], padding=3, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("items")
    ax.set_xlim(0, max(values + [1]) * 1.15)
    ax.spines[["top", "right"]].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def views_row(views: Mapping[str, tuple[Any, Any]], size: float = 2.8, suptitle: str | None = None) -> Figure:
    """The same item under several views, e.g. ``{"original": (img, mask), "weak": ..., "strong": ...}``."""
    fig, axes = plt.subplots(1, len(views), figsize=(size * len(views), size + 0.4), squeeze=False)
    for ax, (name, (image, mask)) in zip(axes[0], views.items(), strict=True):
        overlay(ax, image, mask, title=name)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """PNG bytes of a figure, drawn with Agg whatever the backend (widgets display these)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_pixels(fig: Figure) -> np.ndarray:
    """The figure drawn to an ``(H, W, 4)`` uint8 array, for tests that compare renders."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def close(fig: Figure | None) -> None:
    """Release a figure from pyplot (no-op for None), so long widget sessions do not pile figures up."""
    if fig is not None:
        plt.close(fig)


def plot_histories(
    run_dirs: Sequence[Any], model: str = "unet", labels: Sequence[str] | None = None
) -> Figure:
    """Validation Dice against step for several runs (read from each ``history.jsonl``), to compare methods."""
    import json
    from pathlib import Path

    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, run_dir in enumerate(run_dirs):
        path = Path(run_dir) / "history.jsonl"
        rows = (
            [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if path.is_file()
            else []
        )
        points = [(r["step"], r["val_dice"][model]) for r in rows if model in r.get("val_dice", {})]
        name = labels[i] if labels is not None else Path(run_dir).name
        if points:
            steps, dices = zip(*points, strict=True)
            ax.plot(steps, dices, marker="o", markersize=3, label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"validation Dice ({model})")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if ax.lines:
        ax.legend(fontsize=9)
    fig.tight_layout()
    return fig


#: Prompt colours: positive clicks, negative clicks and the box (distinct from truth green and model magenta).
POS_COLOR = "#ffd400"
NEG_COLOR = "#ff3b30"
BOX_COLOR = "#00c8ff"


def draw_points(
    ax: Axes, points: Any, labels: Any = None, *, item: int = 0, size: float = 70
) -> tuple[int, int]:
    """Positive points as yellow discs, negative ones as red crosses; padding (label -1) is not drawn.

    ``points`` is a :class:`~scsam_lite.prompts.Points` batch (``item`` picks the image) or ``(N, 2)`` ``(x, y)``
    coordinates with ``labels`` ``(N,)``. Returns how many positive and negative points were drawn.
    """
    if labels is None:
        coords, labels = points.coords[item], points.labels[item]
    else:
        coords = points
    xy = _to_numpy(coords).reshape(-1, 2).astype(float)
    lab = _to_numpy(labels).reshape(-1)
    pos, neg = xy[lab == 1], xy[lab == 0]
    if len(pos):
        ax.scatter(
            pos[:, 0],
            pos[:, 1],
            s=size,
            marker="o",
            c=POS_COLOR,
            edgecolors="black",
            linewidths=1.0,
            label="positive",
            zorder=5,
        )
    if len(neg):
        ax.scatter(
            neg[:, 0],
            neg[:, 1],
            s=size,
            marker="X",
            c=NEG_COLOR,
            edgecolors="white",
            linewidths=0.8,
            label="negative",
            zorder=5,
        )
    return len(pos), len(neg)


def draw_box(ax: Axes, box: Any, *, color: str = BOX_COLOR) -> None:
    """A box prompt ``(x0, y0, x1, y1)`` in inclusive pixel indices, drawn around the outer pixel edges."""
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = (float(v) for v in _to_numpy(box).reshape(-1)[:4])
    ax.add_patch(
        Rectangle(
            (x0 - 0.5, y0 - 0.5),
            x1 - x0 + 1,
            y1 - y0 + 1,
            fill=False,
            edgecolor=color,
            linewidth=1.8,
            zorder=4,
        )
    )


def outline(ax: Axes, mask: Any, color: str = PRED_COLOR, style: str = "solid") -> None:
    """The outline of a binary mask (nothing for an empty or full one): two models' masks on one image."""
    _outline(ax, _to_numpy(mask).astype(bool), color, style)


def plot_run(run_dir: Any, terms: Sequence[str] = ()) -> Figure:
    """One run's ``history.jsonl``: validation Dice of every evaluated model (left) and, if asked, logged training
    terms such as ``w_sam_pseudo`` or ``pseudo_agreement`` (right; the values of each validation step)."""
    import json
    from pathlib import Path

    path = Path(run_dir) / "history.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
    fig, axes = plt.subplots(1, 2 if terms else 1, figsize=(10.5 if terms else 6, 3.4), squeeze=False)
    left = axes[0][0]
    models = list(dict.fromkeys(m for r in rows for m in r.get("val_dice", {})))
    for model in models:
        points = [(r["step"], r["val_dice"][model]) for r in rows if model in r.get("val_dice", {})]
        left.plot(*zip(*points, strict=True), marker="o", markersize=3, label=model)
    left.set_ylim(0, 1)
    left.set_ylabel("validation Dice")
    for term in terms:
        points = [(r["step"], r[term]) for r in rows if term in r]
        if points:
            axes[0][1].plot(*zip(*points, strict=True), marker="o", markersize=3, label=term)
    for ax in axes[0]:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(Path(run_dir).name, fontsize=10)
    fig.tight_layout()
    return fig


def mask_grid(
    images: Sequence[Any],
    masks: Sequence[Any],
    points: Any = None,
    *,
    boxes: Any = None,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    color: str = PRED_COLOR,
    size: float = 2.6,
) -> Figure:
    """Hard masks as a translucent fill over their images, with the prompts sampled from them on top.

    A fill rather than an outline, so that a noisy mask (an untrained model's) still reads as a mask. ``points`` is
    a :class:`~scsam_lite.prompts.Points` batch with one entry per image, ``boxes`` ``(B, 4)``; either may be None.
    """
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.4), squeeze=False)
    for i, ax in enumerate(axes[0]):
        show_image(ax, images[i], None if titles is None else titles[i])
        m = _to_numpy(masks[i]).astype(bool)
        rgba = np.zeros((*m.shape, 4))
        rgba[m] = to_rgba(color, 0.45)
        ax.imshow(rgba, interpolation="nearest")
        if points is not None:
            draw_points(ax, points, item=i)
        if boxes is not None:
            draw_box(ax, boxes[i])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


#: The test metrics of a sweep table: axis label, and whether higher is better.
ABLATION_METRICS = {
    "dice": ("Dice", True),
    "iou": ("IoU", True),
    "hd95": ("HD95 (px or mm)", False),
    "asd": ("ASD (px or mm)", False),
}
_SWEEP_COLUMNS = ("grid", "variant", "order", "seed", "model")


def ablation_summary(table: Any, metric: str = "dice", model: str = "sam") -> Any:
    """One grid's ``metric`` for one evaluated ``model``: mean, sd over seeds and seed count per variant, in grid order.

    ``table`` is what :func:`~scsam_lite.sweeps.sweep_table` returns (one grid). The standard deviation is NaN for
    a variant with a single seed: one run says nothing about the spread.
    """
    from .errors import ConfigError
    from .registry import unknown_name

    missing = [c for c in (*_SWEEP_COLUMNS, metric) if c not in getattr(table, "columns", ())]
    if metric not in ABLATION_METRICS:
        raise unknown_name("metric", metric, list(ABLATION_METRICS))
    if missing:
        raise ConfigError(
            f"the table lacks the columns {', '.join(missing)}",
            "pass the table of scsam_lite.sweeps.sweep_table(grid, ...)",
        )
    if table.empty:
        raise ConfigError(
            "the sweep table is empty: none of its runs has finished",
            "run sweep(grid, ...) first, then sweep_table(grid, ...) with the same arguments",
        )
    grids = list(dict.fromkeys(table["grid"]))
    if len(grids) > 1:
        raise ConfigError(
            f"the table mixes the grids {', '.join(map(str, grids))}",
            "plot one grid at a time, e.g. table[table['grid'] == 'rampup']",
        )
    models = list(dict.fromkeys(table["model"]))
    if model not in models:
        raise unknown_name("evaluated model", model, models)
    rows = table[table["model"] == model]
    summary = rows.groupby(["order", "variant"], sort=True)[metric].agg(["mean", "std", "count"])
    return summary.reset_index(level="order", drop=True).rename(columns={"std": "sd", "count": "seeds"})


def plot_ablation(
    table: Any,
    metric: str = "dice",
    model: str = "sam",
    ax: Axes | None = None,
    lines: dict[str, float] | None = None,
) -> Figure:
    """One ablation as seaborn points: the mean test ``metric`` of ``model`` per variant, in the grid's order.

    With several seeds the error bars are one standard deviation over seeds and every seed is drawn as a small
    dot, so the spread is visible; with one seed there are no bars (one run has no spread to show). ``lines``
    (label -> value) are drawn as dashed reference lines: the fair controls without co-training, so a variant is
    read against what no co-training gives, not only against its neighbours.
    """
    import seaborn as sns

    from .sweeps import GRIDS

    summary = ablation_summary(table, metric, model)
    rows = table[table["model"] == model]
    order = list(summary.index)
    several = int(summary["seeds"].max()) > 1
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(order) + 2), 3.4))
    else:
        fig = ax.figure
    # no line between the points: the variants are categories (a prompt count, a backbone), not a continuum
    sns.pointplot(
        data=rows,
        x="variant",
        y=metric,
        order=order,
        ax=ax,
        errorbar="sd" if several else None,
        color=PRED_COLOR if model == "sam" else "#4c72b0",
        capsize=0.15 if several else 0,
        linestyle="none",
        err_kws={"linewidth": 1.5},
        markersize=8,
    )
    if several:
        sns.stripplot(
            data=rows,
            x="variant",
            y=metric,
            order=order,
            ax=ax,
            color="0.25",
            size=3.5,
            jitter=0.12,
            zorder=5,
        )
    for (name, value), style in zip((lines or {}).items(), ("--", ":", "-."), strict=False):
        ax.axhline(value, color="0.45", linestyle=style, linewidth=1, label=f"{name}: {value:.3f}")
    if lines:
        ax.legend(fontsize=7, loc="lower left", frameon=False)
    grid = str(rows["grid"].iloc[0])
    label, higher = ABLATION_METRICS[metric]
    ax.set_xlabel(GRIDS.get(grid).axis if grid in GRIDS else "variant")
    ax.set_ylabel(f"test {label} of {model} ({'higher' if higher else 'lower'} is better)", fontsize=9)
    if higher:
        ax.set_ylim(0, 1)
    lo, hi = int(summary["seeds"].min()), int(summary["seeds"].max())
    count = f"{hi} seed{'s' if hi > 1 else ''}" if lo == hi else f"{lo}-{hi} seeds"  # a grid still filling up
    ax.set_title(f"{model} on {grid}: {count} per variant", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if len(order) > 4:
        ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


def show_png(fig: Figure, dpi: int = 90) -> None:
    """Display ``fig`` as a PNG and release it from pyplot, so a loop can show one figure per item.

    Unlike relying on the notebook backend, the picture is kept in every run, including headless ones with
    ``MPLBACKEND=Agg`` (where Jupyter shows no figures of its own); closing it avoids a second, inline copy.
    """
    from IPython.display import Image, display

    display(Image(data=figure_png(fig, dpi)))
    close(fig)
