"""Warm start (``specialist.init_from`` / ``generalist.init_from``): the regime study's candidate starts SC-SAM
from the split's trained baselines; these tests pin what moves, what the hash says, and what is refused."""

from __future__ import annotations

import shutil

import pytest
import torch

from scsam_lite import config as C
from scsam_lite.errors import ConfigError
from scsam_lite.methods.base import model_state
from scsam_lite.runs import load_checkpoint
from scsam_lite.trainer import build_training, train
from scsam_lite.warm_start import warm_start

SHORT = {
    "train.iterations": "2",
    "train.val_every": "2",
    "data.labeled": "0.2",
    "train.deterministic": "true",
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """A finished U-Net run and a finished PEFT-SAM run (tiny SAM), two steps each."""
    root = tmp_path_factory.mktemp("sources")
    for method in ("unet", "peft-sam"):
        train(C.build_config("quick", SHORT, method=method), root / method, verbose=False)
    return root


def _sc_sam(**over):
    cfg = C.resolved(C.build_config("quick", {**SHORT, **over}, method="sc-sam"))
    from scsam_lite.runtime import setup

    return cfg, build_training(cfg, setup(0, "cpu", verbose=False), embed=False)[2]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].float(), b[k].float()) for k in a)


@pytest.mark.slow
def test_both_models_start_from_their_sources_tested_weights(sources):
    cfg, method = _sc_sam(
        **{"specialist.init_from": str(sources / "unet"), "generalist.init_from": str(sources / "peft-sam")}
    )
    unet_best = load_checkpoint(sources / "unet/checkpoints/best.pt")["method"]["models"]["unet"]
    sam_best = load_checkpoint(sources / "peft-sam/checkpoints/best.pt")["method"]["models"]["sam"]
    assert not _same(model_state(method.models["unet"]), unet_best)  # a fresh U-Net is not the trained one
    loaded = warm_start(method, cfg)
    assert _same(model_state(method.models["unet"]), unet_best)
    assert _same(model_state(method.models["sam"]), sam_best)
    assert loaded["specialist.init_from"]["method"] == "unet" and loaded["generalist.init_from"][
        "models"
    ] == ["sam"]


@pytest.mark.slow
def test_the_hash_names_the_source_experiment_not_its_path(sources, tmp_path):
    shutil.copytree(sources / "unet", tmp_path / "moved")
    here, moved = (
        C.config_hash(C.build_config("quick", {"specialist.init_from": str(p)}, method="sc-sam"))
        for p in (sources / "unet", tmp_path / "moved")
    )
    other = C.config_hash(
        C.build_config("quick", {"specialist.init_from": str(sources / "peft-sam")}, method="sc-sam")
    )
    cold = C.config_hash(C.build_config("quick", method="sc-sam"))
    assert here == moved and len({here, other, cold}) == 3


def test_a_source_that_is_not_a_finished_run_is_refused_before_anything_is_written(tmp_path):
    cfg = C.build_config("quick", {**SHORT, "specialist.init_from": str(tmp_path / "nowhere")}, method="unet")
    with pytest.raises(ConfigError, match="not a finished run") as err:
        train(cfg, tmp_path / "run", verbose=False)
    assert "reference rerun" in err.value.fix and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_source_without_that_model_or_of_another_shape_is_refused(sources):
    cfg, method = _sc_sam(**{"generalist.init_from": str(sources / "unet")})
    with pytest.raises(ConfigError, match="no sam to start"):
        warm_start(method, cfg)
    cfg, method = _sc_sam(**{"specialist.init_from": str(sources / "unet"), "specialist.name": "resunet"})
    with pytest.raises(ConfigError, match="does not fit") as err:
        warm_start(method, cfg)
    assert "same specialist.name" in err.value.fix


def test_a_committed_record_names_its_source_by_reference_run_and_keeps_its_hash(tmp_path):
    """Records write ``lab/unet-s0`` (not a path of the machine that trained them): the same identity as a folder
    holding a run of that config, and training from the name alone says how to get its weights."""
    from scsam_lite.reference import get_reference

    assert C.run_identity("lab/unet-s0") == "run:" + get_reference("lab/unet-s0").config_hash
    cfg = C.build_config("quick", {**SHORT, "specialist.init_from": "lab/unet-s0"}, method="unet")
    with pytest.raises(ConfigError, match="names a reference run") as err:
        train(cfg, tmp_path / "run", verbose=False)
    assert "reference rerun lab/unet-s0 --out DIR" in err.value.fix


def test_the_seeds_of_a_warm_start_share_one_row_of_the_step_table():
    from scsam_lite.results import step_label

    labels = {
        step_label(C.build_config("lab", {"specialist.init_from": f"lab/unet-s{s}"}, method="sc-sam"))
        for s in (0, 1, 2)
    }
    assert labels == {"specialist from lab/unet"}


def test_export_names_a_warm_start_source_by_its_reference_run_or_refuses():
    """No path of the training machine goes into a committed record: the source becomes ``lab/unet-s0``."""
    from scsam_lite.reference import _name_warm_start_sources, get_reference

    folder = "/somewhere/runs/unet-s0"
    record = {
        "config": C.build_config("lab", {"specialist.init_from": folder}, method="sc-sam").to_dict(),
        "command": f"scsam-lite train --set specialist.init_from={folder} --out RUN_DIR",
        "warm_start": {
            "specialist.init_from": {
                "folder": folder,
                "config_hash": get_reference("lab/unet-s0").config_hash,
            }
        },
    }
    _name_warm_start_sources(record)
    assert record["config"]["specialist"]["init_from"] == "lab/unet-s0"
    assert (
        folder not in record["command"]
        and record["warm_start"]["specialist.init_from"]["folder"] == "lab/unet-s0"
    )
    record["warm_start"]["specialist.init_from"]["config_hash"] = "000000000000"
    with pytest.raises(ConfigError, match="not a reference run"):
        _name_warm_start_sources(record)
