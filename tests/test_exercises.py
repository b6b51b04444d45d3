"""The exercises' solutions: one per exercise, kept out of the notebooks, and their code uses the real API."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib

from scsam_lite import exercises
from scsam_lite.config import Config, all_keys, set_value
from scsam_lite.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STEMS = [nb.stem for nb in NOTEBOOKS]
CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
SET_FLAG = re.compile(r"--set[= ]\s*([A-Za-z_][\w.]*)=(\S+)")
ENV_VAR = re.compile(r"\bSCSAM_[A-Z_]+\b")
KEYS = set(all_keys())


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block."""
    return [(m.group(1).lower(), m.group(2)) for m in CODE_BLOCK.finditer(markdown)]


def python_blocks(stem: str) -> list[str]:
    return [code for lang, code in code_blocks(exercises.solutions_markdown(stem)) if lang == "python"]


def notebook_cells(stem: str) -> list[dict]:
    return json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]


def notebook_code(stem: str) -> str:
    """Every code cell of the notebook that parses (a cell with shell magics is left out)."""
    cells = []
    for cell in notebook_cells(stem):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            try:
                ast.parse(source)
            except SyntaxError:
                continue
            cells.append(source)
    return "\n".join(cells)


def notebook_imports(stem: str) -> str:
    """The notebook's own imports of scsam_lite: solutions use the names its cells have bound (viz, train, ...)."""
    lines = []
    for cell in notebook_cells(stem):
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom) and "scsam_lite" in ast.unparse(node):
                lines.append(ast.unparse(node))
    return "\n".join(lines)


# -- checkers (tested on bad input below, so each can fail) -----------------------------------------------------


def bound_names(code: str) -> set[str]:
    """Names a piece of code defines: assignments, loop and with targets, imports, functions, classes."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def undefined_names(code: str, context: str = "") -> list[str]:
    """Names ``code`` reads that neither it, ``context`` (the notebook's cells) nor Python defines."""
    known = bound_names(code) | bound_names(context) | set(dir(builtins))
    loaded = {
        n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return sorted(loaded - known)


def _bind_imports(tree: ast.AST) -> tuple[dict[str, object], list[str]]:
    bound: dict[str, object] = {}
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "scsam_lite":
                    continue
                try:
                    module = importlib.import_module(alias.name)
                except ImportError:
                    problems.append(f"import {alias.name}")
                    continue
                if alias.asname:
                    bound[alias.asname] = module
                else:
                    bound["scsam_lite"] = importlib.import_module("scsam_lite")
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("scsam_lite")
        ):
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                problems.append(f"from {node.module} import ...")
                continue
            for alias in node.names:
                if hasattr(module, alias.name):
                    bound[alias.asname or alias.name] = getattr(module, alias.name)
                    continue
                try:
                    bound[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    problems.append(f"from {node.module} import {alias.name}")
    return bound, problems


_MISSING = object()


def _resolve(node: ast.AST, bound: dict[str, object], problems: list[str]) -> object:
    """The object an expression ``name.attr.attr`` stands for, if its root is a bound scsam_lite name."""
    if isinstance(node, ast.Name):
        return bound.get(node.id, _MISSING)
    if isinstance(node, ast.Attribute):
        owner = _resolve(node.value, bound, problems)
        if owner is _MISSING:
            return _MISSING
        if not hasattr(owner, node.attr):
            problems.append(f"{ast.unparse(node)} does not exist")
            return _MISSING
        return getattr(owner, node.attr)
    return _MISSING


def api_problems(code: str, context: str = "") -> list[str]:
    """Imports, attributes and keyword arguments of scsam_lite that do not exist in ``code``."""
    tree = ast.parse(context + "\n" + code)
    bound, problems = _bind_imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            _resolve(node, bound, problems)
        if isinstance(node, ast.Call):
            func = _resolve(node.func, bound, problems)
            if func is _MISSING or not callable(func):
                continue
            try:
                params = inspect.signature(func).parameters
            except (TypeError, ValueError):
                continue
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                continue
            for kw in node.keywords:
                if kw.arg is not None and kw.arg not in params:
                    problems.append(f"{ast.unparse(node.func)}() has no argument {kw.arg!r}")
    return sorted(set(problems))


def config_key_problems(code: str, language: str = "python") -> list[str]:
    """``"section.field"`` keys of overrides dicts, ``overrides[...]`` and ``--set`` that are not config keys."""
    found: list[tuple[str, object]] = [(k, v) for k, v in SET_FLAG.findall(code)]
    if language == "python":
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(key.value, str) and "." in key.value:
                        found.append((key.value, value.value if isinstance(value, ast.Constant) else None))
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if (
                        isinstance(target, ast.Subscript)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "overrides"
                        and isinstance(target.slice, ast.Constant)
                    ):
                        value = node.value.value if isinstance(node.value, ast.Constant) else None
                        found.append((target.slice.value, value))
    problems = []
    for key, value in found:
        if key not in KEYS:
            problems.append(f"{key} is not a config key")
        elif value is not None:
            try:
                set_value(Config(), key, value)
            except ConfigError as err:
                problems.append(f"{key}={value!r}: {err.message}")
    return problems


# -- one solution per exercise ----------------------------------------------------------------------------------


def test_every_notebook_has_a_solutions_file():
    assert STEMS, "no notebooks found"
    assert exercises.notebooks() == STEMS


@pytest.mark.parametrize("stem", STEMS)
def test_one_solution_section_per_exercise(stem):
    items = exercises.notebook_exercises(ROOT / "notebooks" / f"{stem}.ipynb")
    assert list(items) == list(range(1, len(items) + 1)), f"{stem}: exercises numbered {list(items)}"
    assert len(items) >= 3, f"{stem}: its Exercises cell was not found or not parsed"
    text = exercises.solutions_markdown(stem)
    headings = [int(n) for n in exercises.SECTION.findall(text)]
    assert headings == list(range(1, len(items) + 1)), (
        f"{stem}.md has sections {headings} for {len(items)} exercises: add or renumber '## Exercise N' sections"
    )
    assert exercises.exercise_count(stem) == len(items)
    for number, section in exercises.sections(text).items():
        body = section.split("\n", 1)[1].strip()
        assert len(body) > 100, f"{stem} exercise {number}: the solution is too short to teach anything"


def test_exercise_items_parses_numbered_items_only():
    cell = (
        "## Exercises\n\n"
        "Change one setting, e.g. `x = 1`, and re-run.\n\n"
        "1. **First.** Do this\n"
        "   and continue here.\n"
        "2. Second,\n"
        "   over two lines.\n\n"
        "3. Third after a blank line.\n\n"
        "Solutions, when you have tried: `solution(4, 1)`\n"
    )
    assert exercises.exercise_items(cell) == {
        1: "**First.** Do this and continue here.",
        2: "Second, over two lines.",
        3: "Third after a blank line.",
    }
    assert exercises.exercise_items("## Exercises\n\nNone yet.\n") == {}


def test_sections_split_at_exercise_headings():
    text = "# Title\n\nIntro.\n\n## Exercise 1: one\n\nA.\n\n### detail\n\nB.\n\n## Exercise 2\n\nC.\n"
    found = exercises.sections(text)
    assert list(found) == [1, 2]
    assert found[1].startswith("## Exercise 1: one") and "### detail" in found[1] and "C." not in found[1]
    assert found[2] == "## Exercise 2\n\nC.\n"


# -- the code in the solutions ------------------------------------------------------------------------------------

# a missing solutions file fails test_every_notebook_has_a_solutions_file, not the collection
SHIPPED = [stem for stem in STEMS if stem in exercises.notebooks()]
BLOCKS = [(stem, i, code) for stem in SHIPPED for i, code in enumerate(python_blocks(stem))]


@pytest.mark.parametrize(("stem", "index", "code"), BLOCKS, ids=[f"{s}-{i}" for s, i, _ in BLOCKS])
def test_python_blocks_parse_and_use_the_real_api(stem, index, code):
    ast.parse(code)
    assert undefined_names(code, context=notebook_code(stem)) == [], "names the notebook does not define"
    assert api_problems(code, context=notebook_imports(stem)) == []
    assert config_key_problems(code) == []


@pytest.mark.parametrize("stem", STEMS)
def test_set_flags_and_env_vars_exist(stem):
    text = exercises.solutions_markdown(stem)
    for language, code in code_blocks(text):
        if language != "python":
            assert config_key_problems(code, language) == [], f"{stem}: {language} block"
    notebook_text = json.dumps(notebook_cells(stem))
    unknown = sorted({v for v in ENV_VAR.findall(text) if v not in notebook_text})
    assert unknown == [], f"{stem}: environment variables the notebook does not read: {unknown}"


def test_checkers_catch_wrong_names_and_keys():
    bad = (
        "from scsam_lite.metrics import no_such_function\n"
        "import scsam_lite\n"
        "scsam_lite.metrics.segmentation_metrix(a, b)\n"
        "from scsam_lite.data import make_label_split\n"
        "make_label_split(data, 0.05, sed=1)\n"
    )
    problems = api_problems(bad)
    assert any("no_such_function" in p for p in problems)
    assert any("segmentation_metrix" in p for p in problems)
    assert any("'sed'" in p for p in problems)
    good = "from scsam_lite.data import make_label_split\nmake_label_split(data, 0.05, seed=1)\n"
    assert api_problems(good) == []
    assert api_problems("viz.plot_run(d, terms=('w',))", context="from scsam_lite import viz") == []
    assert api_problems("viz.plot_runs(d)", context="from scsam_lite import viz") != []

    assert undefined_names("print(results, len(x))", context="x = 1") == ["results"]
    assert undefined_names("y = [i for i in x]", context="x = 1") == []

    keys = config_key_problems(
        'overrides["cotrain.rampup_lenght"] = 0\ncfg = {"train.method": "unet", "data.labeled": "many"}\n'
    )
    assert len(keys) == 2 and "cotrain.rampup_lenght" in keys[0] and "data.labeled" in keys[1]
    assert config_key_problems("scsam-lite train --set train.itrations=5", "bash") != []
    assert config_key_problems("scsam-lite train --set train.iterations=5", "bash") == []


# -- the function students call -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", [2, "2", "02", "02_unet_ssl", "02_unet_ssl.ipynb", "unet_ssl"])
def test_solution_accepts_notebook_spellings(spelling, capsys):
    text = exercises.solution(spelling)
    assert text == exercises.solutions_markdown("02_unet_ssl")
    assert capsys.readouterr().out.strip() == text.strip()  # printed outside Jupyter


def test_solution_of_one_exercise_is_its_section(capsys):
    text = exercises.solution("03", 2)
    assert isinstance(text, str) and text.startswith("## Exercise 2")
    assert "## Exercise 3" not in text and "## Exercise 1" not in text
    assert text.strip() in capsys.readouterr().out


@pytest.mark.parametrize("notebook", [0, 9, "07", "06_extra", "data_01", True, 2.0, None])
def test_unknown_notebook_is_one_config_error_listing_what_exists(notebook):
    with pytest.raises(ConfigError) as info:
        exercises.solution(notebook, 1)
    assert "01_data" in str(info.value) and "05_ablations" in str(info.value)


@pytest.mark.parametrize("exercise", [0, 6, 99, True, "1"])
def test_unknown_exercise_is_one_config_error_saying_how_many(exercise):
    with pytest.raises(ConfigError) as info:
        exercises.solution("02", exercise)
    assert "1 to 5" in str(info.value)


def test_in_jupyter_it_renders_markdown_once(monkeypatch, capsys):
    shell = SimpleNamespace(kernel=object(), execution_count=7)
    shown: list[str] = []
    monkeypatch.setattr(exercises, "_kernel_shell", lambda: shell)
    monkeypatch.setattr(exercises, "_display_markdown", shown.append)
    text = exercises.solution(1, 2)
    assert shown == [text] and capsys.readouterr().out == ""
    text._ipython_display_()  # the cell's Out[7] echo: not a second copy
    assert len(shown) == 1
    shell.execution_count = 8  # shown again when evaluated in a later cell
    text._ipython_display_()
    assert len(shown) == 2


# -- hidden from the first read ----------------------------------------------------------------------------------


def _words(text: str) -> str:
    return " ".join(re.sub(r"[`*_]", "", text).split()).lower()


@pytest.mark.parametrize("stem", STEMS)
def test_solutions_are_not_in_the_notebooks(stem):
    notebook = _words(" ".join("".join(cell["source"]) for cell in notebook_cells(stem)))
    assert exercises.SECTION.search(json.dumps(notebook_cells(stem)).replace("\\n", "\n")) is None
    prose = CODE_BLOCK.sub(" ", exercises.solutions_markdown(stem))
    sentences = [s for s in re.split(r"(?<=[.:;!?])\s+", prose) if len(s.split()) >= 8]
    assert sentences
    leaked = [s for s in sentences if _words(s) in notebook]
    assert leaked == [], f"{stem}.ipynb shows solution text: {leaked[:2]}"


def test_solutions_ship_as_package_data():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "solutions/*.md" in data["scsam_lite"]
    folder = ROOT / "scsam_lite" / "solutions"
    assert sorted(p.stem for p in folder.glob("*.md")) == STEMS
    assert [p for p in folder.iterdir() if p.suffix != ".md"] == []  # nothing the glob would leave behind


EXERCISE_TAG = re.compile(r"^\[(easy|medium|hard) · (\d+) min · (CPU|GPU)\] ")


@pytest.mark.parametrize("stem", STEMS)
def test_every_exercise_says_difficulty_time_and_hardware(stem):
    items = exercises.notebook_exercises(ROOT / "notebooks" / f"{stem}.ipynb")
    for number, text in items.items():
        tag = EXERCISE_TAG.match(text)
        assert tag, f"{stem} exercise {number} starts without a tag like [easy · 10 min · CPU]: {text[:60]!r}"
        assert 1 <= int(tag.group(2)) <= 240


@pytest.mark.parametrize("stem", STEMS)
def test_objectives_summary_and_a_questionnaire_answered_in_the_solutions(stem):
    path = ROOT / "notebooks" / f"{stem}.ipynb"
    cells = json.loads(path.read_text())["cells"]
    assert "**After this notebook you can:**" in "".join(cells[0]["source"])
    assert any("".join(c["source"]).startswith("## Summary") for c in cells if c["cell_type"] == "markdown")
    questions = exercises.notebook_questions(path)
    assert len(questions) >= 3 and list(questions) == list(range(1, len(questions) + 1))
    answered = exercises.exercise_items(exercises.answers_text(stem))
    assert list(answered) == list(questions), f"{stem}: {len(questions)} questions, {len(answered)} answers"
    assert all(len(a) > 80 for a in answered.values())
    assert "Questionnaire answers" not in "".join(
        exercises.sections(exercises.solutions_markdown(stem)).values()
    )
