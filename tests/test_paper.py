"""The paper's published numbers: every value present, marked as a citation, and tied to an existing sweep."""

from __future__ import annotations

import pytest

from scsam_lite import paper
from scsam_lite.data import DATASETS
from scsam_lite.sweeps import GRIDS

PUBLISHED = {
    ("promise12", 0.05, "SC-SAM"): 83.64,
    ("promise12", 0.05, "SC-SAM without ramp-up"): 36.37,
    ("promise12", 0.05, "specialist UNet"): 83.64,
    ("promise12", 0.05, "specialist UNet++"): 80.14,
    ("promise12", 0.05, "specialist ResUNet++"): 78.20,
    ("promise12", 0.05, "specialist SwinUNet"): 70.27,
    ("kvasir-seg", 0.05, "SC-SAM"): 84.79,
    ("kvasir-seg", 0.10, "SC-SAM"): 86.27,
    ("cvc-clinicdb", 0.05, "SC-SAM"): 79.54,
    ("cvc-clinicdb", 0.10, "SC-SAM"): 83.06,
}


def test_every_published_value_is_there_once():
    table = paper.paper_table()
    got = {(r.dataset, r.labeled, r.setting): r.dice for r in table.itertuples()}
    assert len(got) == len(table) == len(PUBLISHED)
    assert got == pytest.approx(PUBLISHED)


def test_columns_and_source_say_it_is_a_citation():
    table = paper.paper_table()
    assert list(table.columns[:4]) == ["dataset", "labeled", "setting", "dice"]
    assert (table["source"] == "SC-SAM paper (published)").all()
    assert "not measured by this code" in paper.__doc__


def test_rows_point_at_real_datasets_grids_and_variants():
    for r in paper.RESULTS:
        assert r.dataset in DATASETS
        assert r.variant in [v.label for v in GRIDS.get(r.grid).variants], (r.grid, r.variant)


def test_filter_by_grid():
    assert set(paper.paper_table("backbone")["variant"]) == {"unet", "unet++", "resunet", "swin"}
    assert paper.paper_table("rampup")["dice"].tolist() == [83.64, 36.37]
    empty = paper.paper_table("tokens")
    assert empty.empty and list(empty.columns) == paper.COLUMNS
