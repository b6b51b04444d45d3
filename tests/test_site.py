"""The course site (`scsam-lite site`, docs/contributing.md "The site"): staging and a Sphinx build without warnings."""

from __future__ import annotations

import re

import pytest

from scsam_lite import REPO_URL
from scsam_lite.site import ROOT, build, pick_profile, rewrite_links, stage

DOCS = sorted(p.stem for p in (ROOT / "docs").glob("*.md"))
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
#: the landing page, every docs page, the notebooks' README and the five notebooks
PAGES = 1 + len(DOCS) + 1 + len(NOTEBOOKS)


def test_links_point_to_staged_pages_or_to_github():
    staged = {
        "README.md": "index.md",
        "docs/cli.md": "docs/cli.md",
        "notebooks/01_data.ipynb": "notebooks/01_data.ipynb",
    }
    text = (
        "[back](../README.md) [nb](../notebooks/01_data.ipynb#1-two) [rec](records/test-suite.json) "
        "[runs](../scsam_lite/reference_runs) [web](https://example.org/a.md) [here](#tests) [gone](nothing.md)"
    )
    out = rewrite_links(text, "docs/cli.md", staged)
    assert "[back](../index.md)" in out and "[nb](../notebooks/01_data.ipynb#1-two)" in out
    assert f"[rec]({REPO_URL}/blob/main/docs/records/test-suite.json)" in out
    assert f"[runs]({REPO_URL}/tree/main/scsam_lite/reference_runs)" in out
    assert (
        "[web](https://example.org/a.md)" in out and "[here](#tests)" in out and "[gone](nothing.md)" in out
    )


def test_stage_collects_every_page_and_every_relative_link_resolves(tmp_path):
    pages = stage(tmp_path / "src")
    assert len(pages) == PAGES and "index" in pages
    assert {f"docs/{d}" for d in DOCS} | {f"notebooks/{n}" for n in NOTEBOOKS} <= set(pages)
    index = (tmp_path / "src" / "index.md").read_text()
    for page in pages[1:]:
        assert f"\n{page}\n" in index, f"{page} is in no toctree of the landing page"
    assert "shown as committed" in index
    assert "](../index.md)" in (tmp_path / "src" / "docs" / "cli.md").read_text()
    for page in (tmp_path / "src").rglob("*.md"):
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if not re.match(r"[a-z]+:", target) and not target.startswith("#"):
                assert (page.parent / target.split("#")[0]).exists(), f"{page}: {target}"


def test_the_profile_is_quick_without_kvasir(tmp_path, monkeypatch):
    monkeypatch.setenv("SCSAM_DATA_ROOT", str(tmp_path))
    assert pick_profile()[0] == "quick"


@pytest.mark.slow
def test_the_site_builds_from_the_committed_notebooks_without_warnings(tmp_path):
    # the committed notebooks, without outputs: CI executes them once already, under nbval
    html, pages = build(tmp_path / "site", executed=ROOT / "notebooks", verbose=False)
    assert len(pages) == PAGES
    assert (html / "index.html").exists()
    for name in NOTEBOOKS:
        assert (html / "notebooks" / f"{name}.html").exists()
    assert "Measured results" in (html / "docs" / "results.html").read_text()
