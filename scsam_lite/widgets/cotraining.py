"""SC-SAM's co-training, watched: the pseudo-labels the two models trade over training, and SAM's ramp-up.

An ``sc-sam`` run saves a *probe snapshot* of a few fixed unlabeled images at step 0 and at every validation
(``RUN/probes/step_XXXXXX.npz``, see :meth:`~scsam_lite.methods.sc_sam.SCSAM.probe`): the U-Net's probability, the
prompts sampled from its hard prediction, SAM's probability from those prompts, and w(t).
:class:`PseudoLabelExplorer` replays them: a step slider walks through training, an image slider through the probe
images. :func:`probe_timeline` draws one image across all saved steps, for notebooks run headless.

:class:`RampUpExplorer` draws ``w(t) = exp(-scale (1 - t/T)^2)`` (:func:`~scsam_lite.rampup.sigmoid_rampup`), the
weight of SAM's loss on the U-Net's pseudo-labels, with the reference's curve for comparison and a run's position.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .. import viz
from ..config import PRESETS, Config, CoTrainConfig, config_from_dict
from ..errors import ConfigError, DataError
from ..metrics import dice_scores
from ..rampup import sigmoid_rampup
from ..runs import RunDir, load_probes
from .explorer import Explorer

#: The reference's ramp-up (the config defaults are the reference's) and its schedule's length.
PAPER_LENGTH = CoTrainConfig().rampup_length
PAPER_SCALE = CoTrainConfig().rampup_scale
PAPER_ITERATIONS = int(PRESETS["paper"]["train.iterations"])

UNET_COLOR = "#2f7bff"  # the specialist's pixels (U-Net says polyp, SAM does not; only the U-Net is wrong)
SAM_COLOR = "#ff8c00"  # the generalist's pixels
BOTH_COLOR = "#e8112d"  # both models wrong
_BINARY = ListedColormap(["black", "white"])
_NO_PROBES_FIX = (
    "train with --method sc-sam and cotrain.probe_images > 0 (the default is 4; "
    "e.g. `scsam-lite train --method sc-sam --set cotrain.probe_images=4`)"
)


# -- reading a run ---------------------------------------------------------------------------------------------------
def run_config(run_dir: str | os.PathLike) -> Config:
    """The resolved config of the run in ``run_dir`` (a :class:`TrainingError` if it is not a run directory)."""
    return config_from_dict(RunDir(run_dir).read_config()["config"])


def read_probes(run_dir: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """The run's probe snapshots in step order; a :class:`ConfigError` naming the fix when it saved none."""
    cfg = run_config(run_dir)
    try:
        probes = load_probes(run_dir)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"a probe snapshot in {Path(run_dir) / 'probes'} could not be read ({type(exc).__name__})",
            "delete the unreadable step_*.npz file (the others still load), or train the run again",
        ) from None
    if not probes:
        raise ConfigError(
            f"the run in {run_dir} (method {cfg.train.method}) saved no probe snapshots of pseudo-labels",
            _NO_PROBES_FIX,
        )
    return probes


@dataclass
class ProbeFrame:
    """One probe image at one saved step: what each model predicted and which prompts SAM got."""

    step: int
    w: float  # the ramp-up weight of SAM's loss on the U-Net's pseudo-labels at this step
    index: int  # the image's dataset index
    unet_prob: np.ndarray  # (H, W) float32
    sam_prob: np.ndarray  # (H, W) float32
    points: np.ndarray | None  # (N, 2) (x, y), or None for box prompts only
    point_labels: np.ndarray | None  # (N,) 1 positive, 0 negative, -1 padding
    box: np.ndarray | None  # (4,) x0, y0, x1, y1, or None for point prompts only

    @property
    def unet_label(self) -> np.ndarray:
        """The U-Net's hard pseudo-label: SAM's target and the mask its prompts are sampled from."""
        return self.unet_prob > 0.5

    @property
    def sam_label(self) -> np.ndarray:
        """SAM's hard mask: the U-Net's target on this unlabeled image."""
        return self.sam_prob > 0.5


def probe_frame(snapshot: dict[str, np.ndarray], item: int) -> ProbeFrame:
    """Image ``item`` (0 .. K-1) of one probe snapshot as a :class:`ProbeFrame`."""
    k = len(snapshot["index"])
    if not 0 <= item < k:
        raise ConfigError(f"probe image {item} does not exist", f"pick one from 0 to {k - 1}")
    has_points = "points" in snapshot
    return ProbeFrame(
        step=int(snapshot["step"]),
        w=float(snapshot["w"]),
        index=int(snapshot["index"][item]),
        unet_prob=snapshot["unet_prob"][item].astype(np.float32),
        sam_prob=snapshot["sam_prob"][item].astype(np.float32),
        points=snapshot["points"][item] if has_points else None,
        point_labels=snapshot["point_labels"][item] if has_points else None,
        box=snapshot["boxes"][item] if "boxes" in snapshot else None,
    )


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(dice_scores(pred[None], gt[None])[0])


def frame_scores(frame: ProbeFrame, truth: np.ndarray | None = None) -> dict[str, float]:
    """How much the two models disagree on this image and, given the true mask, each one's Dice."""
    scores = {"disagreement": float((frame.unet_label != frame.sam_label).mean())}
    if truth is not None:
        gt = np.asarray(truth).astype(bool)
        scores["dice_unet"] = _dice(frame.unet_label, gt)
        scores["dice_sam"] = _dice(frame.sam_label, gt)
    return scores


def _load_data(cfg: Config) -> Any:
    from ..data import load_dataset

    return load_dataset(
        cfg.data.dataset,
        root=cfg.data.data_root,
        resolution=cfg.data.resolution,
        cache_dir=cfg.data.cache_dir,
        mask_threshold=cfg.data.mask_threshold,
    )


def _check_data(data: Any, probes: list[dict[str, np.ndarray]], cfg: Config) -> None:
    """The probes index ``data`` and share its resolution: a different dataset is caught here, not as a crash."""
    shape = probes[0]["unet_prob"].shape[1:]
    top = int(max(int(np.max(p["index"])) for p in probes))
    if top >= len(data.images) or tuple(data.images.shape[1:3]) != tuple(shape):
        raise ConfigError(
            f"the data given ({getattr(data, 'name', '?')}, {len(data.images)} items at "
            f"{data.images.shape[1]} px) is not what the run trained on ({cfg.data.dataset} at {shape[0]} px)",
            "pass data=None to load the run's own dataset, or the dataset it was trained on",
        )


# -- drawing ---------------------------------------------------------------------------------------------------------
def _binary(ax: Any, mask: np.ndarray, title: str) -> None:
    ax.imshow(mask, cmap=_BINARY, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def _prompts(ax: Any, frame: ProbeFrame) -> None:
    if frame.points is not None:
        viz.draw_points(ax, frame.points, frame.point_labels, size=40)
    if frame.box is not None:
        viz.draw_box(ax, frame.box)


def _colored(shape: tuple[int, ...], layers: list[tuple[np.ndarray, str]]) -> np.ndarray:
    rgba = np.zeros((*shape, 4))
    for where, color in layers:
        rgba[where] = to_rgba(color, 0.85)  # the image stays faintly visible beneath
    return rgba


def disagreement_map(frame: ProbeFrame) -> np.ndarray:
    """RGBA ``(H, W, 4)``: blue where only the U-Net says foreground, orange where only SAM does."""
    u, s = frame.unet_label, frame.sam_label
    return _colored(u.shape, [(u & ~s, UNET_COLOR), (s & ~u, SAM_COLOR)])


def error_map(frame: ProbeFrame, truth: np.ndarray) -> np.ndarray:
    """RGBA ``(H, W, 4)``: where only the U-Net is wrong (blue), only SAM (orange), or both (red)."""
    gt = np.asarray(truth).astype(bool)
    wu, ws = frame.unet_label != gt, frame.sam_label != gt
    return _colored(gt.shape, [(wu & ~ws, UNET_COLOR), (ws & ~wu, SAM_COLOR), (wu & ws, BOTH_COLOR)])


def _legend(ax: Any, items: list[tuple[str, str]]) -> None:
    handles = [Patch(color=c, label=t) for t, c in items]
    ax.legend(handles=handles, loc="lower right", fontsize=6.5, framealpha=0.75, handlelength=1.0)


class PseudoLabelExplorer(Explorer):
    """A step slider (the saved steps of an ``sc-sam`` run) and an image slider (its probe images).

    Panels: the image; the U-Net's probability; its hard pseudo-label with the points sampled from it (yellow
    discs positive, red crosses negative; a box if the run used boxes), which is what SAM is prompted with and
    trained towards; SAM's mask from those prompts, which the U-Net is trained towards; where the two disagree; and,
    with ``truth`` on, the ground truth (never seen in training: the probe images are unlabeled) with each model's
    errors and Dice. The suptitle gives the step and w(t). Nothing is recomputed: a slider only redraws.

    Args:
        run_dir: a run of ``--method sc-sam`` (finished or not) with probe snapshots.
        data: the run's dataset; None loads it from the run's config (dataset and resolution).
        step: the step to start at (the nearest saved one); None: the last saved step.
        truth: show the ground-truth panel at first (a checkbox toggles it).
    """

    def __init__(
        self, run_dir: str | os.PathLike, data: Any = None, *, step: int | None = None, truth: bool = True
    ) -> None:
        self.run_dir = Path(run_dir)
        self.probes = read_probes(run_dir)
        self.cfg = run_config(run_dir)
        self.data = _load_data(self.cfg) if data is None else data
        _check_data(self.data, self.probes, self.cfg)
        self.steps = [int(p["step"]) for p in self.probes]
        self.shown: dict[str, float] = {}  # the numbers of the latest render (for tests and curious students)
        start = self.steps[-1] if step is None else min(self.steps, key=lambda s: abs(s - step))
        controls = {
            "step": W.SelectionSlider(
                options=[(str(s), s) for s in self.steps],
                value=start,
                description="step",
                continuous_update=False,
            ),
            "item": W.IntSlider(
                value=0,
                min=0,
                max=len(self.probes[0]["index"]) - 1,
                description="image",
                continuous_update=False,
            ),
            "truth": W.Checkbox(value=truth, description="ground truth"),
        }
        super().__init__(controls)

    def frame(self, step: int, item: int) -> ProbeFrame:
        """The probe image ``item`` at saved step ``step``."""
        if step not in self.steps:
            raise ConfigError(
                f"no probe snapshot at step {step}", f"pick one of the saved steps {self.steps}"
            )
        return probe_frame(self.probes[self.steps.index(step)], item)

    def render(self, step: int, item: int, truth: bool) -> Figure:
        k = len(self.probes[0]["index"])
        item = min(max(int(item), 0), k - 1)
        f = self.frame(int(step), item)
        image = self.data.images[f.index]
        gt = np.asarray(self.data.masks[f.index]).astype(bool) if truth else None
        scores = frame_scores(f, gt)
        self.shown = {"step": f.step, "w": f.w, **scores}

        fig, axes = plt.subplots(2, 3, figsize=(9.3, 6.6))
        a = axes.flat
        viz.show_image(a[0], image, title=f"{self.data.ids[f.index]} (probe image {item + 1}/{k})")
        im = a[1].imshow(f.unet_prob, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        a[1].axis("off")
        a[1].set_title("U-Net P(foreground)", fontsize=9)
        fig.colorbar(im, ax=a[1], fraction=0.046, pad=0.04)
        _binary(a[2], f.unet_label, "U-Net pseudo-label: SAM's target,\nits points are SAM's prompts")
        _prompts(a[2], f)
        _binary(a[3], f.sam_label, "SAM's mask from those prompts:\nthe U-Net's target")
        _prompts(a[3], f)
        viz.show_image(a[4], image, title=f"the two disagree on {scores['disagreement']:.1%} of pixels")
        a[4].imshow(disagreement_map(f), interpolation="nearest")
        _legend(a[4], [("U-Net only", UNET_COLOR), ("SAM only", SAM_COLOR)])
        if gt is None:
            a[5].axis("off")
            a[5].text(0.5, 0.5, "ground truth hidden", ha="center", va="center", fontsize=9, color="grey")
        else:
            viz.overlay(a[5], image, gt)
            a[5].imshow(error_map(f, gt), interpolation="nearest")
            a[5].set_title(
                "ground truth (never seen in training)\n"
                f"Dice U-Net {scores['dice_unet']:.3f} · SAM {scores['dice_sam']:.3f}",
                fontsize=9,
            )
            _legend(a[5], [("U-Net wrong", UNET_COLOR), ("SAM wrong", SAM_COLOR), ("both", BOTH_COLOR)])
        c = self.cfg.cotrain
        fig.suptitle(
            f"step {f.step} of {self.cfg.train.iterations} · w(t) = {f.w:.3f} "
            f"(T = {c.rampup_length}, scale {c.rampup_scale:g}): SAM's loss on U-Net pseudo-labels x w",
            fontsize=10,
        )
        fig.tight_layout()
        return fig

    def timeline(self, item: int = 0, max_columns: int = 6) -> Figure:
        """One probe image across training (see :func:`probe_timeline`)."""
        return probe_timeline(self.probes, self.data, item, max_columns=max_columns)


def _spread(n: int, k: int) -> list[int]:
    """``k`` positions from ``0 .. n-1``, evenly spread, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def probe_timeline(
    probes: list[dict[str, np.ndarray]], data: Any, item: int = 0, *, max_columns: int = 6, size: float = 2.1
) -> Figure:
    """One probe image over training: a column per saved step (at most ``max_columns``, evenly spread).

    Rows: the U-Net's pseudo-label with its prompts, SAM's mask, and both against the truth (U-Net solid outline,
    SAM dashed), with each model's Dice, so a static notebook still shows how the pseudo-labels evolve.
    """
    if not probes:
        raise ConfigError("there are no probe snapshots to draw", _NO_PROBES_FIX)
    if max_columns < 1:
        raise ConfigError(f"max_columns={max_columns} leaves nothing to draw", "pass max_columns >= 1")
    cols = [probes[i] for i in _spread(len(probes), max_columns)]
    fig, axes = plt.subplots(3, len(cols), figsize=(size * len(cols), 3 * size + 0.5), squeeze=False)
    for c, snap in enumerate(cols):
        f = probe_frame(snap, item)
        gt = np.asarray(data.masks[f.index]).astype(bool)
        s = frame_scores(f, gt)
        _binary(axes[0][c], f.unet_label, f"step {f.step}, w = {f.w:.2f}")
        _prompts(axes[0][c], f)
        _binary(axes[1][c], f.sam_label, f"disagree {s['disagreement']:.0%}")
        _prompts(axes[1][c], f)
        viz.overlay(axes[2][c], data.images[f.index], gt)
        viz.outline(axes[2][c], f.unet_label, UNET_COLOR)
        viz.outline(axes[2][c], f.sam_label, SAM_COLOR, "dashed")
        axes[2][c].set_title(f"Dice U {s['dice_unet']:.2f} · S {s['dice_sam']:.2f}", fontsize=9)
    for r, name in enumerate(("U-Net pseudo-label", "SAM's mask", "vs truth")):
        axes[r][0].set_ylabel(name, fontsize=9)
    fig.suptitle(
        f"{data.ids[cols[0]['index'][item]]}: an unlabeled probe image over training "
        "(truth: green, U-Net: blue, SAM: orange dashed)",
        fontsize=10,
    )
    fig.tight_layout()
    return fig


# -- the ramp-up -----------------------------------------------------------------------------------------------------
def rampup_curve(
    length: float, scale: float, last_step: float, n: int = 400
) -> tuple[np.ndarray, np.ndarray]:
    """Steps ``t`` (``n`` of them, 0 .. ``last_step``) and w(t), computed by :func:`sigmoid_rampup` itself."""
    t = np.linspace(0.0, float(last_step), n)
    return t, np.array([sigmoid_rampup(x, length, scale) for x in t])


def half_weight_step(length: float, scale: float) -> float:
    """The step at which w(t) reaches 0.5: ``T (1 - sqrt(ln 2 / scale))``; 0 when it starts above 0.5."""
    if length <= 0 or scale <= math.log(2):
        return 0.0
    return float(length * (1.0 - math.sqrt(math.log(2) / scale)))


@dataclass
class RunRampUp:
    """Where a run stands on its ramp-up: its T, scale, training length and latest logged step."""

    name: str
    method: str
    length: int
    scale: float
    iterations: int
    step: int

    @property
    def w(self) -> float:
        return sigmoid_rampup(self.step, self.length, self.scale)


def run_rampup(run_dir: str | os.PathLike) -> RunRampUp:
    """The ramp-up of an ``sc-sam`` run (SAM's pseudo-label weight) or a ``mean-teacher`` run (its consistency)."""
    run = RunDir(run_dir)
    cfg = run_config(run_dir)
    method = cfg.train.method
    if method == "sc-sam":
        length, scale = cfg.cotrain.rampup_length, cfg.cotrain.rampup_scale
    elif method == "mean-teacher":
        length, scale = cfg.ssl.consistency_rampup, 5.0  # mean teacher ramps its consistency with the default
    else:
        raise ConfigError(
            f"the run in {run_dir} (method {method}) has no ramp-up to show",
            "pass the folder of an sc-sam (or mean-teacher) run, or no run_dir to explore the curve alone",
        )
    history = run.history()
    step = int(history[-1]["step"]) if history else 0
    return RunRampUp(run.path.name, method, int(length), float(scale), cfg.train.iterations, step)


class RampUpExplorer(Explorer):
    """Sliders for T (the ramp-up length), the scale (curve shape) and the steps shown; draws w(t).

    w(t) is the weight of SAM's loss on the U-Net's pseudo-labels. The reference's curve (T = 10,000, scale 5) is
    drawn dashed for comparison; a summary of the paper writes the formula with scale 1, which starts at 0.37 rather
    than 0.007. Given a run, the sliders start at its T and scale, and its latest logged step is marked on its own
    curve.

    Args:
        run_dir: an ``sc-sam`` (or ``mean-teacher``) run folder, or None for the curve alone.
        length, scale: the starting T and scale when no run is given.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike | None = None,
        *,
        length: int = PAPER_LENGTH,
        scale: float = PAPER_SCALE,
    ) -> None:
        self.run = run_rampup(run_dir) if run_dir is not None else None
        if self.run is not None:
            length, scale = self.run.length, self.run.scale
        if length < 0 or not 0 < scale <= 20:
            raise ConfigError(
                f"ramp-up length {length} / scale {scale} out of range",
                "use a length >= 0 (0: no ramp-up) and a scale in (0, 20], e.g. length=10000, scale=5",
            )
        horizon = self.run.iterations if self.run is not None else PAPER_ITERATIONS
        top = max(PAPER_ITERATIONS, 2 * length, horizon)
        self.shown: dict[str, float] = {}
        controls = {
            "length": W.IntSlider(
                value=length, min=0, max=top, step=1, description="T", continuous_update=False
            ),
            "scale": W.FloatSlider(
                value=scale, min=0.5, max=10.0, step=0.5, description="scale", continuous_update=False
            ),
            "horizon": W.IntSlider(
                value=horizon, min=1, max=top, step=1, description="steps shown", continuous_update=False
            ),
        }
        super().__init__(controls)

    def render(self, length: int, scale: float, horizon: int) -> Figure:
        run = self.run
        last = max(int(horizon), 1, run.step if run is not None else 0)
        fig, ax = plt.subplots(figsize=(7.2, 3.8))
        t, w = rampup_curve(length, scale, last)
        ax.plot(t, w, color=SAM_COLOR, linewidth=2.2, label=f"T = {length:,}, scale {scale:g}")
        tp, wp = rampup_curve(PAPER_LENGTH, PAPER_SCALE, last)
        ref = f"reference: T = {PAPER_LENGTH:,}, scale {PAPER_SCALE:g} (w = {wp[-1]:.3f} at step {last:,})"
        ax.plot(tp, wp, "k--", linewidth=1.2, label=ref)
        half = half_weight_step(length, scale)
        self.shown = {"w0": sigmoid_rampup(0, length, scale), "half_step": half}
        if run is not None:
            if (run.length, run.scale) != (length, scale):
                tr, wr = rampup_curve(run.length, run.scale, last)
                ax.plot(tr, wr, ":", color="grey", linewidth=1.2, label=f"{run.name}'s own curve")
            ax.plot(
                [run.step],
                [run.w],
                "o",
                color=UNET_COLOR,
                markersize=8,
                zorder=5,
                label=f"{run.name}: step {run.step:,} of {run.iterations:,}, w = {run.w:.3f}",
            )
            self.shown.update(run_step=run.step, run_w=run.w)
        if 0 < half <= last:
            ax.axvline(half, color=SAM_COLOR, alpha=0.35, linewidth=1)
        ax.set_xlim(0, last * 1.02)  # room for a marker at the last step
        ax.set_ylim(-0.02, 1.05)
        ax.set_xlabel("training step t")
        ax.set_ylabel("w(t)")
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        ax.legend(fontsize=8, loc="lower right")
        ends = f"w = 1 from step {length:,}" if length > 0 else "no ramp-up: w = 1 throughout"
        ax.set_title(
            f"w(t) = exp(-{scale:g} (1 - t/T)²): w(0) = {self.shown['w0']:.3f}, "
            f"w = 0.5 at step {half:,.0f}, {ends}",
            fontsize=9,
        )
        fig.tight_layout()
        return fig
