"""Sweeps: grids expand to distinct configs, finished runs are skipped, the table joins plan and registry."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scsam_lite.cli import main
from scsam_lite.errors import ConfigError
from scsam_lite.reference import best_validation, get_reference
from scsam_lite.sweeps import GRIDS, default_variant, finished_hashes, plan, sweep, sweep_table

FAST = {"train.iterations": "4", "train.val_every": "2", "cotrain.probe_images": "0"}


def test_every_grid_expands_to_distinct_valid_configs(tmp_path):
    for name in GRIDS.names():
        runs = plan(name, "quick", seeds=(0, 1), out=tmp_path)
        assert len(runs) == 2 * len(GRIDS.get(name).variants)
        assert len({r.config_hash for r in runs}) == len(runs)


def test_rampup_lengths_follow_the_preset_schedule(tmp_path):
    quick = {r.label: r.config.cotrain for r in plan("rampup", "quick", out=tmp_path)}
    paper = {r.label: r.config.cotrain for r in plan("rampup", "paper", out=tmp_path)}
    assert quick["off"].rampup_length == 0 and quick["T = 1/2"].rampup_length == 300  # 600 iterations
    assert paper["T = 1/4"].rampup_length == 10000  # 40,000 iterations: the reference's T
    assert quick["T = 1/2, no 5"].rampup_scale == 1.0 and quick["T = 1/2"].rampup_scale == 5.0


def test_variants_that_collapse_into_one_experiment_are_an_error(tmp_path):
    # with 2 iterations, T = 1/4 and T = 1/2 of the schedule are both one step: the same run twice
    with pytest.raises(ConfigError, match="same experiment"):
        plan("rampup", "quick", overrides={"train.iterations": "2"}, out=tmp_path)


@pytest.mark.slow
def test_sweep_runs_what_is_missing_and_tables_it(tmp_path, capsys):
    runs = sweep("tokens", "quick", seeds=(0,), overrides=FAST, out=tmp_path, verbose=False)
    assert len(finished_hashes(tmp_path)) == 2
    stamps = {r.run_dir: (r.run_dir / "metrics.json").stat().st_mtime_ns for r in runs}
    sweep("tokens", "quick", seeds=(0,), overrides=FAST, out=tmp_path)  # nothing left to do
    assert "2 already done" in capsys.readouterr().out
    assert {r.run_dir: (r.run_dir / "metrics.json").stat().st_mtime_ns for r in runs} == stamps
    table = sweep_table("tokens", "quick", seeds=(0,), overrides=FAST, out=tmp_path)
    assert set(table["variant"]) == {"off", "on"} and set(table["model"]) == {"unet", "sam", "agreement"}
    assert table["dice"].between(0, 1).all()
    # validation beside test, read from each run's own history (best check, mean of the last three)
    for r in runs:
        history = [json.loads(line) for line in (r.run_dir / "history.jsonl").read_text().splitlines()]
        sam = table[(table["variant"] == r.label) & (table["model"] == "sam")].iloc[0]
        vals = [row["val_dice"]["sam"] for row in history]
        assert sam["val_best"] == pytest.approx(max(vals))
        assert sam["val_last"] == pytest.approx(np.mean(vals[-3:]))


def test_sweep_cli_lists_and_dry_runs(tmp_path, capsys):
    assert main(["sweep", "--list"]) == 0
    assert "rampup" in capsys.readouterr().out
    assert main(["sweep", "prompts", "--dry-run", "--seeds", "0,1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 runs, 0 already done" in out and not any(tmp_path.iterdir())
    assert main(["sweep", "prompts", "--seeds", "a,b"]) == 2
    assert main(["sweep", "rampupp"]) == 2
    assert "did you mean 'rampup'" in capsys.readouterr().err


def test_run_folder_names_are_readable_and_distinct():
    import re

    from scsam_lite.sweeps import GRIDS, folder_name

    assert folder_name("T = 1/2, no 5") == "T-1of2-no-5" and folder_name("5+5") == "5-plus-5"
    for name in GRIDS.names():
        slugs = [folder_name(v.label) for v in GRIDS.get(name).variants]
        assert len(set(slugs)) == len(slugs), (name, slugs)
        assert all(re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", s) for s in slugs), slugs


def test_a_variant_whose_label_holds_a_comma_is_chosen_by_its_folder_name(tmp_path, capsys):
    """``--variants`` splits on commas, so ``SAM: two-pass, per-class tokens`` must be reachable by folder name."""
    from scsam_lite.cli import main

    code = main(
        [
            "sweep",
            "fidelity",
            "--preset",
            "lab",
            "--splits",
            "--dry-run",
            "--out",
            str(tmp_path),
            "--variants",
            "SAM-two-pass-per-class-tokens,reference",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "2 runs" in out
    assert "per-class tokens, seed 0" in out and "reference, seed 0" in out and "ours," not in out
    assert main(["sweep", "fidelity", "--dry-run", "--variants", "SAM: two-pass"]) == 0
    assert main(["sweep", "fidelity", "--dry-run", "--variants", "per-class tokens"]) == 2
    assert "SAM-two-pass-per-class-tokens" in capsys.readouterr().err


def test_reference_only_trains_nothing(tmp_path, monkeypatch, capsys):
    """Notebook 05's default on the lab profile: committed runs are copied, the rest is listed, nothing trains."""
    monkeypatch.setattr("scsam_lite.trainer.train", lambda *a, **k: pytest.fail("trained"))
    runs = sweep("tokens", "quick", seeds=(0,), out=tmp_path, reference_only=True)
    assert len(runs) == 2 and not (tmp_path / "results.jsonl").exists()
    assert capsys.readouterr().out.count("no reference run yet") == 2


def test_the_default_variant_is_the_one_that_changes_nothing():
    assert default_variant("rampup", "lab") == "T = 1/2"
    assert default_variant("prompts", "quick") == "5+5"
    assert default_variant("backbone", "lab") == "unet"
    # lab stores SAM's embeddings, so the peft grid cannot run there: no default, not an error
    assert default_variant("peft", "lab") is None
    assert default_variant("rampup", "quick", {"cotrain.rampup_length": "0"}) == "off"


def test_a_default_shared_by_two_grids_keeps_its_validation_in_both_tables(tmp_path):
    """lab/sc-sam is the default of every lab grid: copied once, into the first grid's folder, and read from
    there (the registry's run_dir) by the others."""
    where = dict(seeds=(0,), out=tmp_path, splits=True, verbose=False, reference_only=True)
    sweep("rampup", "lab", variants=["T-1of2"], **where)
    sweep("prompts", "lab", variants=["5-plus-5"], **where)
    table = sweep_table("prompts", "lab", seeds=(0,), out=tmp_path, splits=True, variants=["5-plus-5"])
    sam = table[table["model"] == "sam"].iloc[0]
    best = best_validation(get_reference("lab/sc-sam-s0").history(), "sam")[1]
    assert sam["val_best"] == pytest.approx(best)
    assert not any(p.name.startswith("prompts-") for p in tmp_path.iterdir())
