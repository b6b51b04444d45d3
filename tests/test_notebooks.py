"""Every notebook follows the course's cell order and is committed stripped.

The order (see notebooks/README.md): a title with Colab and Kaggle badges; an install cell that only acts on
hosted platforms; one ``parameters``-tagged cell whose values come from environment variables; a
``scsam_lite.setup(...)`` call; the content; "Exercises" last. Outputs are only kept for ``# NBVAL_CHECK_OUTPUT``
cells, whose expected output nbval compares. Running the notebooks is nbval's job: ``pytest -m slow notebooks/``.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import importlib.util
import io
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

import scsam_lite
from scsam_lite import hosted_install

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CHECK = "# NBVAL_CHECK_OUTPUT"
HOSTED_VARS = ("COLAB_RELEASE_TAG", "COLAB_GPU", "KAGGLE_KERNEL_RUN_TYPE", "KAGGLE_URL_BASE")
OWNER_REPO = scsam_lite.REPO_URL.removeprefix("https://github.com/")

pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks yet")


def load(path: Path):
    return nbformat.read(path, as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def install_cell(nb):
    return code_cells(nb)[0]


def parameters_cells(nb):
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def nb_path(request) -> Path:
    return request.param


def test_valid_nbformat(nb_path):
    nbformat.validate(load(nb_path))


def test_title_has_both_badges_pointing_at_this_notebook(nb_path):
    first = load(nb_path).cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# ")
    target = f"{OWNER_REPO}/blob/main/notebooks/{nb_path.name}"
    assert f"https://colab.research.google.com/github/{target}" in first.source
    assert (
        f"https://kaggle.com/kernels/welcome?src={scsam_lite.REPO_URL}/blob/main/notebooks/{nb_path.name}"
        in first.source
    )
    assert "colab-badge.svg" in first.source and "open-in-kaggle.svg" in first.source


INSTALLER = Path(scsam_lite.__file__).with_name("hosted_install.py")
#: the git tag of this package's version: what every install cell and the installer pin
RELEASE = f"v{scsam_lite.__version__}"


def _run_install_cell(
    source: str, monkeypatch, env: dict[str, str], *, online: bool = True, served: bytes | None = None
) -> list[list[str]]:
    """Execute the install cell with pip stubbed out and GitHub's raw file served from this checkout; return the
    commands it would have run."""
    for name in HOSTED_VARS:
        monkeypatch.delenv(name, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    calls: list[list[str]] = []
    fetched: list[str] = []

    def fake_run(cmd, *args, **kwargs):
        calls.append([str(c) for c in cmd])
        return subprocess.CompletedProcess(cmd, 0)

    def fake_urlopen(url, *args, **kwargs):
        fetched.append(url)
        if not online:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return io.BytesIO(INSTALLER.read_bytes() if served is None else served)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(subprocess, "check_call", fake_run)
    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<install cell>", "exec"), namespace)
    raw = f"https://raw.githubusercontent.com/{OWNER_REPO}/{RELEASE}/scsam_lite/hosted_install.py"
    assert fetched in ([], [raw]), "the cell fetches the install script at the package's release tag"
    assert not {"install", "pins", "main"} & set(namespace), "the script runs in its own namespace"
    return calls


def test_install_cell_is_short(nb_path):
    """The install logic lives in scsam_lite/hosted_install.py; the cell only fetches and runs it."""
    cell = install_cell(load(nb_path))
    assert len(cell.source.splitlines()) <= 17 and "hosted_install.py" in cell.source


def test_install_cell_pins_the_release_and_the_installers_checksum(nb_path):
    """Nothing runs from a moving branch: the cell names the package's own release tag and the sha256 of the
    installer at that tag (this checkout's: update the cells when hosted_install.py changes)."""
    import hashlib

    source = install_cell(load(nb_path)).source
    assert "/main/" not in source and "@main" not in source
    assert (
        f'RELEASE, INSTALLER_SHA256 = "{RELEASE}", "{hashlib.sha256(INSTALLER.read_bytes()).hexdigest()}"'
        in (source)
    ), "hosted_install.py changed: put its new sha256 in every notebook's install cell"
    assert hosted_install.RELEASE == RELEASE


def test_install_cell_refuses_an_installer_that_is_not_the_released_one(nb_path, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    _pretend_not_installed(monkeypatch)
    tampered = INSTALLER.read_bytes() + b"\nimport os; os.system('echo pwned')\n"
    with pytest.raises(SystemExit, match="not the one this notebook was released with: not run"):
        _run_install_cell(
            install_cell(load(nb_path)).source, monkeypatch, {"COLAB_RELEASE_TAG": "r"}, served=tampered
        )


@pytest.mark.parametrize("env", [{}, {"COLAB_RELEASE_TAG": "release"}], ids=["local", "hosted-installed"])
def test_install_cell_is_a_no_op_locally_or_when_installed(nb_path, monkeypatch, env):
    cell = install_cell(load(nb_path))
    assert "install" in cell.source, "the first code cell must be the install cell"
    assert _run_install_cell(cell.source, monkeypatch, env) == []


def _pretend_not_installed(monkeypatch) -> None:
    """As on a fresh Colab/Kaggle runtime: scsam_lite is not importable yet."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "scsam_lite" else real_find_spec(name, *a),
    )


@pytest.mark.parametrize("env", [{"COLAB_RELEASE_TAG": "release"}, {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}])
def test_install_cell_installs_from_the_repo_on_hosted_platforms(nb_path, monkeypatch, tmp_path, env):
    monkeypatch.chdir(tmp_path)
    _pretend_not_installed(monkeypatch)
    calls = _run_install_cell(install_cell(load(nb_path)).source, monkeypatch, env)
    pips = [c for c in calls if "pip" in c]
    assert len(pips) == 1
    cmd = pips[0]
    assert any(part.endswith(f"git+{scsam_lite.REPO_URL}@{RELEASE}") for part in cmd), cmd
    assert "-c" in cmd, "torch, numpy and ipywidgets must be pinned with a constraints file"
    pins = Path(cmd[cmd.index("-c") + 1]).read_text().split()
    for pkg in ("torch", "numpy", "ipywidgets"):
        assert f"{pkg}=={md.version(pkg)}" in pins


def test_install_cell_offline_or_failing_pip_is_one_line(monkeypatch, tmp_path):
    """No internet (Kaggle's default) or a failing pip: one SystemExit line naming the fix, no traceback."""
    monkeypatch.chdir(tmp_path)
    _pretend_not_installed(monkeypatch)
    source = install_cell(load(NOTEBOOKS[0])).source
    with pytest.raises(SystemExit, match="Settings > Internet on"):
        _run_install_cell(source, monkeypatch, {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, online=False)
    monkeypatch.setattr(hosted_install, "install", lambda *a, **k: 1)
    with pytest.raises(SystemExit, match="pip could not install scsam-lite.*Internet on"):
        hosted_install.main()


def test_install_script_is_standalone_and_names_this_repository():
    """It runs before the package is installed: standard library only, and the same repository as the badges."""
    assert hosted_install.REPO_URL == scsam_lite.REPO_URL
    tree = ast.parse(INSTALLER.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_one_parameters_cell_reading_env_vars(nb_path):
    nb = load(nb_path)
    cells = parameters_cells(nb)
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    cell = cells[0]
    assert nb.cells.index(cell) == nb.cells.index(install_cell(nb)) + 1, "parameters come right after install"
    tree = ast.parse(cell.source)
    assigns = [n for n in tree.body if isinstance(n, ast.Assign | ast.AnnAssign)]
    assert assigns, "the parameters cell assigns the notebook's parameters"
    lines = cell.source.splitlines()
    forms = set()
    for node in assigns:
        value = ast.get_source_segment(cell.source, node.value) or ""
        name = ast.get_source_segment(
            cell.source, node.targets[0] if isinstance(node, ast.Assign) else node.target
        )
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name or ""), f"parameter {name} should be UPPER_CASE"
        if "# @param" in lines[node.lineno - 1]:
            forms.add(name)  # a Colab form field: a literal, read from the environment on the next assignment
            continue
        assert "os.environ" in value, f"parameter {name} must default to an environment variable"
        if name in forms:
            assert value.rstrip(")").endswith(f", {name}"), (
                f"{name}: the environment overrides the form's value"
            )
    assert "PROFILE" in cell.source and "SCSAM_PROFILE" in cell.source and "SCSAM_SEED" in cell.source
    if nb_path.name[:2] in ("02", "03", "04", "05"):
        assert "PROFILE" in forms, "the profile is a Colab form field"
        assert '# @param ["quick", "lab", "classroom", "paper"]' in cell.source


def test_setup_call_follows_parameters(nb_path):
    nb = load(nb_path)
    params = nb.cells.index(parameters_cells(nb)[0])
    following = [c for c in nb.cells[params + 1 :] if c.cell_type == "code"][0]
    assert re.search(r"\bscsam_lite\.setup\(\s*seed\s*=\s*SEED", following.source)


def test_exercises_last(nb_path):
    last = load(nb_path).cells[-1]
    assert last.cell_type == "markdown" and re.match(r"#+\s*Exercises", last.source.lstrip())


def test_committed_stripped(nb_path):
    nb = load(nb_path)
    assert "widgets" not in nb.metadata, "widget state in metadata: run nbstripout"
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, f"extra notebook metadata: {set(nb.metadata)}"
    for i, cell in enumerate(nb.cells):
        extra = set(cell.get("metadata", {})) - {"tags"}
        assert not extra, f"cell {i} carries metadata {extra}"
        if cell.cell_type != "code":
            continue
        if CHECK in cell.source:
            # nbval compares only cells that have an execution count; nbstripout keeps "keep_output" cells' text.
            assert "keep_output" in cell.metadata.get("tags", []), (
                f"cell {i}: tag NBVAL_CHECK_OUTPUT cells keep_output"
            )
            assert cell.outputs, f"cell {i} is an NBVAL_CHECK_OUTPUT cell without its expected output"
            assert cell.execution_count is not None, (
                f"cell {i}: nbval skips a check cell without execution count"
            )
            assert all(o.output_type == "stream" for o in cell.outputs), f"cell {i}: keep only printed text"
        else:
            assert not cell.outputs, f"cell {i} has outputs: run nbstripout --keep-count"


def test_nbstripout_leaves_it_unchanged(nb_path):
    """The committed file is what ``nbstripout --keep-count`` makes of it (the documented commit step)."""
    utils = pytest.importorskip("nbstripout._utils")
    nb = load(nb_path)
    stripped = utils.strip_output(
        load(nb_path), keep_output=None, keep_count=True, keep_id=False, extra_keys=["metadata.widgets"]
    )
    assert nbformat.writes(stripped) == nbformat.writes(nb), "run: nbstripout --keep-count " + nb_path.name


def test_cells_fit_on_a_screen(nb_path):
    for i, cell in enumerate(load(nb_path).cells):
        if cell.cell_type == "code":
            assert cell.source.count("\n") < 25, (
                f"cell {i} is longer than a screen: move logic into the library"
            )


def _assigned(cell) -> list[str]:
    tree = ast.parse(cell.source)
    nodes = [n for n in tree.body if isinstance(n, ast.Assign | ast.AnnAssign)]
    # a Colab form field is assigned twice (the form's literal, then the environment's value): named once
    return list(
        dict.fromkeys(ast.unparse(n.targets[0] if isinstance(n, ast.Assign) else n.target) for n in nodes)
    )


def _hosted_call(stmt: ast.stmt, target: str, func: str, args: list[str]) -> bool:
    """``target = scsam_lite.hosted.func(*args)``."""
    return (
        isinstance(stmt, ast.Assign)
        and ast.unparse(stmt.targets[0]) == target
        and isinstance(stmt.value, ast.Call)
        and ast.unparse(stmt.value.func) == f"scsam_lite.hosted.{func}"
        and [ast.unparse(a) for a in stmt.value.args] == args
    )


def test_runs_and_profile_go_through_hosted_right_after_setup(nb_path):
    """On Colab/Kaggle the profile falls back without a GPU and runs go where a disconnect loses nothing."""
    nb = load(nb_path)
    params = parameters_cells(nb)[0]
    if "RUNS" not in _assigned(params):
        pytest.skip("trains nothing: no run folders")
    assert "DRIVE" in _assigned(params) and "SCSAM_DRIVE" in params.source
    cell = [c for c in nb.cells[nb.cells.index(params) + 1 :] if c.cell_type == "code"][0]
    body = ast.parse(cell.source).body
    setup_at = next(i for i, s in enumerate(body) if "scsam_lite.setup(" in ast.unparse(s))
    profile_at = [
        i for i, s in enumerate(body) if _hosted_call(s, "PROFILE", "profile_for", ["PROFILE", "rt"])
    ]
    runs_at = [
        i for i, s in enumerate(body) if _hosted_call(s, "RUNS", "persistent_runs_dir", ["RUNS", "DRIVE"])
    ]
    assert len(profile_at) == 1 and len(runs_at) == 1, (
        "call profile_for and persistent_runs_dir once after setup"
    )
    assert setup_at < profile_at[0] and setup_at < runs_at[0]
    # the data: found, downloaded or the quick fallback, decided right after the profile (it may change it)
    data_at = [
        i for i, s in enumerate(body) if "hosted.notebook_data(PROFILE, DATASET, DATA_ROOT)" in ast.unparse(s)
    ]
    if "DATASET" in _assigned(params):
        assert data_at == [profile_at[0] + 1], "notebook_data follows profile_for"
        assert (
            ast.unparse(body[data_at[0] + 1])
            == "PROFILE, DATASET, DATA_ROOT = (DATA.profile, DATA.dataset, DATA.data_root)"
        )
    allowed = {profile_at[0], runs_at[0], *data_at, *(i + 1 for i in data_at)}
    for i, stmt in enumerate(body[: max(profile_at[0], runs_at[0])]):
        names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
        if i not in allowed:
            assert not names & {"PROFILE", "RUNS"}, f"{ast.unparse(stmt)!r} uses PROFILE/RUNS before hosted"


def test_papermill_parses_every_parameter(nb_path, caplog):
    """papermill's ``-p NAME value`` needs it to read each line of the parameters cell (no ``==`` in a line)."""
    import papermill

    caplog.set_level("WARNING", logger="papermill")
    found = papermill.inspect_notebook(nb_path)
    assert list(found) == _assigned(parameters_cells(load(nb_path))[0])
    assert not [r.getMessage() for r in caplog.records if r.name.startswith("papermill")]
