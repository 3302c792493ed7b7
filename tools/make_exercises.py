"""Exercise notebooks for participants: the chapters without the solutions.

    python tools/make_exercises.py chapters/*.ipynb                # into _build/exercises/
    python tools/make_exercises.py --out DIR --clear-outputs chapters/03_seeding.ipynb

Each chapter is read, never written. In its markdown cells every ``{solution}`` block is
dropped, and every ``{exercise}`` block becomes plain markdown (Jupyter and Colab do not render
MyST directives): a heading with the number the book's page shows ("Exercise 25", numbered
through the book in ``_toc.yml`` order as sphinx-exercise numbers them) and its label, then the
exercise's text, followed by an empty code cell tagged ``answer`` to work in. Everything else is
kept as it is, the stored outputs too (``--clear-outputs`` drops them): they are the book's
checked results that participants compare their own runs with, running a cell replaces its
output, and the longer chapters are shown rather than run in a workshop. A first cell says where
the notebook comes from and where the solutions are.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "exercises"
ANSWER_TAG = "answer"

_FENCE = re.compile(r"(`{3,}|:{3,})\s*(\{[\w:-]+\})?\s*(.*)")
_OPTION = re.compile(r":([\w-]+):\s*(.*)")


def _closing(lines: list[str], start: int, fence: str) -> int:
    """Index of the line that closes the block opened by ``fence`` at ``lines[start]``."""
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            return index
    return len(lines)  # unclosed: the block runs to the end, as in MyST


def parts(markdown: str) -> list[tuple[str, str, str]]:
    """``markdown`` in order as ``("text", markdown, "")`` and ``("exercise", label, title and
    body)`` parts; ``{solution}`` blocks left out, any other block kept whole in its text."""
    lines = markdown.split("\n")
    found: list[tuple[str, str, str]] = []
    text: list[str] = []
    index = 0
    while index < len(lines):
        match = _FENCE.fullmatch(lines[index].strip())
        if not match:
            text.append(lines[index])
            index += 1
            continue
        end = _closing(lines, index, match[1])
        directive = match[2]
        if directive not in ("{exercise}", "{solution}"):
            text += lines[index : end + 1]  # any other block is kept whole
        else:
            if "".join(text).strip():
                found.append(("text", "\n".join(text).strip("\n"), ""))
            text = []
            if directive == "{exercise}":
                body = lines[index + 1 : end]
                options = {}
                while body and _OPTION.fullmatch(body[0].strip()):
                    option = _OPTION.fullmatch(body.pop(0).strip())
                    assert option
                    options[option[1]] = option[2]
                title = match[3].strip()
                text_of = "\n".join(body).strip("\n")
                found.append(("exercise", options.get("label", ""), f"{title}\n\n{text_of}"))
        index = end + 1
    if "".join(text).strip():
        found.append(("text", "\n".join(text).strip("\n"), ""))
    return found


def labels(notebook: dict) -> list[str]:
    """The labels of a notebook's exercises, in order."""
    return [
        label
        for cell in notebook["cells"]
        if cell["cell_type"] == "markdown"
        for kind, label, _ in parts("".join(cell["source"]))
        if kind == "exercise"
    ]


def numbers(toc: Path = ROOT / "_toc.yml") -> dict[str, int]:
    """``{label: number}`` as the book shows them: one count through the pages of ``toc``."""
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            files.extend(node[key] for key in ("root", "file") if key in node)
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(toc.read_text(encoding="utf-8")))
    found: list[str] = []
    for name in files:
        notebook, page = ROOT / f"{name}.ipynb", ROOT / f"{name}.md"
        if notebook.exists():
            found += labels(json.loads(notebook.read_text(encoding="utf-8")))
        elif page.exists():
            found += labels({"cells": [{"cell_type": "markdown", "source": [page.read_text()]}]})
    return {label: number for number, label in enumerate(found, start=1)}


def _source(text: str) -> list[str]:
    """``text`` as a notebook cell's list of lines."""
    return text.splitlines(keepends=True)


def exercises(notebook: dict, name: str, number: dict[str, int], clear: bool = False) -> dict:
    """The participants' version of ``notebook`` (the chapter file ``name``); a new object."""
    result = copy.deepcopy(notebook)
    note = (
        f"*Exercise notebook, made from the book's `chapters/{name}` by `make exercises`: the "
        "solutions are left out (the book's page has them, under each exercise). Each exercise "
        "is followed by an empty code cell for your answer. The stored outputs are the book's "
        "checked results: compare your own runs with them.*"
    )
    cells: list[dict] = [{"cell_type": "markdown", "id": "exercise-notebook", "metadata": {}}]
    cells[0]["source"] = _source(note)
    for cell in result["cells"]:
        if clear and cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
        if cell["cell_type"] != "markdown":
            cells.append(cell)
            continue
        pieces = parts("".join(cell["source"]))
        if [kind for kind, _, _ in pieces] == ["text"] and pieces[0][1] == "".join(cell["source"]):
            cells.append(cell)  # nothing to change: the cell as it was
            continue
        for k, (kind, value, body) in enumerate(pieces):
            ident = f"{cell.get('id', 'cell')}-{k}"
            if kind == "text":
                new = {"cell_type": "markdown", "id": ident, "metadata": {}, "source": value}
                cells.append(new | {"source": _source(value)})
                continue
            title, _, text = body.partition("\n\n")
            heading = f"### Exercise {number[value]}" if value in number else "### Exercise"
            heading += f" ({title})" if title else ""
            markdown = f"{heading}\n\n<!-- {value} -->\n\n{text}"
            cells.append({"cell_type": "markdown", "id": ident, "metadata": {}})
            cells[-1]["source"] = _source(markdown)
            answer = {"cell_type": "code", "id": f"{ident}-answer", "execution_count": None}
            cells.append(answer | {"metadata": {"tags": [ANSWER_TAG]}, "outputs": [], "source": []})
    result["cells"] = cells
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=OUT, help="folder (default: %(default)s)")
    parser.add_argument("--clear-outputs", action="store_true", help="drop the stored outputs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    number = numbers()
    for path in args.notebooks:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        result = exercises(notebook, path.name, number, clear=args.clear_outputs)
        target = args.out / path.name
        target.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", "utf-8")
        print(f"{target}: {len(labels(notebook))} exercises, no solutions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
