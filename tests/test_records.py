"""The records the documentation cites: each one is made by ``scsam-lite records`` (or is hand-written), and none
names a config hash that today's code no longer gives the config it describes."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from scsam_lite import config as C
from scsam_lite import records as R
from scsam_lite.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CITED = re.compile(r"\]\((?:docs/)?((?:records|bench)/[^)#\s]+)\)")


def test_every_cited_record_is_made_by_the_records_command_or_hand_written():
    cited = {m for page in PAGES for m in CITED.findall(page.read_text())}
    known = {r.path for r in R.RECORDS.values()} | set(R.HAND_WRITTEN)
    assert cited <= known, f"cited but unknown to scsam_lite.records: {sorted(cited - known)}"
    assert known <= cited, f"in scsam_lite.records but cited nowhere: {sorted(known - cited)}"


@pytest.mark.parametrize("name", list(R.RECORDS))
def test_no_cited_record_names_a_config_hash_the_code_no_longer_produces(name):
    record = R.read_record(name)
    assert record is not None, f"docs/{R.RECORDS[name].path} is missing: scsam-lite records {name}"
    stale = R.RECORDS[name].stale_hashes(record)
    assert not stale, (
        f"docs/{R.RECORDS[name].path}:\n  " + "\n  ".join(stale) + f"\nfix: scsam-lite records {name}"
    )


def _course_record(runs: dict[str, str]) -> dict:
    rows = [{"run": f"{prefix}-{h}", "model": "unet"} for prefix, h in runs.items()]
    notebooks = [{"name": "01_data.ipynb", "seconds": 1.0, "peak_rss_gb": 0.5}]
    return {p: {"summary": {"notebooks": notebooks, "metrics": rows}} for p in ("cold", "warm")}


def test_a_course_record_with_todays_hashes_is_current_and_one_changed_hash_is_named():
    today = R.course_runs("quick")
    assert "synthetic-polyp-sc-sam" in today and "rampup-off-s0" in today
    record = _course_record(today)
    assert R.stale_course_hashes(record, "quick") == [] and R.missing_notebook_fields(record) == []
    old = _course_record({**today, "synthetic-polyp-sc-sam": "0123456789ab", "gone-s0": "ffffffffffff"})
    stale = R.stale_course_hashes(old, "quick")
    assert len(stale) == 2
    assert any(
        "synthetic-polyp-sc-sam-0123456789ab" in s and today["synthetic-polyp-sc-sam"] in s for s in stale
    )
    assert any("gone-s0-ffffffffffff" in s and "no longer makes" in s for s in stale)


def test_the_course_prediction_is_what_the_notebooks_train():
    """The quick course's sc-sam run is notebook 04's config: the preset with the notebook's seed and labels."""
    from scsam_lite.hosted import course_config

    assert R.course_runs("quick")["synthetic-polyp-sc-sam"] == C.config_hash(course_config("quick", "sc-sam"))
    assert R.course_runs("lab")["fidelity-ours-s0"] == C.config_hash(course_config("lab", "sc-sam"))


def test_a_quick_train_record_is_checked_per_method():
    today = {m: {"config_hash": C.config_hash(R.quick_train_config(m))} for m in ("unet", "sc-sam")}
    assert R.stale_quick_train_hashes({"runs": today}) == []
    old = {"runs": {**today, "sc-sam": {"config_hash": "0123456789ab"}}}
    assert [s.split(";")[0] for s in R.stale_quick_train_hashes(old)] == ["names sc-sam run 0123456789ab"]


def test_a_stored_config_must_still_hash_to_its_hash():
    cfg = R.bench_config()
    record = {"config": cfg.to_dict(), "config_hash": C.config_hash(cfg)}
    assert R.stale_bench_hash(record) == []
    assert "hashes to" in R.stored_hash_problems({**record, "config_hash": "0123456789ab"})[0]


def test_pytests_closing_line_gives_counts_and_failed_tests():
    out = (
        "FAILED tests/test_a.py::test_b[1] - AssertionError: x - y\n"
        "ERROR tests/test_c.py::test_d\n"
        "==== 1 failed, 790 passed, 4 skipped, 2 deselected, 1 error in 1459.84s (0:24:19) ====\n"
    )
    got = R.parse_pytest(out)
    assert got["counts"] == {"failed": 1, "passed": 790, "skipped": 4, "deselected": 2, "error": 1}
    assert got["failed"] == ["tests/test_a.py::test_b[1]", "tests/test_c.py::test_d"]
    assert got["summary"].startswith("1 failed")


@pytest.fixture
def made(monkeypatch, tmp_path):
    """Every record's maker replaced by one that only notes its call, and docs/ in a temporary folder."""
    calls = []

    def fake(name):
        return lambda work, data_root: calls.append((name, data_root)) or {"what": name}

    for name, rec in R.RECORDS.items():
        if rec.make is not None:
            monkeypatch.setitem(R.RECORDS, name, dataclasses.replace(rec, make=fake(name)))
    monkeypatch.setattr(R, "DOCS", tmp_path / "docs")
    (tmp_path / "docs").mkdir()
    monkeypatch.delenv("SCSAM_DATA_ROOT", raising=False)
    return calls


def test_records_list_names_each_record_its_cost_and_state(made, capsys):
    assert main(["records", "--list"]) == 0
    out = capsys.readouterr().out
    for rec in R.RECORDS.values():
        assert f"docs/{rec.path}" in out
    assert out.count("cost: ") == len(R.RECORDS) and "does not exist" in out
    assert made == []


def test_an_unknown_record_is_one_error_naming_the_valid_ones(made, capsys, tmp_path):
    assert main(["records", "quick-trian", "--work", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown record 'quick-trian'") and "did you mean 'quick-train'" in err
    assert all(name in err for name in R.RECORDS)
    assert made == []


def test_a_lab_record_without_kvasir_names_the_fix_before_anything_runs(made, capsys, tmp_path):
    assert main(["records", "quick-train", "notebooks-lab", "--work", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Kvasir-SEG" in err and "--data-root DIR" in err and "scsam-lite download kvasir-seg" in err
    assert made == []


def test_a_historical_record_is_not_made_again(made, capsys, tmp_path):
    assert main(["records", "lab-sc-sam-decoder", "--work", str(tmp_path)]) == 2
    assert "historical" in capsys.readouterr().err and made == []


def test_records_writes_the_named_ones_with_their_provenance(made, tmp_path):
    assert main(["records", "quick-train", "test-suite", "--work", str(tmp_path / "work")]) == 0
    assert made == [("quick-train", None), ("test-suite", None)]
    record = json.loads((tmp_path / "docs" / "records" / "quick-train.json").read_text())
    assert record["what"] == "quick-train" and record["finished"]
    assert {"commit", "machine"} <= set(record["provenance"])
    assert not (tmp_path / "docs" / "records" / "notebooks-quick.json").exists()
