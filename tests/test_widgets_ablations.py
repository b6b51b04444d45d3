"""The ablation plot and explorer, on hand-made sweep tables (no training) and one real 2-variant sweep."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from scsam_lite import viz  # noqa: E402
from scsam_lite.errors import ConfigError  # noqa: E402
from scsam_lite.sweeps import GRIDS, sweep, sweep_table  # noqa: E402
from scsam_lite.widgets import AblationExplorer  # noqa: E402
from scsam_lite.widgets.ablations import models_of  # noqa: E402

METRICS = ("dice", "iou", "hd95", "asd")


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("SCSAM_WIDGETS", "static")


def fake_table(grid: str, seeds=(0, 1, 2), models=("unet", "sam", "agreement")) -> pd.DataFrame:
    """A sweep table shaped like sweep_table's, every value distinct and known: a formula of the row."""
    rows = []
    for order, variant in enumerate(v.label for v in GRIDS.get(grid).variants):
        for seed in seeds:
            for m, model in enumerate(models):
                base = 0.1 + 0.1 * order + 0.03 * seed + 0.2 * m
                rows.append(
                    {
                        "grid": grid,
                        "variant": variant,
                        "order": order,
                        "seed": seed,
                        "model": model,
                        "dice": base,
                        "iou": base / 2,
                        "hd95": 40 - 10 * base,
                        "asd": 20 - 5 * base,
                    }
                )
    # shuffled rows: the plot must follow the grid's order, not the row order or the alphabet
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)


def means_line(ax):
    """The line through the per-variant means (pointplot's markers; the error bars have no marker)."""
    lines = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert len(lines) == 1
    return lines[0]


def expected_means(table, metric, model):
    rows = table[table["model"] == model]
    return rows.groupby("order")[metric].mean().sort_index().to_numpy()


def test_summary_in_grid_order_with_sd_over_seeds():
    table = fake_table("prompts")
    s = viz.ablation_summary(table, "dice", "sam")
    assert list(s.index) == [v.label for v in GRIDS.get("prompts").variants]
    np.testing.assert_allclose(s["mean"], expected_means(table, "dice", "sam"))
    np.testing.assert_allclose(s["sd"], np.std([0.0, 0.03, 0.06], ddof=1))
    assert (s["seeds"] == 3).all()
    one = viz.ablation_summary(fake_table("prompts", seeds=(0,)), "iou", "unet")
    assert one["sd"].isna().all() and (one["seeds"] == 1).all()


def test_plot_shows_the_means_and_sd_error_bars():
    table = fake_table("rampup")
    fig = viz.plot_ablation(table, "dice", "sam")
    ax = fig.axes[0]
    np.testing.assert_allclose(means_line(ax).get_ydata(), expected_means(table, "dice", "sam"))
    assert [t.get_text() for t in ax.get_xticklabels()] == [v.label for v in GRIDS.get("rampup").variants]
    assert ax.get_xlabel() == GRIDS.get("rampup").axis
    assert "Dice" in ax.get_ylabel() and "sam" in ax.get_ylabel()
    assert ax.get_title() == "sam on rampup: 3 seeds per variant"
    # one error bar per variant, spanning mean +- sd (sd = 0.03 for seeds 0, 1, 2)
    bars = [ln for ln in ax.lines if ln.get_marker() != "o"]
    assert len(bars) == len(GRIDS.get("rampup").variants)
    spans = [np.nanmax(b.get_ydata()) - np.nanmin(b.get_ydata()) for b in bars]
    np.testing.assert_allclose(spans, 2 * 0.03, atol=1e-9)
    viz.close(fig)


def test_one_seed_has_no_error_bars_and_distances_read_lower_is_better():
    table = fake_table("tokens", seeds=(0,))
    fig = viz.plot_ablation(table, "hd95", "unet")
    ax = fig.axes[0]
    assert [ln for ln in ax.lines if ln.get_marker() != "o"] == []
    np.testing.assert_allclose(means_line(ax).get_ydata(), expected_means(table, "hd95", "unet"))
    assert "HD95" in ax.get_ylabel() and "lower is better" in ax.get_ylabel() and "1 seed " in ax.get_title()
    viz.close(fig)


def test_plot_draws_into_a_given_axis():
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    assert viz.plot_ablation(fake_table("tokens"), ax=axes[1]) is fig
    assert axes[1].lines and not axes[0].lines
    viz.close(fig)


@pytest.mark.parametrize(
    "table, kwargs, match",
    [
        (fake_table("tokens"), {"metric": "dcie"}, "did you mean 'dice'"),
        (fake_table("tokens"), {"model": "teacher"}, "unknown evaluated model 'teacher'"),
        (fake_table("tokens").iloc[0:0], {}, "empty"),
        (pd.concat([fake_table("tokens"), fake_table("peft")]), {}, "mixes the grids"),
        (fake_table("tokens").drop(columns="order"), {}, "lacks the columns order"),
    ],
    ids=["metric", "model", "empty", "two-grids", "columns"],
)
def test_bad_tables_and_names_are_one_clear_error(table, kwargs, match):
    with pytest.raises(ConfigError, match=match) as err:
        viz.plot_ablation(table, **kwargs)
    assert err.value.fix and err.value.__cause__ is None


def test_explorer_dropdowns_change_the_plot():
    tables = {"rampup": fake_table("rampup"), "prompts": fake_table("prompts")}
    ex = AblationExplorer(tables)
    c = ex.controls
    assert list(c["ablation"].options) == ["rampup", "prompts"]
    assert [v for _, v in c["metric"].options] == list(METRICS)
    assert list(c["model"].options) == ["sam", "unet", "agreement"] and c["model"].value == "sam"
    ax = ex.figure.axes[0]
    assert ax.get_xlabel() == "ramp-up"
    np.testing.assert_allclose(means_line(ax).get_ydata(), expected_means(tables["rampup"], "dice", "sam"))
    assert GRIDS.get("rampup").description in ex.figure._suptitle.get_text()

    renders = ex.renders
    c["metric"].value = "asd"
    ax = ex.figure.axes[0]
    assert "ASD" in ax.get_ylabel() and ex.renders > renders
    np.testing.assert_allclose(means_line(ax).get_ydata(), expected_means(tables["rampup"], "asd", "sam"))

    c["model"].value = "unet"
    ax = ex.figure.axes[0]
    assert "unet" in ax.get_ylabel()
    np.testing.assert_allclose(means_line(ax).get_ydata(), expected_means(tables["rampup"], "asd", "unet"))

    c["ablation"].value = "prompts"
    ax = ex.figure.axes[0]
    assert ax.get_xlabel() == GRIDS.get("prompts").axis and c["model"].value == "unet"
    np.testing.assert_allclose(means_line(ax).get_ydata(), expected_means(tables["prompts"], "asd", "unet"))


def test_ablation_switch_offers_only_that_tables_models():
    # a grid of another method, whose runs evaluate the U-Net only
    tables = {"tokens": fake_table("tokens"), "backbone": fake_table("backbone", models=("unet",))}
    ex = AblationExplorer(tables, metric="iou")
    assert ex.controls["model"].value == "sam"
    ex.controls["ablation"].value = "backbone"
    assert list(ex.controls["model"].options) == ["unet"] and ex.controls["model"].value == "unet"
    ax = ex.figure.axes[0]
    assert ax.get_xlabel() == "specialist" and "IoU of unet" in ax.get_ylabel()
    np.testing.assert_allclose(means_line(ax).get_ydata(), expected_means(tables["backbone"], "iou", "unet"))
    ex.controls["ablation"].value = "tokens"
    assert list(ex.controls["model"].options) == ["sam", "unet", "agreement"]
    assert ex.controls["model"].value == "unet", "the chosen model stays when the table has it"


def test_explorer_takes_one_table_and_skips_grids_without_runs():
    both = pd.concat([fake_table("peft"), fake_table("tokens")])
    ex = AblationExplorer({"labels": fake_table("labels").iloc[0:0], "all": both.iloc[0:0], "peft": both[:6]})
    assert list(ex.controls["ablation"].options) == ["peft"]
    with pytest.raises(ConfigError, match="mixes the grids peft, tokens") as err:
        AblationExplorer({"tokens": fake_table("tokens"), "mixed": both})  # caught before it is ever shown
    assert "one table per grid" in err.value.fix
    ex = AblationExplorer(both, model="agreement")
    assert list(ex.controls["ablation"].options) == ["peft", "tokens"]
    assert ex.controls["model"].value == "agreement"


@pytest.mark.parametrize(
    "tables, match",
    [
        ({}, "no finished sweep runs"),
        ({"tokens": fake_table("tokens").iloc[0:0]}, "no finished sweep runs"),
        ({"tokens": [1, 2]}, "not a pandas DataFrame"),
        (fake_table("tokens").drop(columns="grid"), "no 'grid' column"),
        ({"tokens": fake_table("tokens").drop(columns=["model", "seed"])}, "lacks the columns seed, model"),
        ("tokens", "not str"),
    ],
)
def test_explorer_rejects_what_it_cannot_show(tables, match):
    with pytest.raises(ConfigError, match=match) as err:
        AblationExplorer(tables)
    assert err.value.fix


def test_explorer_rejects_an_unknown_metric():
    with pytest.raises(ConfigError, match="did you mean 'hd95'"):
        AblationExplorer({"tokens": fake_table("tokens")}, metric="hd59")


def test_models_of_puts_sam_first_then_unknown_ones():
    table = pd.DataFrame({"model": ["teacher", "unet", "agreement", "sam", "unet"]})
    assert models_of(table) == ["sam", "unet", "agreement", "teacher"]


def test_show_leaves_a_static_picture(monkeypatch):
    shown = []
    monkeypatch.setattr("scsam_lite.widgets.explorer.display", lambda obj: shown.append(obj))
    AblationExplorer({"tokens": fake_table("tokens")}).show()
    assert any(type(o).__name__ == "Image" for o in shown)


@pytest.mark.slow
def test_a_real_sweep_table_plots_its_means(tmp_path):
    fast = {"train.iterations": "4", "train.val_every": "2", "cotrain.probe_images": "0"}
    sweep("tokens", "quick", overrides=fast, out=tmp_path, verbose=False)
    table = sweep_table("tokens", "quick", overrides=fast, out=tmp_path)
    assert len(table) == 2 * 3 and not table[list(METRICS)].isna().any().any()
    ex = AblationExplorer({"tokens": table})
    for model in ("sam", "unet", "agreement"):
        ex.controls["model"].value = model
        line = means_line(ex.figure.axes[0])
        assert list(line.get_xdata()) == [0, 1]
        for variant, y in zip(("off", "on"), line.get_ydata(), strict=True):
            row = table[(table["variant"] == variant) & (table["model"] == model)]
            assert math.isclose(y, float(row["dice"].iloc[0]))


def test_show_png_displays_a_picture_and_releases_the_figure(monkeypatch):
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    fig = viz.plot_ablation(fake_table("tokens"))
    viz.show_png(fig)
    assert len(shown) == 1 and shown[0].data.startswith(b"\x89PNG")
    assert not plt.fignum_exists(fig.number)
