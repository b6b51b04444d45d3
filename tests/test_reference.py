"""Reference runs: exported with their records and fp16 weights, loaded instead of trained when the config matches,
honest records (metrics = mean of per-image rows, config = hash), and the results page rendered from them."""

import json
import shutil

import pytest
import torch

from scsam_lite import config as C
from scsam_lite import reference as R
from scsam_lite.cli import main
from scsam_lite.errors import ConfigError
from scsam_lite.results import render_results_page
from scsam_lite.trainer import load_run, train


def _cfg(method="sc-sam", seed=0):
    return C.build_config(
        "quick",
        {
            "train.method": method,
            "train.iterations": 4,
            "train.val_every": 2,
            "train.seed": seed,
            "data.split_seed": seed,
            "data.labeled": 0.2,
        },
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Two finished tiny runs (sc-sam and unet, seed 0) exported as reference runs under a temporary root."""
    base = tmp_path_factory.mktemp("ref")
    root = base / "reference_runs"
    for method in ("sc-sam", "unet"):
        run = base / f"run-{method}"
        train(_cfg(method), run, verbose=False, command=f"pytest {method}")
        if method == "sc-sam":
            assert main(["evaluate", str(run), "--selection", "separate"]) == 0
        R.export_reference(run, f"quick/{method}-s0", root=root)
    return base, root


@pytest.mark.slow
def test_export_keeps_records_probes_and_fp16_trainable_weights(exported):
    _, root = exported
    ref = R.get_reference("quick/sc-sam-s0", root)
    names = {p.name for p in ref.path.iterdir()}
    assert {
        "config.json",
        "history.jsonl",
        "metrics.json",
        "metrics_items.csv",
        "weights.pt",
        "probes",
    } <= names
    assert "metrics_test_best_separate.json" in names  # the other checkpoint selection's scores
    assert "checkpoints" not in names  # no optimizer state, no last.pt
    state = torch.load(ref.path / "weights.pt", weights_only=True)["models"]
    assert set(state) == {"unet", "sam"}
    floats = [t for m in state.values() for t in m.values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)
    prov = ref.record["provenance"]
    assert prov["machine"] and "wall_time_s" in ref.record and ref.record["command"] == "pytest sc-sam"


@pytest.mark.slow
def test_records_are_consistent_and_a_tampered_record_is_caught(exported, tmp_path):
    _, root = exported
    for ref in R.reference_runs(root):
        assert R.check_reference(ref) == []
    bad_root = tmp_path / "bad"
    shutil.copytree(root, bad_root)
    ref = R.get_reference("quick/unet-s0", bad_root)
    metrics = json.loads((ref.path / "metrics.json").read_text())
    metrics["unet"]["dice"] += 0.01  # a number typed in by hand
    (ref.path / "metrics.json").write_text(json.dumps(metrics))
    rec = json.loads((ref.path / "config.json").read_text())
    rec["config"]["train"]["lr"] = 0.5  # a config edited after the run
    (ref.path / "config.json").write_text(json.dumps(rec))
    problems = R.check_reference(ref)
    assert any("dice" in p and "average" in p for p in problems)
    assert any("hashes to" in p for p in problems)
    assert main(["reference", "check", "--root", str(bad_root)]) == 1
    assert main(["reference", "check", "--root", str(root)]) == 0


@pytest.mark.slow
def test_a_matching_config_loads_the_reference_run_instead_of_training(
    exported, tmp_path, capsys, monkeypatch
):
    _, root = exported
    ref = R.get_reference("quick/sc-sam-s0", root)
    assert R.find_reference(_cfg("sc-sam"), root).name == ref.name
    assert R.find_reference(_cfg("sc-sam", seed=1), root) is None  # another split: no reference
    monkeypatch.setattr("scsam_lite.trainer.train", lambda *a, **k: pytest.fail("trained instead of loading"))
    result = R.train_or_load(_cfg("sc-sam"), tmp_path / "nb", root=root)
    assert "loaded reference run quick/sc-sam-s0" in capsys.readouterr().out
    assert result.metrics == ref.metrics and len(result.label_split.labeled) > 0
    # the copy is an ordinary finished run: its best.pt rebuilds the method and evaluates close to the record
    method, data, _ = load_run(tmp_path / "nb")
    trained = load_run(exported[0] / "run-sc-sam")[0]
    for name in ("unet", "sam"):
        a, b = method.models[name].state_dict(), trained.models[name].state_dict()
        for key, value in b.items():
            if value.is_floating_point():
                torch.testing.assert_close(a[key], value, atol=2e-3, rtol=2e-3)  # fp16 copies
    assert main(["evaluate", str(tmp_path / "nb")]) == 0
    again = json.loads((tmp_path / "nb" / "metrics_test_best.json").read_text())
    assert abs(again["sam"]["dice"] - ref.metrics["sam"]["dice"]) < 0.02
    # RETRAIN replaces the copy with a run trained here
    monkeypatch.undo()
    retrained = R.train_or_load(_cfg("sc-sam"), tmp_path / "nb", retrain=True, root=root)
    assert not R.is_reference_copy(retrained.run_dir)
    assert json.loads((tmp_path / "nb" / "config.json").read_text())["command"] != "pytest sc-sam"
    from scsam_lite.runs import read_results

    (row,) = read_results(tmp_path / "results.jsonl")  # the retrained run's row replaced the reference's
    assert "reference" not in row and row["metrics"] == retrained.metrics


def test_the_hash_of_a_baseline_ignores_the_co_training_settings():
    a, b = _cfg("unet"), _cfg("unet")
    b.cotrain.loss_scale, b.generalist.lr = 0.25, 0.5  # sections a U-Net never reads
    assert C.config_hash(a) == C.config_hash(b)
    c, d = _cfg("sc-sam"), _cfg("sc-sam")
    d.cotrain.loss_scale = 0.25
    assert C.config_hash(c) != C.config_hash(d)


@pytest.mark.slow
def test_results_page_is_rendered_from_the_records(exported, tmp_path):
    _, root = exported
    page = render_results_page(root)
    ref = R.get_reference("quick/sc-sam-s0", root)
    assert f"{ref.metrics['sam']['dice']:.3f}" in page and "SC-SAM's SAM against each baseline" in page
    assert ref.config_hash in page and "pytest sc-sam" in page
    out = tmp_path / "results.md"
    assert main(["results", "--root", str(root), "--write", str(out)]) == 0
    assert main(["results", "--root", str(root), "--check", str(out)]) == 0
    out.write_text(out.read_text().replace(f"{ref.metrics['sam']['dice']:.3f}", "0.999"))
    assert main(["results", "--root", str(root), "--check", str(out)]) == 1


@pytest.mark.slow
def test_unknown_reference_names_the_known_ones(exported):
    _, root = exported
    with pytest.raises(ConfigError, match="quick/sc-sam-s0"):
        R.get_reference("quick/nope", root)


@pytest.mark.slow
def test_a_reference_kept_as_records_only_loads_without_weights(exported, tmp_path, monkeypatch):
    base, _ = exported
    root = tmp_path / "records"
    ref = R.export_reference(base / "run-sc-sam", "quick/sc-sam-s0", weights=False, root=root)
    assert not ref.has_weights and (ref.path / "probes").is_dir()
    monkeypatch.setattr("scsam_lite.trainer.train", lambda *a, **k: pytest.fail("trained instead of loading"))
    result = R.train_or_load(_cfg("sc-sam"), tmp_path / "nb", root=root)
    assert result.method is None and result.metrics == ref.metrics
    assert len(result.label_split.labeled) > 0 and (tmp_path / "nb" / "probes").is_dir()
    from scsam_lite.runs import read_results

    (row,) = read_results(tmp_path / "results.jsonl")
    assert row["reference"] == "quick/sc-sam-s0" and row["metrics"] == ref.metrics


@pytest.mark.slow
def test_rerun_trains_the_recorded_config_again(exported, tmp_path, monkeypatch):
    _, root = exported
    ref = R.get_reference("quick/unet-s0", root)
    seen = {}

    def fake_train(cfg, out, **kw):
        seen.update(hash=C.config_hash(cfg), out=out, command=kw["command"])
        return type("Result", (), {"run_dir": out})()

    monkeypatch.setattr("scsam_lite.trainer.train", fake_train)
    assert (
        main(["reference", "rerun", "quick/unet-s0", "--root", str(root), "--out", str(tmp_path / "again")])
        == 0
    )
    assert seen["hash"] == ref.config_hash and seen["command"].startswith(
        "scsam-lite reference rerun quick/unet-s0"
    )


def test_a_tampered_score_of_the_other_checkpoint_choice_is_caught(tmp_path):
    """The extra scores a record keeps (the other checkpoint choice, validation scores) are checked like
    metrics.json: each must be the mean of its own per-image file."""
    name = next(r.name for r in R.reference_runs() if (r.path / "metrics_test_best_separate.json").is_file())
    shutil.copytree(R.REFERENCE_ROOT / name, tmp_path / name)
    ref = R.get_reference(name, tmp_path)
    assert R.check_reference(ref) == []
    extra = ref.path / "metrics_test_best_separate.json"
    scores = json.loads(extra.read_text())
    scores["sam"]["dice"] += 0.01
    extra.write_text(json.dumps(scores))
    (problem,) = R.check_reference(ref)
    assert "metrics_test_best_separate.json" in problem and "sam dice" in problem
    (ref.path / "metrics_test_best_separate_items.csv").unlink()
    assert R.check_reference(ref) == [
        f"{name}: metrics_test_best_separate.json has no per-image file metrics_test_best_separate_items.csv"
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["/tmp/elsewhere", "../outside/run", "lab/../../x", "lab", "lab/run/deeper", "lab/.hidden"]
)
def test_export_refuses_a_name_that_is_not_a_plain_folder_and_run(name, exported, tmp_path, capsys):
    """An absolute name or '..' once replaced an unrelated folder with a finished run (its files deleted, exit 0)."""
    finished = exported[0] / "run-unet"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    root = tmp_path / "root" / "reference_runs"
    with pytest.raises(ConfigError, match="is not a reference run name"):
        R.export_reference(finished, name.replace("/tmp/elsewhere", str(victim)), root=root)
    assert main(["reference", "export", str(victim), "--run", str(finished)]) == 2
    assert "is not a reference run name" in capsys.readouterr().err
    assert (victim / "keep.txt").read_text() == "mine" and not root.exists()
