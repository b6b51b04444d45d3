"""Why co-training helps or does not, read from a run's records: what each loss term weighed over training, how
good each model's pseudo-labels were, and where SAM and the U-Net differ image by image.

Everything here reads files a run writes (``history.jsonl``, ``metrics_items.csv``); nothing trains, so notebook 04
can show it for the committed ``lab`` reference runs in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .runs import RunDir, read_item_metrics

#: the weighted terms of each model's loss in an sc-sam step: (label, loss key, weight key or a constant)
LOSS_TERMS: dict[str, list[tuple[str, str, str | float]]] = {
    "U-Net": [
        ("labels", "loss_unet_sup", 1.0),
        ("SAM's masks", "loss_unet_pseudo", "w_unet_pseudo"),
        ("entropy", "loss_entropy", "entropy_weight"),
    ],
    "SAM": [("labels", "loss_sam_sup", 1.0), ("U-Net's masks", "loss_sam_pseudo", "w_sam_pseudo")],
}


def loss_shares(run_dir: str | Path, entropy_weight: float | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Each model's weighted loss terms at every validation step, as shares of that model's loss.

    The history logs each term unweighted beside its weight (``w_sam_pseudo``, ``w_unet_pseudo``); the entropy's
    weight is the run's ``ssl.entropy_weight`` (read from its config unless given). Returns ``{model: {"step": ...,
    term: share, ...}}`` with shares summing to 1 per step.
    """
    run = RunDir(run_dir)
    rows = [r for r in run.history() if "loss_sam_sup" in r]
    if entropy_weight is None:
        entropy_weight = run.read_config()["config"]["ssl"]["entropy_weight"]
    out: dict[str, dict[str, np.ndarray]] = {}
    for model, terms in LOSS_TERMS.items():
        parts = {}
        for label, key, weight in terms:
            if weight == "entropy_weight":
                weight = entropy_weight  # a setting of the run, not logged per step
            parts[label] = np.array(
                [
                    (weight if isinstance(weight, float) else r.get(weight, 1.0)) * r.get(key, 0.0)
                    for r in rows
                ]
            )
        total = np.maximum(sum(parts.values()), 1e-12)
        out[model] = {"step": np.array([r["step"] for r in rows]), **{k: v / total for k, v in parts.items()}}
    return out


def plot_loss_shares(run_dir: str | Path) -> Figure:
    """Stacked shares of each model's loss terms over training (logged at each validation step)."""
    shares = loss_shares(run_dir)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
    for ax, (model, parts) in zip(axes, shares.items(), strict=True):
        steps = parts["step"]
        labels = [k for k in parts if k != "step"]
        ax.stackplot(steps, *[parts[k] for k in labels], labels=labels, alpha=0.85)
        ax.set_title(f"{model}'s loss: share of each weighted term", fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("share of the loss")
    fig.tight_layout()
    return fig


def pseudo_quality(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """The Dice of each model's pseudo-labels of the unlabeled images against their (never trained on) masks at
    every validation (``pseudo_dice`` in the history), or None for a run trained before it was logged."""
    rows = [r for r in RunDir(run_dir).history() if "pseudo_dice" in r]
    if not rows:
        return None
    out = {"step": np.array([r["step"] for r in rows])}
    for model in rows[0]["pseudo_dice"]:
        out[model] = np.array([r["pseudo_dice"][model] for r in rows])
    return out


def plot_pseudo_quality(runs: dict[str, str | Path]) -> Figure | None:
    """Pseudo-label Dice over training for several runs (``{label: run_dir}``); None when none logged it."""
    found = {k: q for k, v in runs.items() if (q := pseudo_quality(v)) is not None}
    if not found:
        return None
    # one colour per run, one line style per teacher: a legend of runs beside the axes stays readable with many
    fig, ax = plt.subplots(figsize=(9, 3.4))
    for i, (label, q) in enumerate(found.items()):
        ax.plot(q["step"], q["sam"], color=f"C{i}", marker="o", ms=3, label=label)
        ax.plot(q["step"], q["unet"], color=f"C{i}", ls="--", marker="s", ms=3)
    style = [
        Line2D([], [], color="0.3", marker="o", ms=3, label="solid: SAM's masks (the U-Net's targets)"),
        Line2D([], [], color="0.3", ls="--", marker="s", ms=3, label="dashed: the U-Net's (SAM's targets)"),
    ]
    ax.set_xlabel("training step")
    ax.set_ylabel("Dice against the true masks")
    ax.set_title("pseudo-labels of the unlabeled images", fontsize=10)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + style, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def per_image(run_dir: str | Path, metric: str = "dice") -> dict[str, dict[str, float]]:
    """``{model: {image: value}}`` from a run's per-image test file."""
    table = read_item_metrics(Path(run_dir) / "metrics_items.csv")
    return {model: {k: r[metric] for k, r in rows.items()} for model, rows in table.items()}


def missed_images(run_dir: str | Path, below: float = 0.1) -> list[dict[str, Any]]:
    """Test images whose U-Net Dice is under ``below`` (the U-Net found almost nothing there), with what SAM,
    prompted by that U-Net, made of them: SAM cannot recover a polyp its prompts never point at."""
    scores = per_image(run_dir)
    missed = [k for k, v in scores["unet"].items() if v < below]
    return sorted(
        ({"image": k, "unet": scores["unet"][k], "sam": scores["sam"][k]} for k in missed),
        key=lambda r: r["sam"],
    )


def plot_unet_vs_sam(
    run_dir: str | Path, control: tuple[dict[str, float], dict[str, float]] | None = None
) -> Figure:
    """SC-SAM's U-Net Dice against its SAM's per test image (above the diagonal: SAM improved on its prompts).

    ``control``: ``(prompter, prompted)``, per-image Dice ``{image: Dice}`` of another U-Net and of a SAM prompted
    by it (e.g. the mean teacher and PEFT-SAM prompted by it), drawn as crosses on the same axes."""
    scores = per_image(run_dir)
    items = sorted(scores["unet"])
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.scatter(
        [scores["unet"][k] for k in items],
        [scores["sam"][k] for k in items],
        s=14,
        alpha=0.7,
        label="SC-SAM: its U-Net -> its SAM",
    )
    if control:
        prompter, prompted = control
        shared = [k for k in items if k in prompter and k in prompted]
        ax.scatter(
            [prompter[k] for k in shared],
            [prompted[k] for k in shared],
            s=14,
            alpha=0.6,
            marker="x",
            label="control: baseline U-Net -> PEFT-SAM",
        )
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set_xlabel("the prompting U-Net: Dice per test image")
    ax.set_ylabel("SAM prompted by it: Dice")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(Path(run_dir).name, fontsize=10)
    fig.tight_layout()
    return fig
