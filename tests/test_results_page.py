"""The committed reference runs and the pages that quote them: small enough, no images, honest records, notebooks
that find them, and a results page and README table that agree with the records."""

from pathlib import Path

from scsam_lite import config as C
from scsam_lite import reference as R
from scsam_lite.cli import main
from scsam_lite.hosted import course_config
from scsam_lite.results import README_BEGIN, readme_table, render_results_page, with_readme_table

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".nii", ".gz", ".mhd", ".raw"}


def test_the_reference_folder_is_small_and_holds_no_image():
    files = [p for p in R.REFERENCE_ROOT.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    assert not [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


def test_the_lab_reference_runs_are_committed_with_honest_records():
    refs = R.reference_runs()
    lab = {r.name for r in refs if r.name.startswith("lab/")}
    assert {"lab/unet-s0", "lab/mean-teacher-s0", "lab/peft-sam-s0", "lab/sc-sam-s0"} <= lab
    for ref in refs:
        assert R.check_reference(ref) == [], ref.name


def test_the_notebooks_find_the_lab_runs_they_load():
    """A notebook on the lab profile builds its config with course_config: it must be the reference's experiment."""
    for ref in R.reference_runs():
        if not ref.name.startswith("lab/"):
            continue
        cfg = ref.config
        mine = course_config("lab", cfg.train.method, dataset="kvasir-seg", seed=cfg.train.seed)
        assert C.config_hash(mine) == ref.config_hash, ref.name
        assert R.find_reference(mine, weights=False).name == ref.name


def test_the_results_page_and_the_readme_table_agree_with_the_records():
    assert (ROOT / "docs" / "results.md").read_text() == render_results_page(), (
        "run `scsam-lite results --write docs/results.md --readme README.md`"
    )
    readme = (ROOT / "README.md").read_text()
    assert README_BEGIN in readme
    assert with_readme_table(readme, readme_table()) == readme
    assert (
        main(["results", "--check", str(ROOT / "docs" / "results.md"), "--readme", str(ROOT / "README.md")])
        == 0
    )


def test_what_we_measured_stands_apart_from_the_papers_numbers():
    from scsam_lite.results import measured_vs_paper

    table = measured_vs_paper(methods=["unet", "sc-sam"])
    mine = table[table["source"].str.startswith("measured here")]
    cited = table[table["source"] == "SC-SAM paper (published)"]
    assert len(mine) >= 2 and len(cited) == 1 and cited["dice"].iloc[0] == 84.79
    ref = R.get_reference("lab/sc-sam-s0")
    sam = mine[mine["setting"] == "SC-SAM: SAM (the final prediction)"]
    assert len(sam) == 1 and sam["seeds"].iloc[0] >= 1
    assert set(table["labeled"]) == {"5%"}
    if sam["seeds"].iloc[0] == 1:
        assert sam["dice"].iloc[0] == 100 * ref.metrics["sam"]["dice"]


def test_the_fidelity_table_shows_the_validation_dice_defaults_are_picked_on():
    """The 'ours' row's validation columns are the best val Dice of each sc-sam reference run's history, read here
    straight from the history files (a column filled from the test metrics, or from the last check, fails)."""
    import json
    import statistics

    from scsam_lite.results import fidelity_table

    refs = R.reference_runs()
    ours = [r for r in refs if r.name.startswith("lab/sc-sam-s")]
    best = {m: [] for m in ("sam", "unet")}
    for ref in ours:
        rows = [json.loads(line) for line in (ref.path / "history.jsonl").read_text().splitlines() if line]
        for m in best:
            best[m].append(max(row["val_dice"][m] for row in rows if "val_dice" in row))
    row = next(line for line in fidelity_table(refs).splitlines() if line.startswith("| ours |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    for cell, values in zip((cells[2], cells[4]), (best["sam"], best["unet"]), strict=True):
        assert cell == f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"
    # SAM's test Dice per seed with the reference's checkpoint choice: metrics.json when the run made that choice,
    # else the file `evaluate --selection separate` wrote
    separate = []
    for ref in ours:
        f = ref.path / "metrics_test_best_separate.json"
        if ref.config.cotrain.checkpoints == "separate":
            separate.append(json.loads((ref.path / "metrics.json").read_text()))
        else:
            separate.append(json.loads(f.read_text()))
    assert cells[7] == ", ".join(
        f"s{r.config.train.seed}: {m['sam']['dice']:.3f}" for r, m in zip(ours, separate, strict=True)
    )


def test_a_fidelity_row_is_labelled_by_what_its_config_changes_from_the_defaults():
    from scsam_lite import config as C
    from scsam_lite.results import step_label

    assert step_label(C.build_config("lab", method="sc-sam")) == "ours"
    seeded = C.build_config("lab", {"train.seed": 2, "data.split_seed": 2}, method="sc-sam")
    other = "joint" if seeded.cotrain.checkpoints == "separate" else "separate"
    seeded.cotrain.checkpoints = other  # scored both ways in the table: not part of the label
    assert step_label(seeded) == "ours"
    changed = C.build_config(
        "lab", {"cotrain.sam_output": "two-pass", "cotrain.loss_scale": 0.5}, method="sc-sam"
    )
    assert step_label(changed) == "loss_scale: 0.5, sam_output: two-pass"


def test_the_committed_rerun_is_the_same_experiment_and_the_readme_quotes_it():
    """docs/reruns/lab-sc-sam-s0: lab/sc-sam-s0 trained again after the decoder's arithmetic changed. Its record is
    consistent, it is the same experiment as the reference run, and the README's figures for it are its own."""
    rerun = R.ReferenceRun("rerun/lab-sc-sam-s0", ROOT / "docs" / "reruns" / "lab-sc-sam-s0")
    ref = R.get_reference("lab/sc-sam-s0")
    assert R.check_reference(rerun) == []
    assert rerun.config_hash == ref.config_hash
    readme = (ROOT / "docs" / "performance.md").read_text()  # "The mask decoder" quotes it
    for run in (rerun, ref):
        assert f"{run.metrics['sam']['dice']:.3f}" in readme
        assert f"{run.metrics['unet']['dice']:.3f}" in readme
