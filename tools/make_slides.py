"""reveal.js slides from the chapter cells tagged for them.

    python tools/make_slides.py chapters/*.ipynb                   # into _build/slides/
    python tools/make_slides.py --tag slide --out DIR chapters/06_deep_cnn.ipynb

A cell whose ``metadata.tags`` holds the tag (``slide`` unless ``--tag`` names another) starts a
slide of its own; every other cell is skipped. The tag is turned into the ``slideshow`` metadata
that nbconvert's ``SlidesExporter`` reads, on a copy: the chapter is read, never written. A
tagged code cell shows its output only (a figure, a printed result); ``--inputs`` shows its code
too, except where it is also tagged ``hide-input`` or ``remove-input``.
Tag a cell in the notebook's JSON (``cell["metadata"]["tags"]``) or in JupyterLab's property
inspector. A chapter without tagged cells gets no slides. A tagged markdown cell is cut to its
headings and the paragraph after them (``--whole`` keeps the whole cell), and MyST roles show
their text (``{term}`oneDNN``` as ``oneDNN``): nbconvert renders markdown, not MyST, so a
directive in a slide shows as its source. The HTML loads reveal.js from ``--reveal-prefix`` (by
default nbconvert's CDN address; give a local copy's folder to present offline).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "slides"
TAG = "slide"
#: Tags of the book whose cells keep only their output on a slide.
OUTPUT_ONLY = {"hide-input", "remove-input"}


_ROLE = re.compile(r"\{[\w:.+-]+\}`([^`<]*?)\s*(?:<[^<>`]*>)?`")
_FENCE = re.compile(r"\s*(`{3,}|:{3,})")


def lead(markdown: str) -> str:
    """From the first heading of ``markdown`` (if any), the headings and the paragraph (or block)
    after them, MyST roles as their text."""
    lines = markdown.split("\n")
    first = next((i for i, line in enumerate(lines) if line.startswith("#")), 0)
    kept: list[str] = []
    fence = ""
    for line in lines[first:]:
        stripped = line.strip()
        opened = _FENCE.match(line)
        if fence:
            closes = stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence)
            fence = "" if closes else fence
        elif opened:
            fence = opened[1]
        elif not stripped and any(k.strip() and not k.startswith("#") for k in kept):
            break  # the first paragraph after the headings is complete
        kept.append(line)
    return _ROLE.sub(lambda m: m[1] or m[0], "\n".join(kept).strip("\n"))


def tagged(notebook: dict, tag: str = TAG) -> list[int]:
    """Indices of the cells of ``notebook`` tagged ``tag``."""
    return [i for i, c in enumerate(notebook["cells"]) if tag in c["metadata"].get("tags", [])]


def slide_notebook(notebook: dict, tag: str = TAG, whole: bool = False) -> dict:
    """A copy of ``notebook`` whose cells tagged ``tag`` are slides and the others skipped; its
    markdown slides cut to their :func:`lead` unless ``whole``."""
    result = copy.deepcopy(notebook)
    for cell in result["cells"]:
        slide = tag in cell["metadata"].get("tags", [])
        cell["metadata"]["slideshow"] = {"slide_type": "slide" if slide else "skip"}
        if slide and not whole and cell["cell_type"] == "markdown":
            cell["source"] = lead("".join(cell["source"]))
    return result


def to_html(notebook: dict, reveal_prefix: str | None = None, inputs: bool = False) -> str:
    """The reveal.js HTML of a notebook that :func:`slide_notebook` made; code cells' inputs
    left out unless ``inputs``."""
    config = Config()
    config.TagRemovePreprocessor.enabled = True
    config.TagRemovePreprocessor.remove_input_tags = OUTPUT_ONLY
    config.TagRemovePreprocessor.remove_cell_tags = {"remove-cell"}
    config.SlidesExporter.exclude_input = not inputs
    config.SlidesExporter.reveal_scroll = True  # a long output scrolls instead of being cut
    if reveal_prefix:
        config.SlidesExporter.reveal_url_prefix = reveal_prefix
    exporter = SlidesExporter(config=config)
    node = nbformat.reads(json.dumps(notebook), as_version=4)  # joins each source into a string
    body, _ = exporter.from_notebook_node(node)
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--tag", default=TAG, help="the cell tag of a slide (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder (default: %(default)s)")
    parser.add_argument("--whole", action="store_true", help="whole markdown cells on slides")
    parser.add_argument("--inputs", action="store_true", help="code cells' code on slides too")
    parser.add_argument("--reveal-prefix", help="where reveal.js is (default: nbconvert's CDN)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.notebooks:
        notebook = json.loads(path.read_text(encoding="utf-8"))
        count = len(tagged(notebook, args.tag))
        if not count:
            print(f"{path.name}: no cell tagged {args.tag!r}, no slides")
            continue
        target = args.out / f"{path.stem}.slides.html"
        slides = slide_notebook(notebook, args.tag, args.whole)
        html = to_html(slides, args.reveal_prefix, args.inputs)
        target.write_text(html, encoding="utf-8")
        print(f"{target}: {count} slides")
    return 0


if __name__ == "__main__":
    sys.exit(main())
