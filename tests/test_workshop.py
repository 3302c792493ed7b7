"""The workshop's material cannot drift from the book: its timetables, exercise notebooks,
slides and participant pins are made by tools, and these tests check what the tools make.

- ``tools/workshop_timetable.py``: the tables in ``chapters/workshop.md`` equal what the tool
  makes from the committed reading-time and suite-duration records, and name real exercises.
- ``tools/make_exercises.py``: a participant's notebook has every exercise of its chapter and no
  solution, its code cells are the chapter's, and the chapter file is not modified.
- ``tools/make_slides.py``: only the cells with the tag become slides (a synthetic notebook).
- ``tools/chapter_requirements.py``: ``requirements-chapters.txt`` is what the tool derives, and
  each of its pins is the pin of ``requirements.txt``.

JSON, markdown and nbconvert only, no TensorFlow: a few seconds in all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
EXERCISE = re.compile(r"^\s*(`{3,}|:{3,})\{exercise\}", re.MULTILINE)
SOLUTION = re.compile(r"^\s*(`{3,}|:{3,})\{solution\}", re.MULTILINE)


def _tool(name: str) -> ModuleType:
    """``tools/NAME.py`` as a module (registered: its dataclasses need ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(f"_tools_{name}", ROOT / "tools" / f"{name}.py")
    assert spec and spec.loader
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


timetable = _tool("workshop_timetable")
make_exercises = _tool("make_exercises")
make_slides = _tool("make_slides")
chapter_requirements = _tool("chapter_requirements")


@pytest.fixture(scope="session")
def _tensorflow_threads_pinned() -> None:
    """Overrides the root conftest's autouse fixture of this name: no TensorFlow needed here."""


def _markdown(notebook: dict) -> str:
    cells = notebook["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --- Timetables ---------------------------------------------------------------------------------


def test_the_timetables_on_the_page_are_the_tools_output():
    page = timetable.PAGE.read_text(encoding="utf-8")
    assert timetable.render(page) == page, (
        "the timetables in chapters/workshop.md are stale: run `python tools/workshop_timetable.py`"
    )


@pytest.mark.parametrize("plan", list(timetable.PLANS))
def test_a_timetable_adds_up_and_names_real_exercises(plan: str):
    rows = timetable.blocks(plan)
    read, run = timetable.measured()
    chapters = [e for e in timetable.PLANS[plan] if isinstance(e, str)]
    assert len(chapters) == len(set(chapters)), "a chapter twice"
    for stem in chapters:
        row = next(r for r in rows if r.what == f"{{doc}}`{stem}`")
        assert row.minutes == read[stem] + run[stem] + timetable.OPEN + timetable.EXERCISE
        label = timetable.EXERCISES[stem]
        assert label in make_exercises.labels(_load(ROOT / "chapters" / f"{stem}.ipynb"))
    total = timetable.table(plan).splitlines()[-1]
    assert total.startswith(f"Total: {timetable._clock(sum(r.minutes for r in rows))} ")


def test_every_chapter_has_a_measured_reading_and_run_time():
    read, run = timetable.measured()
    assert {p.stem for p in CHAPTERS} <= read.keys() & run.keys() & timetable.GOALS.keys()


def test_a_chapters_prerequisites_come_before_it_in_each_plan():
    for plan, entries in timetable.PLANS.items():
        seen: set[str] = set()
        for stem in (e for e in entries if isinstance(e, str)):
            first = "".join(_load(ROOT / "chapters" / f"{stem}.ipynb")["cells"][0]["source"])
            line = re.search(r"\*\*Prerequisites:\*\*(.*)", first)
            needed = set(re.findall(r"\((\d\d_\w+)\.ipynb\)", line[1] if line else ""))
            assert needed <= seen, (plan, stem, needed - seen)
            seen.add(stem)


# --- Exercise notebooks -------------------------------------------------------------------------


def test_an_exercise_without_its_solution_in_plain_markdown():
    markdown = (
        "## Exercises\n\n````{exercise} A title\n:label: ch9-ex1\n\nDo this:\n\n```python\n"
        "x = 1\n```\n````\n\n````{solution} ch9-ex1\n:class: dropdown\n\n```python\n"
        "answer = 42\n```\n\nThe secret.\n````\n\nAfter."
    )
    parts = make_exercises.parts(markdown)
    assert [kind for kind, _, _ in parts] == ["text", "exercise", "text"]
    assert parts[1][1] == "ch9-ex1"
    assert parts[1][2] == "A title\n\nDo this:\n\n```python\nx = 1\n```"
    notebook = {"cells": [{"cell_type": "markdown", "id": "a", "metadata": {}, "source": markdown}]}
    cells = make_exercises.exercises(notebook, "x.ipynb", {"ch9-ex1": 7})["cells"]
    text = json.dumps(cells)
    assert "### Exercise 7 (A title)" in text and "After." in text
    assert "secret" not in text and "answer = 42" not in text
    assert [c["cell_type"] for c in cells] == ["markdown"] * 3 + ["code", "markdown"]


def test_exercises_are_numbered_through_the_book_in_toc_order():
    number = make_exercises.numbers()
    counts = [len(make_exercises.labels(_load(p))) for p in CHAPTERS]
    assert sorted(number.values()) == list(range(1, sum(counts) + 1))
    assert number["ch1-ex1"] == 1
    assert number["ch7-ex1"] == sum(counts[:6]) + 1


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_an_exercise_notebook_has_every_exercise_and_no_solution(chapter: Path, tmp_path: Path):
    before = hashlib.sha256(chapter.read_bytes()).hexdigest()
    assert make_exercises.main(["--out", str(tmp_path), str(chapter)]) == 0
    assert hashlib.sha256(chapter.read_bytes()).hexdigest() == before, "the chapter was modified"
    original = _load(chapter)
    made = nbformat.read(tmp_path / chapter.name, as_version=4)
    nbformat.validate(made)
    text = "\n".join(c.source for c in made.cells if c.cell_type == "markdown")
    wanted = len(EXERCISE.findall(_markdown(original)))
    assert wanted and len(re.findall(r"^### Exercise \d+", text, re.MULTILINE)) == wanted
    labels = make_exercises.labels(original)
    assert len(labels) == wanted, "an exercise the parser lost (inside a solution?)"
    assert all(f"<!-- {label} -->" in text for label in labels)
    assert not SOLUTION.search(text) and "{exercise}" not in text
    answers = [c for c in made.cells if "answer" in c.metadata.get("tags", [])]
    assert len(answers) == wanted and not any(c.source for c in answers)
    code = [(c.source, c.outputs) for c in made.cells if c.cell_type == "code" and c not in answers]
    kept = nbformat.read(chapter, as_version=4).cells
    assert code == [(c.source, c.outputs) for c in kept if c.cell_type == "code"]


def test_clear_outputs_drops_every_stored_output(tmp_path: Path):
    chapter = CHAPTERS[0]
    make_exercises.main(["--out", str(tmp_path), "--clear-outputs", str(chapter)])
    made = _load(tmp_path / chapter.name)
    assert all(not c["outputs"] for c in made["cells"] if c["cell_type"] == "code")


# --- Slides -------------------------------------------------------------------------------------


def _synthetic() -> dict:
    def cell(kind: str, source: str, tags: list[str], output: str | None = None) -> dict:
        made = {"cell_type": kind, "id": f"c{abs(hash(source)) % 10**8}", "source": source}
        made["metadata"] = {"tags": tags}
        if kind == "code":
            stream = {"output_type": "stream", "name": "stdout", "text": output or ""}
            made |= {"execution_count": 1, "outputs": [stream] if output else []}
        return made

    cells = [
        cell("markdown", "# Key point of the chapter", ["slide"]),
        cell("markdown", "A paragraph that stays in the book only.", []),
        cell("code", "print('the key output')", ["slide", "hide-input"], "KEY-OUTPUT-42\n"),
        cell("code", "setup_code_marker = print('setup')", [], "SETUP-OUTPUT\n"),
        cell("markdown", "## Talk only", ["talk"]),
    ]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_only_tagged_cells_become_slides(tmp_path: Path):
    notebook = tmp_path / "07_synthetic.ipynb"
    notebook.write_text(json.dumps(_synthetic()), encoding="utf-8")
    before = notebook.read_bytes()
    assert make_slides.main(["--out", str(tmp_path / "slides"), str(notebook)]) == 0
    assert notebook.read_bytes() == before
    html = (tmp_path / "slides" / "07_synthetic.slides.html").read_text(encoding="utf-8")
    assert "reveal" in html.lower() and "Key point of the chapter" in html
    assert "KEY-OUTPUT-42" in html and "the key output" not in html  # output only
    for skipped in ("stays in the book only", "SETUP-OUTPUT", "Talk only"):
        assert skipped not in html


def test_inputs_show_the_code_of_slides_without_hide_input(tmp_path: Path):
    notebook = _synthetic()
    notebook["cells"][3]["metadata"]["tags"] = ["slide"]  # print('setup'), no hide-input
    html = make_slides.to_html(make_slides.slide_notebook(notebook), inputs=True)
    assert "setup_code_marker" in html and "SETUP-OUTPUT" in html
    assert "the key output" not in html and "KEY-OUTPUT-42" in html  # hide-input: output only
    assert "setup_code_marker" not in make_slides.to_html(make_slides.slide_notebook(notebook))


def test_a_markdown_slide_is_its_headings_and_first_paragraph():
    markdown = "# Title\n\n## Point\n\nThe {term}`key <Glossary entry>` point.\n\nMore text.\n"
    assert make_slides.lead(markdown) == "# Title\n\n## Point\n\nThe key point."
    assert (
        make_slides.lead("Text before.\n\n## Heading\n\nPoint.\n\nMore.") == "## Heading\n\nPoint."
    )
    fenced = "```{note}\nA note.\n\nIts second paragraph.\n```\n\nAfter."
    assert make_slides.lead(fenced) == fenced.split("\n\nAfter.")[0]
    notebook = _synthetic()
    notebook["cells"][0]["source"] = markdown
    assert "More text" not in json.dumps(make_slides.slide_notebook(notebook)["cells"][0])
    assert "More text" in json.dumps(make_slides.slide_notebook(notebook, whole=True)["cells"][0])


def test_the_slide_tag_can_be_named(tmp_path: Path):
    notebook = tmp_path / "synthetic.ipynb"
    notebook.write_text(json.dumps(_synthetic()), encoding="utf-8")
    make_slides.main(["--tag", "talk", "--out", str(tmp_path), str(notebook)])
    html = (tmp_path / "synthetic.slides.html").read_text(encoding="utf-8")
    assert "Talk only" in html and "Key point of the chapter" not in html
    assert make_slides.tagged(_synthetic(), "none") == []
    assert make_slides.main(["--tag", "none", "--out", str(tmp_path / "x"), str(notebook)]) == 0
    assert not list((tmp_path / "x").iterdir()), "no tagged cell, no slides"


# --- Participant pins ---------------------------------------------------------------------------


def test_the_participants_pins_are_the_books_pins():
    everything = chapter_requirements.pins(ROOT / "requirements.txt")
    participants = chapter_requirements.pins(chapter_requirements.OUT)
    assert participants and all(everything.get(name) == pin for name, pin in participants.items())
    for tool in ("jupyter-book", "sphinx", "pytest", "nbval", "ruff", "playwright", "coverage"):
        assert tool not in participants, f"{tool} is a build or test tool"
    for needed in ("tensorflow", "keras", "numpy", "ipykernel", "matplotlib", "scipy"):
        assert needed in participants, needed


def test_the_participants_pins_are_the_closure_of_the_packages_dependencies():
    assert chapter_requirements.OUT.read_text(encoding="utf-8") == chapter_requirements.derive(), (
        "requirements-chapters.txt is stale: run `python tools/chapter_requirements.py`"
    )
