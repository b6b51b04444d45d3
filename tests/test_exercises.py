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


@pytest.mark.parametrize("exercise", [0, 7, 99, True, "1"])
def test_unknown_exercise_is_one_config_error_saying_how_many(exercise):
    with pytest.raises(ConfigError) as info:
        exercises.solution("02", exercise)
    assert "1 to 6" in str(info.value)


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


#: an exercise's tag: its difficulty, each profile it works on with about how long it takes there (``lab: no (why)``
#: where it does not), and the hardware: ``[easy · quick 5 min · lab 10 min · CPU]``, ``[hard · classroom 60 min · GPU]``
EXERCISE_TAG = re.compile(r"^\[(easy|medium|hard)((?: · [^·\]]+)+) · (CPU|GPU)\] ")
PROFILE_COST = re.compile(r"(quick|lab|classroom|paper)(?: (\d+) min|: no \(([^()]+)\))")
GPU_PROFILES = {"classroom", "paper"}


def tag_problems(text: str) -> list[str]:
    """What is wrong with the tag an exercise starts with (empty when nothing)."""
    tag = EXERCISE_TAG.match(text)
    if not tag:
        return ["no tag like [easy · quick 5 min · lab 10 min · CPU]"]
    problems, minutes = [], {}
    parts = tag.group(2).split(" · ")[1:]
    for part in parts:
        cost = PROFILE_COST.fullmatch(part)
        if not cost:
            problems.append(f"{part!r} is neither 'PROFILE N min' nor 'PROFILE: no (why)'")
        elif cost.group(1) in minutes:
            problems.append(f"{cost.group(1)} named twice")
        else:
            minutes[cost.group(1)] = int(cost.group(2)) if cost.group(2) else None
    runs_on = {p for p, m in minutes.items() if m is not None}
    if not problems and not runs_on:
        problems.append("names no profile it works on")
    problems += [f"{p}: {m} min" for p, m in minutes.items() if m is not None and not 1 <= m <= 240]
    if tag.group(3) == "GPU" and runs_on - GPU_PROFILES:
        problems.append(f"a GPU exercise that works on {sorted(runs_on - GPU_PROFILES)}, CPU profiles")
    if tag.group(3) == "CPU" and runs_on and runs_on <= GPU_PROFILES:
        problems.append("a CPU exercise that works on GPU profiles only")
    return problems


def tag_minutes(text: str) -> dict[str, int | None]:
    """The profiles an exercise's tag names: minutes, or None for ``PROFILE: no (why)``."""
    parts = EXERCISE_TAG.match(text).group(2).split(" · ")[1:]
    found = [PROFILE_COST.fullmatch(part) for part in parts]
    return {m.group(1): int(m.group(2)) if m.group(2) else None for m in found}


@pytest.mark.parametrize("stem", STEMS)
def test_every_exercise_says_difficulty_profiles_cost_and_hardware(stem):
    items = exercises.notebook_exercises(ROOT / "notebooks" / f"{stem}.ipynb")
    for number, text in items.items():
        assert tag_problems(text) == [], f"{stem} exercise {number}: {text[:90]!r}"
    cells = " ".join("".join(c["source"]) for c in notebook_cells(stem) if c["cell_type"] == "markdown")
    assert "the profiles it works on with about how long it takes on each" in " ".join(cells.split())


def test_tag_checker_rejects_tags_without_profiles_or_reasons():
    assert tag_problems("[easy · quick 5 min · lab 10 min · CPU] Do it.") == []
    assert (
        tag_problems("[easy · quick 5 min · lab: no (LoRA needs the live encoder; lab stores it) · CPU] x")
        == []
    )
    assert tag_problems("[hard · classroom 60 min · GPU] Run it.") == []
    for bad in (
        "[easy · 5 min · CPU] the old tag, no profile",
        "[easy · lab: no (why) · CPU] works nowhere",
        "[easy · lab: no · CPU] no reason",
        "[easy · quick 5 min · quick 6 min · CPU] a profile twice",
        "[easy · quick 500 min · CPU] too long",
        "[hard · quick 60 min · GPU] a GPU exercise on a CPU profile",
        "[easy · classroom 10 min · CPU] a CPU exercise on a GPU profile only",
        "[easy · laptop 5 min · CPU] an unknown profile",
        "no tag at all",
    ):
        assert tag_problems(bad), bad


#: the method each notebook's exercises change (the config its config cell builds)
EXERCISE_METHOD = {"03": "peft-sam", "04": "sc-sam", "05": "sc-sam"}
GRID_NAMED = re.compile(r"SCSAM_GRIDS=([\w-]+)|`([\w-]+)` grid")


def lab_config_errors(stem: str, number: int, text: str) -> list[str]:
    """The ConfigErrors an exercise's settings raise on ``lab``: each ``overrides[...]``/``--set`` of its solution
    applied alone to the notebook's method, and each sweep grid it names planned on ``lab``."""
    from scsam_lite import sweeps
    from scsam_lite.config import build_config

    section = exercises.sections(exercises.solutions_markdown(stem))[number]
    settings = []
    for language, code in code_blocks(section):
        settings += [(k, v) for k, v in SET_FLAG.findall(code)]
        if language != "python":
            continue
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if ast.unparse(target).startswith("overrides[") and isinstance(
                        target.slice, ast.Constant
                    ):
                        settings.append((target.slice.value, node.value.value))
    errors = []
    method = EXERCISE_METHOD.get(stem[:2], "unet")
    for key, value in settings:
        try:
            build_config("lab", {key: value}, method=method)
        except ConfigError as err:
            errors.append(f"{key}={value!r}: {err.message}")
    grids = {a or b for a, b in GRID_NAMED.findall(text)} & set(sweeps.GRIDS.names())
    for grid in sorted(grids):
        try:
            sweeps.plan(grid, "lab", seeds=(0,))
        except ConfigError as err:
            errors.append(f"the {grid} grid: {err.message}")
    return errors


def test_an_exercise_that_cannot_run_on_lab_says_so():
    """Settings that raise a ConfigError on ``lab`` (LoRA or adapters in every block need the live encoder, lab
    stores its embeddings) are tagged ``lab: no (why)``, not left as a trap; a lab time is only given where the config builds."""
    failing = set()
    for stem in STEMS:
        items = exercises.notebook_exercises(ROOT / "notebooks" / f"{stem}.ipynb")
        for number, text in items.items():
            errors = lab_config_errors(stem, number, text)
            if not errors:
                continue
            failing.add((stem[:2], number))
            named = tag_minutes(text)
            gpu_only = EXERCISE_TAG.match(text).group(3) == "GPU" and "lab" not in named
            assert gpu_only or ("lab" in named and named["lab"] is None), (
                f"{stem} exercise {number} raises on lab ({errors[0]}): tag it 'lab: no (why)', not {named}"
            )
    assert {("03", 1), ("05", 5)} <= failing, f"the check found no lab trap at all: {sorted(failing)}"


# -- cells that need weights a reference run lacks, and predict-first prompts answered --------------------------


def test_a_cell_needing_weights_a_reference_run_lacks_says_so(tmp_path, capsys):
    from scsam_lite.reference import MARKER, REFERENCE_ROOT, weights_loaded
    from scsam_lite.runs import write_json

    record = (REFERENCE_ROOT / "lab" / "mean-teacher-s1" / "config.json").read_text()
    for name in ("mean-teacher-s0", "mean-teacher-s1", "unet-s1"):
        (tmp_path / "refs" / "lab" / name).mkdir(parents=True)
        (tmp_path / "refs" / "lab" / name / "config.json").write_text(record)
    (tmp_path / "refs" / "lab" / "mean-teacher-s0" / "weights.pt").write_bytes(b"")
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / MARKER, {"reference": "lab/mean-teacher-s1"})

    assert (
        weights_loaded(SimpleNamespace(run_dir=run, method=None), "the explorer", root=tmp_path / "refs")
        is False
    )
    out = capsys.readouterr().out.strip()
    assert out.startswith("the explorer: skipped") and len(out.splitlines()) == 1
    assert "lab/mean-teacher-s1 keeps its records, not its weights" in out
    assert "SEED = 0 loads one that keeps them" in out and "RETRAIN=True" in out and "300 steps in" in out

    write_json(run / MARKER, {"reference": "lab/unet-s1"})  # no seed of it keeps weights
    assert weights_loaded(SimpleNamespace(run_dir=run, method=None), root=tmp_path / "refs") is False
    assert "SEED =" not in capsys.readouterr().out
    assert weights_loaded(SimpleNamespace(run_dir=tmp_path / "elsewhere", method=None)) is False
    assert "skipped" in capsys.readouterr().out
    assert weights_loaded(SimpleNamespace(run_dir=run, method=object())) is True
    assert capsys.readouterr().out == ""


def _trained_names(tree: ast.AST) -> set[str]:
    """Names a notebook binds to ``train_or_load(...)``: results whose ``.method`` is None for a records-only run."""
    return {
        ast.unparse(t)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func).endswith("train_or_load")
        for t in node.targets
    }


@pytest.mark.parametrize("stem", STEMS)
def test_cells_reading_a_loaded_runs_model_check_for_weights_first(stem):
    code = notebook_code(stem)
    loaded = _trained_names(ast.parse(code))
    for cell in notebook_cells(stem):
        source = "".join(cell["source"])
        if cell["cell_type"] != "code" or "train_or_load" in source:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "method"
                and ast.unparse(node.value) in loaded
            ):
                name = ast.unparse(node.value)
                assert f"weights_loaded({name}" in source, (
                    f"{stem}: a cell reads {name}.method without weights_loaded({name}, ...): on lab a reference "
                    "run kept as records has no model"
                )


PREDICT_FIRST = "**Predict first:**"


@pytest.mark.parametrize("stem", STEMS)
def test_every_predict_first_prompt_is_answered_a_few_cells_later(stem):
    """A code cell starting ``# the outcome`` follows each prompt within a few cells and computes the answer."""
    cells = notebook_cells(stem)
    prompts = [
        i
        for i, c in enumerate(cells)
        if c["cell_type"] == "markdown" and PREDICT_FIRST in "".join(c["source"])
    ]
    for i in prompts:
        later = ["".join(c["source"]) for c in cells[i + 1 : i + 17] if c["cell_type"] == "code"]
        answers = [s for s in later if s.startswith("# the outcome")]
        assert answers, f"{stem}: the prompt in cell {i} has no '# the outcome' cell within 16 cells"
        assert "print(" in answers[0], f"{stem}: the outcome of cell {i}'s prompt is not printed from the run"


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


def test_the_outcome_helpers_read_the_runs_and_say_what_is_missing(tmp_path):
    import pandas as pd

    from scsam_lite import sweeps
    from scsam_lite.runs import RunDir

    rows = [
        {"grid": "g", "variant": v, "seed": s, "model": "sam", "dice": base + 0.01 * s}
        for v, base in (("a", 0.5), ("b", 0.4))
        for s in (0, 1, 2)
    ]
    three = pd.DataFrame(rows)
    assert sweeps.outcome(three).startswith("g, sam dice: best 'a' (0.510), ahead of 'b' by 0.100")
    assert "std over 3 seeds): the lead is larger" in sweeps.outcome(three)
    assert "one seed per variant" in sweeps.outcome(three[three["seed"] == 0])
    assert "nothing to rank" in sweeps.outcome(three[three["variant"] == "a"])
    assert "best 'b'" in sweeps.outcome(three.assign(hd95=three["dice"]), metric="hd95")  # lower is better

    where = dict(preset="quick", out=tmp_path, splits=True)
    assert "SCSAM_GRIDS=rampup" in sweeps.first_validations("rampup", ["off", "T = 1/2"], **where)
    off = sweeps.plan("rampup", variants=["off"], **where)[0]
    off.run_dir.mkdir(parents=True)
    RunDir(off.run_dir).log({"step": 50, "val_dice": {"sam": 0.25, "unet": 0.3}})
    assert sweeps.first_validations("rampup", ["off", "T = 1/2"], **where) == (
        "off, seed 0: sam's validation Dice 0.250 at step 50"
    )
