"""``scsam-lite site``: the course as a static site (Sphinx, myst-nb, the book theme), built by one command.

Three steps, each a plain function: the five notebooks are executed with :func:`~scsam_lite.runall.run_notebooks`
(``lab`` when Kvasir-SEG is found, else ``quick``) unless already-executed copies are given; :func:`stage` copies
the README (as the landing page), ``docs/*.md`` with their images, ``notebooks/README.md`` and the executed
notebooks into one source folder, repointing relative links (``../README.md`` to the landing page, a source file or
record outside the site to its page on GitHub); :func:`sphinx` builds it with warnings as errors
(configuration: ``docs/conf.py``). The notebooks are not executed again by Sphinx.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from . import REPO_URL
from .errors import ConfigError, ScsamError
from .runall import PATTERN

ROOT = Path(__file__).resolve().parents[1]
#: the sidebar's sections: (caption, pages in the staged folder); docs pages not named here go to the last one
SECTIONS = [
    (
        "The course",
        ["notebooks/README", "notebooks/summary", "docs/course", "docs/colab-kaggle", "docs/datasets"],
    ),
    ("How it works", ["docs/methods", "docs/differences", "docs/performance"]),
    ("Results", ["docs/cotraining-study", "docs/ablations", "docs/results"]),
    ("Using and changing it", ["docs/cli", "docs/troubleshooting", "docs/contributing", "docs/roadmap"]),
]
LINK = re.compile(r"(\]\()([^)\s]+)(\))")


class SiteError(ScsamError):
    """Sphinx reported a warning or an error: the site is not built."""


def pick_profile(data_root: str | os.PathLike | None = None) -> tuple[str, str]:
    """``lab`` when Kvasir-SEG is in the data root (default ``SCSAM_DATA_ROOT``), else ``quick``; and why."""
    from .data.discover import find_existing

    found = find_existing("kvasir-seg", data_root)
    if found is not None:
        return "lab", f"Kvasir-SEG found in {found}"
    return "quick", "no Kvasir-SEG in the data root (set SCSAM_DATA_ROOT or pass --data-root for lab)"


def _github(rel: str, is_dir: bool) -> str:
    return f"{REPO_URL}/{'tree' if is_dir else 'blob'}/main/{rel}"


def rewrite_links(text: str, origin: str, staged: dict[str, str], root: Path = ROOT) -> str:
    """``text`` of the repository file ``origin`` with each relative link repointed for the site: to the staged
    copy of its target (``staged`` maps repository paths to staged paths), else to the target on GitHub."""
    here = Path(staged[origin]).parent

    def repoint(match: re.Match) -> str:
        target = match.group(2)
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return match.group(0)  # a web address or an anchor on the same page
        path, _, anchor = target.partition("#")
        absolute = (root / origin).parent.joinpath(path).resolve()
        try:
            rel = absolute.relative_to(root.resolve()).as_posix()
        except ValueError:
            return match.group(0)  # outside the repository: left for Sphinx to report
        if rel in staged:
            new = os.path.relpath(staged[rel], here).replace(os.sep, "/")
        elif absolute.exists():
            new = _github(rel, absolute.is_dir())
        else:
            return match.group(0)  # a broken link: tests/test_docs.py and Sphinx report it
        return f"{match.group(1)}{new}{'#' + anchor if anchor else ''}{match.group(3)}"

    return LINK.sub(repoint, text)


def _toctree(caption: str, pages: list[str]) -> str:
    return "\n".join(["", "```{toctree}", ":hidden:", f":caption: {caption}", "", *pages, "```", ""])


def stage(
    source: str | os.PathLike,
    executed: str | os.PathLike | None = None,
    *,
    profile: str | None = None,
    root: str | os.PathLike = ROOT,
) -> list[str]:
    """Write the site's source folder ``source`` (emptied first); return its pages (names without suffix).

    ``executed``: the folder of the notebooks to show (default: the repository's ``notebooks/``, without outputs);
    its ``summary.md``, written by ``scsam-lite notebooks``, becomes a page. ``profile`` is named on the landing
    page.
    """
    root = Path(root).resolve()
    source = Path(source)
    executed = Path(executed) if executed else root / "notebooks"
    notebooks = sorted(executed.glob(PATTERN))
    if not notebooks:
        raise ConfigError(
            f"no notebooks ({PATTERN}) in {executed}", "pass the --out folder of `scsam-lite notebooks`"
        )
    if source.exists():
        shutil.rmtree(source)
    (source / "notebooks").mkdir(parents=True)
    # repository path -> staged path, for every page, notebook and image
    staged = {"README.md": "index.md", "notebooks/README.md": "notebooks/README.md"}
    staged |= {f"docs/{p.name}": f"docs/{p.name}" for p in sorted((root / "docs").glob("*.md"))}
    staged |= {f"notebooks/{p.name}": f"notebooks/{p.name}" for p in notebooks}
    images = root / "docs" / "images"
    if images.is_dir():
        shutil.copytree(images, source / "docs" / "images")
        staged |= {p.relative_to(root).as_posix(): p.relative_to(root).as_posix() for p in images.rglob("*")}

    pages = []
    for origin, target in staged.items():
        if not origin.endswith(".md"):
            continue
        text = rewrite_links((root / origin).read_text(), origin, staged, root)
        if origin == "README.md":
            text += _landing(profile, executed, notebooks, staged, root)
        (source / target).parent.mkdir(parents=True, exist_ok=True)
        (source / target).write_text(text)
        pages.append(target.removesuffix(".md"))
    for path in notebooks:
        _stage_notebook(path, source / "notebooks" / path.name, staged, root)
        pages.append(f"notebooks/{path.stem}")
    if (executed / "summary.md").exists():
        (source / "notebooks" / "summary.md").write_text((executed / "summary.md").read_text())
        pages.append("notebooks/summary")
    return pages


def _landing(
    profile: str | None, executed: Path, notebooks: list[Path], staged: dict[str, str], root: Path
) -> str:
    """What the README gets on the site: which run the notebooks show, and the sidebar (hidden toctrees)."""
    summary = (executed / "summary.md").exists()
    if profile:
        how = " ([how long each took](notebooks/summary.md))" if summary else ""
        note = f"The notebooks on this site were executed on the `{profile}` profile{how}."
    elif executed.resolve() == (root / "notebooks").resolve():
        note = "The notebooks on this site are shown as committed, without their outputs and figures."
    else:
        note = "The notebooks on this site were executed beforehand."
    present = {t.removesuffix(".md") for t in staged.values() if t.endswith(".md")}
    if summary:
        present.add("notebooks/summary")
    named = {p for _, pages in SECTIONS for p in pages}
    rest = sorted(p for p in present if p.startswith("docs/") and p not in named)
    text = f"\n## This site\n\n{note} Built by `scsam-lite site` ([how](docs/contributing.md#the-site)).\n"
    text += _toctree("Notebooks", [f"notebooks/{p.stem}" for p in notebooks])
    for i, (caption, pages) in enumerate(SECTIONS):
        pages = [p for p in pages if p in present] + (rest if i == len(SECTIONS) - 1 else [])
        text += _toctree(caption, pages)
    return text


def _stage_notebook(path: Path, target: Path, staged: dict[str, str], root: Path) -> None:
    import nbformat

    nb = nbformat.read(path, as_version=4)
    origin = f"notebooks/{path.name}"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_links(cell.source, origin, staged, root)
    nbformat.write(nb, target)


def sphinx(
    source: str | os.PathLike, html: str | os.PathLike, *, conf: str | os.PathLike | None = None
) -> None:
    """``sphinx-build -W --keep-going``: any warning fails the build (:class:`SiteError` with the warnings)."""
    import importlib.util

    missing = [m for m in ("sphinx", "myst_nb", "sphinx_book_theme") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"the site needs {', '.join(missing)}", 'pip install -e ".[docs]" (or ".[dev]")')
    conf = Path(conf) if conf else ROOT / "docs"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-c", str(conf)]
    done = subprocess.run([*cmd, str(source), str(html)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SiteError(
            f"sphinx-build failed (exit {done.returncode}):\n{(done.stderr or done.stdout).strip()[-3000:]}",
            "fix each warning above in the page or notebook it names (the staged copies are in "
            f"{source}; their originals are in the repository)",
        )


def build(
    out: str | os.PathLike = "build/site",
    *,
    profile: str | None = None,
    executed: str | os.PathLike | None = None,
    data_root: str | None = None,
    verbose: bool = True,
) -> tuple[Path, list[str]]:
    """The whole site in ``out/html``: notebooks executed into ``out/executed`` (unless ``executed`` names
    executed ones), staged into ``out/source``, built. Returns the html folder and the pages."""
    from .runall import read_summary, run_notebooks

    out = Path(out).expanduser().resolve()
    if executed is None:
        if profile is None:
            profile, why = pick_profile(data_root)
            if verbose:
                print(f"site: executing the notebooks on the {profile} profile ({why})", flush=True)
        executed = out / "executed"
        run_notebooks(profile, out=executed, data_root=data_root, verbose=verbose)
    elif profile is None and (Path(executed) / "summary.json").exists():
        profile = read_summary(executed)["profile"]
    pages = stage(out / "source", executed, profile=profile)
    html = out / "html"
    if verbose:
        print(f"site: building {len(pages)} pages with Sphinx (warnings are errors) ...", flush=True)
    sphinx(out / "source", html)
    if verbose:
        print(f"site: {len(pages)} pages, 0 warnings -> {html / 'index.html'}")
    return html, pages
