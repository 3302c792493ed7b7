"""Reading time of every chapter, from the words of its markdown cells, at 200 words a minute.

    python tools/reading_time.py                # writes src/reprodl/results/reading_time.json
    python tools/reading_time.py --print A.ipynb [B.ipynb ...]   # prints, writes nothing

What counts as a word: the text a reader reads in a chapter's markdown cells, including the
bodies of admonitions, exercises and solutions. Left out: code cells and outputs; code blocks in
markdown (fenced with a language, ``{code-block}``, ``{literalinclude}``, or indented by four
spaces after a blank line); display math; MyST syntax itself (directive fences and options,
comments, targets, HTML tags and comments, link targets, the role names and targets of
``{term}`text <target>```); and the body of a ``For maintainers`` dropdown, which is not for
the reader. An inline code span or inline formula counts as one word. A word is a run of
letters or digits, joined by ``'``, ``.`` or ``-`` (``x86-64``, ``don't`` and ``0.5`` are one
word each).

The main path is what a reader reads without opening anything: the same words less the bodies
of dropdowns (``{dropdown}`` and admonitions of class ``dropdown``), exercises and solutions.
Maintainer-level and deep-dive detail goes into dropdowns, so that each chapter's main path stays
at most 3,000 words (``tests/test_reading_time.py``); the reading time still counts everything a
reader may open.

The record maps each chapter's file name to its ``words``, ``minutes`` (``words / 200``,
rounded up; the rate is not stored as a number, so that it backs no number of the chapters'
prose, which names this record) and ``main_words``; each chapter states its minutes under "What
you will learn", and ``tests/test_reading_time.py`` recomputes all three, so that none can drift
from the text.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
RECORD = ROOT / "src" / "reprodl" / "results" / "reading_time.json"
WORDS_PER_MINUTE = 200

#: Directives whose body is code or math: not read as prose.
CODE_DIRECTIVES = {"{code-block}", "{code}", "{code-cell}", "{literalinclude}", "{math}"}
CODE_DIRECTIVES |= {"{eval-rst}", "{raw}", "{mermaid}", "{graphviz}"}
#: Directives whose body a reader opens or works through on purpose: off the main path.
ASIDE_DIRECTIVES = {"{dropdown}", "{exercise}", "{solution}", "{toggle}"}

_FENCE = re.compile(r"(`{3,}|~{3,}|:{3,})\s*(\S*)\s*(.*)")
_ROLE = re.compile(r"\{[\w:.+-]+\}`([^`]*)`")
_CODE = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_MATH = re.compile(r"\$\$.+?\$\$|(?<![\\\w$])\$(?=\S)[^$]+?(?<=\S)\$(?!\w)", re.DOTALL)
_LINK = re.compile(r"!?\[([^\]]*)\]\((?:[^()\s]|\([^()\s]*\))*\)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][^<>]*>|https?://\S+")
_WORD = re.compile(r"[^\W_](?:[\w'’.-]*[^\W_])?")
_LIST_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s")


def _prose(markdown: str) -> list[tuple[str, bool]]:
    """The lines of ``markdown`` a reader reads as text (see the module's docstring), each with
    whether it is on the main path (outside every dropdown, exercise and solution)."""
    kept: list[tuple[str, bool]] = []
    # (fence character, length, body is skipped, body is off the main path)
    fences: list[tuple[str, int, bool, bool]] = []
    in_options = in_math = in_indented = False
    lines = markdown.split("\n")
    for number, line in enumerate(lines):
        stripped = line.strip()
        aside = bool(fences) and fences[-1][3]
        fence = _FENCE.match(stripped)
        closing = fence and not fence[2] and fences and fence[1][0] == fences[-1][0]
        if closing and len(fence[1]) >= fences[-1][1]:  # closes the innermost block
            fences.pop()
            in_options = False
            continue
        if fences and fences[-1][2]:
            continue
        if fence and (fence[2] or fence[1][0] != ":"):
            info, title = fence[2], fence[3]
            code = bool(info) and not info.startswith("{") or info in CODE_DIRECTIVES
            skipped = code or (info == "{dropdown}" and title.startswith("For maintainers"))
            skipped = skipped or not info and fence[1][0] != ":"
            fences.append((fence[1][0], len(fence[1]), skipped, aside or info in ASIDE_DIRECTIVES))
            in_options = info.startswith("{")
            if not skipped and info in ("{dropdown}", "{admonition}"):
                kept.append((title, not aside))  # a dropdown's or admonition's title is read
            continue
        if in_options and re.match(r":[\w-]+:", stripped):
            if re.fullmatch(r":class:.*\bdropdown\b.*", stripped):  # a collapsed admonition
                fences[-1] = (*fences[-1][:3], True)
            continue
        in_options = False
        previous_blank = number == 0 or not lines[number - 1].strip()
        indented = re.match(r" {4,}\S", line) is not None and not _LIST_ITEM.match(line)
        in_indented = (in_indented and (indented or not stripped)) or (indented and previous_blank)
        if in_indented:
            continue
        if in_math:
            in_math = "$$" not in stripped
            continue
        if stripped.startswith("$$"):
            in_math = not (len(stripped) > 2 and stripped.endswith("$$"))
            continue
        if stripped.startswith("%") or re.fullmatch(r"\([\w:.-]+\)=", stripped):
            continue
        kept.append((line, not aside))
    return kept


def _prose_lines(markdown: str) -> list[str]:
    """The lines of ``markdown`` a reader reads as text (see the module's docstring)."""
    return [line for line, _ in _prose(markdown)]


def _role_text(match: re.Match[str]) -> str:
    """What a role shows: the title of ``text <target>``, else its content."""
    content = match[1]
    titled = re.fullmatch(r"(.*?)\s*<[^<>]+>", content, re.DOTALL)
    return titled[1] if titled and titled[1] else content


def _count(text: str) -> int:
    """The words of prose lines joined into ``text``."""
    text = _COMMENT.sub(" ", text)
    text = _ROLE.sub(_role_text, text)
    text = _CODE.sub(" code ", text)
    text = _LINK.sub(lambda m: m[1], text)
    text = _MATH.sub(" formula ", text)
    text = _TAG.sub(" ", text)
    return len(_WORD.findall(text))


def count_words(markdown: str) -> int:
    """The words a reader reads in one markdown cell."""
    return _count("\n".join(_prose_lines(markdown)))


def count_main_words(markdown: str) -> int:
    """The words of one markdown cell's main path: its prose outside dropdowns (``{dropdown}``
    and admonitions of class ``dropdown``), exercises and solutions. A dropdown's title, which
    the reader sees without opening it, is on the main path."""
    return _count("\n".join(line for line, main in _prose(markdown) if main))


def notebook_words(notebook: dict, main_only: bool = False) -> int:
    """The words of a notebook's markdown cells (with ``main_only``, of their main path)."""
    count = count_main_words if main_only else count_words
    return sum(
        count("".join(cell["source"]))
        for cell in notebook["cells"]
        if cell["cell_type"] == "markdown"
    )


def minutes(words: int) -> int:
    """Reading minutes at :data:`WORDS_PER_MINUTE`, rounded up."""
    return math.ceil(words / WORDS_PER_MINUTE)


def measure(paths: list[Path]) -> dict[str, dict[str, int]]:
    """``{file name: {"words": ..., "minutes": ..., "main_words": ...}}`` for the notebooks
    ``paths``."""
    result = {}
    for path in paths:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        words = notebook_words(notebook)
        main = notebook_words(notebook, main_only=True)
        result[path.name] = {"words": words, "minutes": minutes(words), "main_words": main}
    return result


def record() -> dict:
    """The record of every chapter, as :data:`RECORD` stores it."""
    return {  # the rate in words, not digits: the chapters name this record, and its numbers
        # back the numbers of their prose (tests/test_prose_numbers.py)
        "counted": "the words of each chapter's markdown cells (tools/reading_time.py); "
        "minutes: words at two hundred a minute, rounded up; main_words: the words outside "
        "dropdowns, exercises and solutions",
        "chapters": measure(sorted(CHAPTERS.glob("*.ipynb"))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", nargs="+", type=Path, metavar="NOTEBOOK", dest="notebooks")
    args = parser.parse_args(argv)
    if args.notebooks:
        for name, counts in measure(args.notebooks).items():
            print(
                f"{name}: {counts['words']} words, {counts['minutes']} min, "
                f"{counts['main_words']} on the main path"
            )
        return 0
    RECORD.write_text(json.dumps(record(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {RECORD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
