"""The install paths agree: environment.yml with pyproject.toml, the README's commands with CI."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _name(req: str) -> str:
    return re.split(r"[\s<>=!~\[;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = _pyproject()["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.replace(" ", "") == "python" + project["requires-python"].replace(" ", "")
    assert "conda-forge" in env["channels"]
    pip_block = next(d["pip"] for d in deps if isinstance(d, dict))
    installs = [p for p in pip_block if p.lstrip("-e ").strip("\"'").startswith(".")]
    assert installs, "the pip block must install the project itself"
    extras = re.findall(r"\[([^\]]+)\]", installs[0])
    for extra in extras[0].split(",") if extras else []:
        assert extra in project["optional-dependencies"]
    # anything else named in environment.yml must be a declared dependency of the project
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for rs in project["optional-dependencies"].values() for r in rs}
    others = [d for d in deps if isinstance(d, str) and _name(d) not in ("python", "pip")]
    others += [p for p in pip_block if p not in installs]
    assert {_name(o) for o in others} <= declared


def test_dependencies_have_lower_bounds_only():
    project = _pyproject()["project"]
    reqs = project["dependencies"] + [r for rs in project["optional-dependencies"].values() for r in rs]
    for req in reqs:
        assert ">=" in req and "==" not in req and "<" not in req.replace("<=", ""), req


def _readme_block(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", part, re.S).group(1)
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_quick_start_has_two_commands_and_ci_runs_them():
    quick = _readme_block("Quick start")
    assert len(quick) == 2, quick
    assert quick[0].startswith("scsam-lite notebooks "), "the main job is the whole course (issue 6)"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_commands = [c.strip() for c in ci if c.strip() and not c.strip().startswith("#")]
    assert quick[1] in ci_commands, "CI must run the README's test command"
    install = _readme_block("Install")
    assert any(cmd in ci_commands for cmd in install), "CI must install the way the README says"


def test_readme_opens_every_notebook_on_colab_and_kaggle():
    import scsam_lite

    readme = (ROOT / "README.md").read_text()
    owner_repo = scsam_lite.REPO_URL.removeprefix("https://github.com/")
    notebooks = sorted((ROOT / "notebooks").glob("0*.ipynb"))
    assert len(notebooks) == 5
    for nb in notebooks:
        assert (
            f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{nb.name}" in readme
        )
        assert (
            f"https://kaggle.com/kernels/welcome?src={scsam_lite.REPO_URL}/blob/main/notebooks/{nb.name}"
            in readme
        )
