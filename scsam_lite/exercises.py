"""Solutions to the notebooks' exercises, kept out of the notebooks so that a student meets each question first.

Every notebook ``NN_name.ipynb`` ends with a numbered ``## Exercises`` list. Its solutions are the markdown file
``scsam_lite/solutions/NN_name.md``, one ``## Exercise N`` section per item. They ship inside the package, so they
are there after a plain ``pip install`` on Colab or Kaggle, and a notebook asks for one only when the student is
ready::

    from scsam_lite.exercises import solution
    solution("02", 1)   # the same: solution(2, 1), solution("02_unet_ssl", 1); solution(2) shows all of them

The tests check that each notebook's numbered exercises and its solution sections match one to one, and that the
code in the solutions uses names and config keys that exist.
"""

from __future__ import annotations

import json
import os
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: A solution section starts with this heading (an optional title may follow the number).
SECTION = re.compile(r"^## Exercise (\d+)\b.*$", re.M)
#: The heading of a notebook's exercise cell.
EXERCISES_HEADING = "## Exercises"

_ITEM = re.compile(r"^(\d+)\.\s+(.*)$")
_STEM = re.compile(r"^(\d\d)_\w+$")


class SolutionText(str):
    """The markdown of a solution: a plain ``str`` that Jupyter does not show a second time.

    :func:`solution` has already displayed it; when its call ends a cell, Jupyter would echo the returned string
    again as ``Out[n]``. Evaluated in a later cell, it shows itself as markdown.
    """

    shown_in: int | None = None

    def _ipython_display_(self) -> None:
        shell = _kernel_shell()
        if shell is not None and self.shown_in == getattr(shell, "execution_count", None):
            return
        _display_markdown(str(self))


def _kernel_shell() -> Any:
    """The running Jupyter kernel's shell (Colab and Kaggle included), or None in a script or terminal IPython."""
    ipython = sys.modules.get("IPython")  # never import IPython just to find out
    shell = ipython.get_ipython() if ipython is not None else None
    return shell if getattr(shell, "kernel", None) is not None else None


def _display_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def _folder():
    return resources.files(__package__) / "solutions"


def notebooks() -> list[str]:
    """The notebooks that have solutions, by file stem (``["01_data", "02_unet_ssl", ...]``)."""
    names = (entry.name for entry in _folder().iterdir() if entry.name.endswith(".md"))
    return sorted(name[: -len(".md")] for name in names if _STEM.match(name[: -len(".md")]))


def notebook_name(notebook: str | int) -> str:
    """The stem of a notebook from ``2``, ``"2"``, ``"02"``, ``"02_unet_ssl"``, ``"unet_ssl"`` or its file name."""
    known = notebooks()
    fix = f"use one of {', '.join(known)}, or its number (e.g. solution(2, 1))"
    if isinstance(notebook, bool) or not isinstance(notebook, (int, str, os.PathLike)):
        raise ConfigError(f"notebook {notebook!r} is neither a number nor a name", fix)
    if isinstance(notebook, int):
        text = str(notebook)
    else:
        text = Path(notebook).name.strip()
        for suffix in (".ipynb", ".md"):
            text = text.removesuffix(suffix)
    if text.isdigit():
        found = [name for name in known if int(name[:2]) == int(text)]
    else:
        low = text.lower()
        found = [name for name in known if low in (name.lower(), name[3:].lower())]
    if len(found) != 1:
        raise ConfigError(f"no notebook {notebook!r} has solutions", fix)
    return found[0]


def sections(markdown: str) -> dict[int, str]:
    """The ``## Exercise N`` sections of a solutions file, by number, each from its heading to the next one."""
    heads = list(SECTION.finditer(markdown))
    out: dict[int, str] = {}
    for head, nxt in zip(heads, [*heads[1:], None], strict=True):
        end = nxt.start() if nxt is not None else len(markdown)
        out[int(head.group(1))] = markdown[head.start() : end].strip() + "\n"
    return out


def solutions_markdown(notebook: str | int) -> str:
    """The whole solutions file of a notebook."""
    return (_folder() / f"{notebook_name(notebook)}.md").read_text(encoding="utf-8")


def exercise_count(notebook: str | int) -> int:
    """How many exercises of ``notebook`` have a solution."""
    return len(sections(solutions_markdown(notebook)))


def solution_text(notebook: str | int, exercise: int | None = None) -> str:
    """The markdown of one solution, or of all of a notebook's when ``exercise`` is None, without showing it."""
    name = notebook_name(notebook)
    text = solutions_markdown(name)
    if exercise is None:
        return text
    found = sections(text)
    if isinstance(exercise, bool) or not isinstance(exercise, int) or exercise not in found:
        raise ConfigError(
            f"notebook {name} has no exercise {exercise!r}",
            f"it has exercises 1 to {len(found)}: e.g. solution({name[:2]!r}, 1), or solution({name[:2]!r}) "
            "for all of them",
        )
    return found[exercise]


def solution(notebook: str | int, exercise: int | None = None) -> str:
    """Show the solution of ``exercise`` of ``notebook`` (all of its solutions when None) and return its markdown.

    In Jupyter (Colab, Kaggle) it is rendered as markdown, elsewhere printed. ``notebook`` is a number or a name:
    ``2``, ``"02"``, ``"02_unet_ssl"``. An unknown notebook or exercise raises one :class:`ConfigError` that lists
    what exists.
    """
    return _show(solution_text(notebook, exercise))


QUESTIONNAIRE_HEADING = "## Questionnaire"
ANSWERS_HEADING = "## Questionnaire answers"


def answers_text(notebook: str | int) -> str:
    """The questionnaire answers of a notebook's solutions file (the section before its first exercise)."""
    text = solutions_markdown(notebook_name(notebook))
    if ANSWERS_HEADING not in text:
        raise ConfigError(
            f"notebook {notebook_name(notebook)} has no questionnaire answers", "see its solutions file"
        )
    part = text.split(ANSWERS_HEADING, 1)[1]
    end = SECTION.search(part)
    return (ANSWERS_HEADING + part[: end.start() if end else len(part)]).strip() + "\n"


def answers(notebook: str | int) -> str:
    """Show the answers to a notebook's questionnaire (rendered in Jupyter, printed elsewhere) and return them."""
    return _show(answers_text(notebook))


def notebook_questions(path: str | os.PathLike) -> dict[int, str]:
    """The numbered questions of a notebook's ``## Questionnaire`` cell ({} if none)."""
    for cell in json.loads(Path(path).read_text(encoding="utf-8")).get("cells", []):
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "markdown" and source.lstrip().startswith(QUESTIONNAIRE_HEADING):
            return exercise_items(source)
    return {}


def _show(markdown: str) -> SolutionText:
    """Render ``markdown`` once in Jupyter (print it elsewhere) and return it."""
    text = SolutionText(markdown)
    shell = _kernel_shell()
    if shell is not None:
        _display_markdown(text)
        text.shown_in = getattr(shell, "execution_count", None)
    else:
        print(text)
    return text


def exercise_items(markdown: str) -> dict[int, str]:
    """The numbered items of an exercises cell (``1. ...`` at the start of a line, continued by indented lines).

    Text before the list (notebook 04 says how to run the exercises) and after it (a line on how to see the
    solutions) is not an item.
    """
    items: dict[int, list[str]] = {}
    current: int | None = None
    for line in markdown.splitlines():
        match = _ITEM.match(line)
        if match:
            current = int(match.group(1))
            items[current] = [match.group(2).strip()]
        elif current is not None and line.strip() and line[:1].isspace():
            items[current].append(line.strip())
        elif line.strip():
            current = None  # an unindented line ends the item
    return {number: " ".join(parts) for number, parts in items.items()}


def notebook_exercises(path: str | os.PathLike) -> dict[int, str]:
    """The numbered exercises of a notebook file: the items of its ``## Exercises`` markdown cell ({} if none)."""
    cells = json.loads(Path(path).read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "markdown" and source.lstrip().startswith(EXERCISES_HEADING):
            return exercise_items(source)
    return {}
