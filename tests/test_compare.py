"""Paired per-image comparison of two runs: per-item metrics written by every run, bootstrap interval, CLI."""

import csv
import json

import numpy as np
import pytest

from scsam_lite import config as C
from scsam_lite.cli import main
from scsam_lite.compare import compare_runs, paired_comparison
from scsam_lite.errors import DataError
from scsam_lite.runs import read_item_metrics, write_item_metrics
from scsam_lite.trainer import train


def _scores(values):
    return {f"img{i:03d}": float(v) for i, v in enumerate(values)}


def test_a_consistent_gain_is_detected_and_its_interval_excludes_zero():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.9, 100)  # images differ far more in difficulty than the models do
    better = base + rng.normal(0.05, 0.02, 100)
    r = paired_comparison(_scores(better), _scores(base), names=("new", "old"))
    assert r.diff == pytest.approx(0.05, abs=0.01) and r.ci_low > 0 and r.a_better > 90
    assert r.p_wilcoxon < 1e-6 and r.verdict.startswith("new is better")
    # the unpaired spreads overlap completely: only pairing sees the gain
    assert better.std() > 3 * r.diff


def test_noise_alone_gives_an_interval_around_zero():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.9, 100)
    r = paired_comparison(_scores(base + rng.normal(0, 0.05, 100)), _scores(base))
    assert r.ci_low < 0 < r.ci_high and "no clear difference" in r.verdict


def test_identical_scores_tie_everywhere():
    s = _scores(np.linspace(0, 1, 20))
    r = paired_comparison(s, s)
    assert (r.diff, r.ci_low, r.ci_high, r.ties, r.p_wilcoxon) == (0.0, 0.0, 0.0, 20, 1.0)


def test_for_distances_smaller_is_better():
    r = paired_comparison(_scores([10, 12, 9, 11] * 10), _scores([20, 25, 18, 22] * 10), metric="hd95")
    assert r.diff < 0 and r.a_better == 40 and r.verdict.startswith("A is better")


def test_different_items_are_refused():
    with pytest.raises(DataError, match="different items"):
        paired_comparison(_scores([0.5, 0.6]), {"other": 0.5, "img000": 0.5})


def test_item_metrics_round_trip(tmp_path):
    items = {
        "unet": [{"item": "a", "dice": 0.5, "iou": 0.25}],
        "sam": [{"item": "a", "dice": 1.0, "iou": 1.0}],
    }
    write_item_metrics(tmp_path / "m.csv", items)
    assert read_item_metrics(tmp_path / "m.csv") == {
        "unet": {"a": {"dice": 0.5, "iou": 0.25}},
        "sam": {"a": {"dice": 1.0, "iou": 1.0}},
    }


@pytest.mark.slow
def test_runs_write_per_image_metrics_that_average_to_metrics_json(tmp_path, capsys):
    cfg = C.build_config("quick", {"train.iterations": 10, "train.val_every": 10}, method="unet")
    train(cfg, tmp_path / "short", verbose=False)
    longer = C.build_config("quick", {"train.iterations": 60, "train.val_every": 60}, method="unet")
    train(longer, tmp_path / "long", verbose=False)
    with open(tmp_path / "long" / "metrics_items.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((tmp_path / "long" / "metrics.json").read_text())
    assert len(rows) == summary["unet"]["n"]
    for key in ("dice", "iou", "hd95", "asd"):
        assert np.mean([float(r[key]) for r in rows]) == pytest.approx(summary["unet"][key])

    r = compare_runs(tmp_path / "long", tmp_path / "short")
    assert r.a == "long:unet" and r.n == summary["unet"]["n"]
    assert r.mean_a == pytest.approx(summary["unet"]["dice"])

    # `evaluate` writes its own per-item file beside its summary; compare reads either
    assert main(["evaluate", str(tmp_path / "short"), "--split", "val"]) == 0
    assert (tmp_path / "short" / "metrics_val_best_items.csv").is_file()
    capsys.readouterr()
    out_json = tmp_path / "cmp.json"
    assert main(["compare", str(tmp_path / "long"), str(tmp_path / "short"), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "A = long:unet" in out and "95% bootstrap interval" in out
    assert json.loads(out_json.read_text())["n"] == r.n
    # val and test items differ: refused with the fix
    val_file = tmp_path / "short" / "metrics_val_best_items.csv"
    assert main(["compare", str(tmp_path / "long"), str(val_file)]) == 2
    assert "same dataset, resolution and split" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "long"), str(tmp_path / "short"), "--model-b", "sam"]) == 2
    assert "choose one with --model-a / --model-b" in capsys.readouterr().err


def test_a_run_without_per_image_metrics_names_the_fix(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    assert main(["compare", str(tmp_path / "old"), str(tmp_path / "old")]) == 2
    assert "scsam-lite evaluate" in capsys.readouterr().err


def _grouped(effects, per_group=60, seed=0):
    """Scores of B and A = B + the group's effect (plus a little noise), many frames per group."""
    rng = np.random.default_rng(seed)
    a, b, groups = {}, {}, {}
    for g, effect in enumerate(effects):
        for k in range(per_group):
            item = f"g{g}_{k:03d}"
            base = rng.uniform(0.3, 0.8)
            a[item], b[item], groups[item] = base + effect + rng.normal(0, 0.01), base, f"video{g}"
    return a, b, groups


def test_a_few_groups_with_mixed_effects_are_not_a_clear_difference():
    """Three videos, effects +0.12, -0.04, +0.06, 60 frames each: frame by frame the gain looks certain, but
    there are three independent units, one of them against A."""
    a, b, groups = _grouped([0.12, -0.04, 0.06])
    naive = paired_comparison(a, b, names=("A", "B"))
    assert naive.ci_low > 0 and naive.verdict.startswith("A is better")  # what frames as units would claim
    r = paired_comparison(a, b, names=("A", "B"), groups=groups)
    assert r.n == 180 and r.n_groups == 3 and r.unit == "groups"
    assert r.ci_low < 0 < r.ci_high and r.p_wilcoxon > 0.05
    assert r.verdict.startswith("no clear difference") and "better" not in r.verdict
    assert r.warnings and "only 3 groups" in r.warnings[0]
    assert r.diff == pytest.approx(naive.diff)  # the estimate is the same; its uncertainty is not


def test_many_groups_with_a_consistent_effect_are_a_clear_difference():
    rng = np.random.default_rng(3)
    a, b, groups = _grouped(rng.normal(0.05, 0.02, 20), per_group=5)
    r = paired_comparison(a, b, names=("A", "B"), groups=groups)
    assert r.n_groups == 20 and not r.warnings and r.ci_low > 0 and r.verdict.startswith("A is better")


def test_an_interval_and_a_test_that_disagree_say_so_in_one_line():
    from scsam_lite.compare import PairedComparison

    base = dict(
        a="A", b="B", metric="dice", n=30, mean_a=0.6, mean_b=0.58, diff=0.02, a_better=20, b_better=10
    )
    r = PairedComparison(**base, ci_low=-0.001, ci_high=0.04, ties=0, p_wilcoxon=0.01)
    assert "disagree" in r.verdict and "includes 0" in r.verdict and "\n" not in r.verdict
    assert "is better" not in r.verdict
    r = PairedComparison(**base, ci_low=0.001, ci_high=0.04, ties=0, p_wilcoxon=0.2)
    assert "disagree" in r.verdict and "excludes 0" in r.verdict and "is better" not in r.verdict


def test_compare_reads_groups_from_the_items_files_and_says_what_it_resampled(tmp_path, capsys):
    from scsam_lite.runs import read_item_groups

    a, b, groups = _grouped([0.12, -0.04, 0.06])
    for name, scores in (("a", a), ("b", b)):
        rows = [{"item": k, "group": groups[k], "dice": v} for k, v in scores.items()]
        write_item_metrics(tmp_path / f"{name}_items.csv", {"unet": rows})
    assert read_item_groups(tmp_path / "a_items.csv") == groups
    assert read_item_metrics(tmp_path / "a_items.csv")["unet"]["g0_000"] == {"dice": a["g0_000"]}
    files = [str(tmp_path / "a_items.csv"), str(tmp_path / "b_items.csv")]
    assert main(["compare", *files]) == 0
    out = capsys.readouterr().out
    assert "on 180 items in 3 groups" in out and "cluster bootstrap over 3 groups" in out
    assert "warning: only 3 groups" in out and "no clear difference" in out
    assert main(["compare", *files, "--ignore-groups"]) == 0
    out = capsys.readouterr().out
    assert "bootstrap over the 180 items" in out and "[a]:unet is better on these images" in out
