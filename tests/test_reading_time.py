"""Reading times that cannot drift: each chapter's "Reading time: about N min" line, the record
``reprodl/results/reading_time.json`` and the chapter's words agree.

``tools/reading_time.py`` counts the words of a chapter's markdown cells (200 a minute, rounded
up) and writes the record; every chapter states its minutes under "What you will learn". This
test recomputes the count, so that an edit of a chapter's text without a rerun of the tool, or a
hand-typed minute, fails. It reads JSON and markdown only and takes well under a second.

It also holds each chapter's main path, the prose a reader reads without opening a dropdown, an
exercise or a solution, to at most :data:`MAIN_PATH_WORDS` words: detail for maintainers and deep
dives go into dropdowns.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from reprodl import results

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))
LINE = re.compile(r"\*\*Reading time:\*\* about (\d+) min\b")
MAIN_PATH_WORDS = 3000  # issue 22: "main-path text of at most about 3,000 words"


def _tool():
    spec = importlib.util.spec_from_file_location("reading_time", ROOT / "tools/reading_time.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reading_time = _tool()


@pytest.fixture(scope="session")
def _tensorflow_threads_pinned() -> None:
    """Overrides the root conftest's autouse fixture of this name: no TensorFlow needed here."""


def test_the_record_is_the_count_of_the_chapters_as_they_are():
    assert results.load("reading_time.json") == reading_time.record(), (
        "the chapters' text changed: run `python tools/reading_time.py`, then put the new minutes "
        "into the chapters' 'Reading time' lines"
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_chapter_states_its_recorded_minutes(chapter: Path):
    notebook = json.loads(chapter.read_text(encoding="utf-8"))
    texts = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]
    stated = [int(m[1]) for text in texts for m in LINE.finditer(text)]
    assert len(stated) == 1 and LINE.search(texts[0]), (
        "one 'Reading time: about N min' line, in the first cell"
    )
    assert "reading_time.json" in texts[0], "the line names its record (tests/test_prose_numbers)"
    recorded = results.load("reading_time.json")["chapters"][chapter.name]
    assert stated[0] == recorded["minutes"] == reading_time.minutes(recorded["words"])


@pytest.mark.parametrize(
    ("markdown", "words"),
    [
        ("Two words.", 2),
        ("A `code span`, a formula $x^2 + 1$ and x86-64: six.", 8),
        ("A {term}`shown text <Target term>` and a [link text](https://a.org/x).", 7),
        ("Text.\n\n```python\nnot = counted\n```\n\n```{note}\nCounted too.\n```", 3),
        ("```{solution} ex\n:class: dropdown\n\nAn answer.\n```", 2),
        (":::{dropdown} For maintainers\n- `tests/x.py` checks it.\n:::\n\nRead.", 1),
        ("Text:\n\n    indented = code\n\n% a comment\n<!-- a note -->\n$$\ny = 1\n$$", 1),
    ],
)
def test_what_counts_as_a_word(markdown: str, words: int):
    assert reading_time.count_words(markdown) == words


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_main_path_is_at_most_3000_words(chapter: Path):
    notebook = json.loads(chapter.read_text(encoding="utf-8"))
    main = reading_time.notebook_words(notebook, main_only=True)
    assert main <= MAIN_PATH_WORDS, (
        f"{main} words outside dropdowns, exercises and solutions: move maintainer-level or "
        "deep-dive detail into a ':::{dropdown} Deep dive: ...' (the main path must still read "
        "as a whole)"
    )


@pytest.mark.parametrize(
    ("markdown", "words", "main"),
    [
        ("Two words.", 2, 2),
        ("Read.\n\n```{note}\nA note is seen.\n```", 5, 5),
        ("Read.\n\n:::{dropdown} Deep dive: lanes\nOpened on purpose only.\n:::\n\nRead.", 9, 5),
        ("Read.\n\n```{dropdown} A title\nBody text.\n```", 5, 3),
        ("```{exercise}\n:label: ch1-ex1\n\nDo it now.\n```\n\nRead.", 4, 1),
        (
            "````{solution} ch1-ex1\n:class: dropdown\n\nAn answer.\n\n```python\nx = 1\n```\n````",
            2,
            0,
        ),
        ("```{admonition} Why\n:class: tip, dropdown\n\nHidden text.\n```\n\nRead.", 4, 2),
        ("```{admonition} Why\n:class: tip\n\nShown text.\n```", 3, 3),
        ("````{note}\nSeen.\n:::{dropdown} More\nInner body here.\n:::\nSeen.\n````", 6, 3),
        (":::{dropdown} Outer\n```{note}\nIn a dropdown.\n```\n:::\n\nRead.", 5, 2),
        (":::{dropdown} For maintainers\n- `tests/x.py` checks it.\n:::\n\nRead.", 1, 1),
    ],
)
def test_what_counts_on_the_main_path(markdown: str, words: int, main: int):
    """A dropdown's body, an exercise and a solution are off the main path; a dropdown's title,
    seen without opening it, and an admonition that is not collapsed are on it."""
    assert reading_time.count_words(markdown) == words
    assert reading_time.count_main_words(markdown) == main


def test_the_recipe_listing_emphasises_the_pins_and_seeds():
    """Chapter 11 highlights lines of ``examples/train_keras.py`` by number: each highlighted
    line must still be a pin, a seed or a GPU line when the script changes."""
    notebook = json.loads((ROOT / "chapters/11_your_own_training.ipynb").read_text("utf-8"))
    markdown = "\n".join(
        "".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"
    )
    script = (ROOT / "src/reprodl/examples/train_keras.py").read_text("utf-8").split("\n")
    listings = re.findall(r"```\{literalinclude\} \S+train_keras\.py\n((?::.*\n)+)```", markdown)
    assert len(listings) == 2
    marks = ("os.environ", "SEED", "seed", "Glorot", "determinism", "float_32", "jit", "shuffle")
    shown_all: list[str] = []
    for options in listings:
        option = dict(re.findall(r":([\w-]+): (.*)", options))
        if "pyobject" in option:
            first = script.index(f"def {option['pyobject']}() -> None:")
            last = next(i for i in range(first + 1, len(script)) if script[i][:1].strip())
        else:
            start, end = (option[k].strip('"') for k in ("start-at", "end-at"))
            first = next(i for i, line in enumerate(script) if start in line)
            last = next(i for i in range(first, len(script)) if end in script[i]) + 1
        lines = script[first:last]
        shown = [lines[int(n) - 1] for n in option["emphasize-lines"].split(",")]
        assert all(any(m in line for m in marks) for line in shown), shown
        shown_all += shown
    for needed in ("set_random_seed", "enable_op_determinism", "float_32", "jit_compile=False"):
        assert any(needed in line for line in shown_all), needed
