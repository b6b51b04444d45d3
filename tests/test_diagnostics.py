"""The "why" diagnostics of notebook 04, read from committed records (nothing trains)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import json  # noqa: E402

from scsam_lite import diagnostics  # noqa: E402
from scsam_lite.reference import get_reference  # noqa: E402


def _logged_steps(path) -> list[int]:
    rows = [json.loads(line) for line in (path / "history.jsonl").read_text().splitlines() if line.strip()]
    return [r["step"] for r in rows if "pseudo_dice" in r]


def test_pseudo_quality_reads_the_history_and_is_none_before_it_was_logged():
    run = get_reference("regime/warm-s0").path
    q = diagnostics.pseudo_quality(run)
    assert q is not None and list(q["step"]) == _logged_steps(run)
    assert {"sam", "unet"} <= set(q) and all(0.0 <= v <= 1.0 for v in [*q["sam"], *q["unet"]])
    assert diagnostics.pseudo_quality(get_reference("lab/sc-sam-s0").path) is None


def test_pseudo_quality_plot_has_one_legend_entry_per_run_and_a_style_key_outside_the_axes():
    runs = {name: get_reference(name).path for name in ("regime/warm-s0", "regime/warm-noentropy-s0")}
    fig = diagnostics.plot_pseudo_quality({**runs, "not logged": get_reference("lab/sc-sam-s0").path})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[:2] == list(runs) and len(labels) == 4  # the run without pseudo_dice is left out
    assert len(ax.lines) == 4  # SAM's and the U-Net's line per run
    assert (
        ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
    )  # beside the axes, not on them
    assert diagnostics.plot_pseudo_quality({"not logged": get_reference("lab/sc-sam-s0").path}) is None
