"""Prose numbers that cannot drift: every measured-looking number in the book's prose is backed.

A number a reader sees in a markdown cell must come from something that is re-checked: an output
of the same chapter (the strict nbval gate re-executes every cell and compares it), a committed
record under ``src/reprodl/results/`` (loaded through :mod:`reprodl.results` and re-checked by
the benchmarks' tests), or the chapter's own code (a constant the chapter sets). Anything else
is a number retyped by hand, which silently goes stale when the code changes: this test fails on
it. The fix is to quote the output (myst-nb ``glue``), load the record, drop the number, or, for
a true constant, add it to the allow-list below with its reason.

What is scanned
    Every markdown cell of ``chapters/*.ipynb``, against the outputs and code of that chapter and
    the records it names (a record's file name, such as ``cnn_full_run.json``, or its folder,
    such as ``cross_cpu``, anywhere in the notebook); and every ``.md`` page listed in
    ``_toc.yml`` (intro, checklist, workshop, ...) against the outputs and code of all chapters
    and every record. Scoping a chapter to its own records keeps an unrelated record's digits
    from backing a number by coincidence.

What counts as prose
    The text of a cell, with the bodies of MyST directives (``{exercise}``, ``{solution}``,
    ``{note}``, ...) and the contents of inline code spans: ```This prints `9.787613` ``` claims
    an output. Left out: code blocks (fenced with a language such as ``python`` or ``bash``,
    ``{code-block}``, ``{eval-rst}``, or indented by four spaces after a blank line: code shown,
    not run), math (``$...$``, ``$$...$$``, ``{math}``: formulas and worked examples, whose
    symbols and hyperparameters are constants), the contents of roles (``{cite:p}``, ``{doc}``,
    ``{glue:text}``: keys, not numbers), link targets and bare URLs, HTML tags and comments, MyST
    comments (``% ...``), targets (``(label)=``), directive options (``:label: ...``) and YAML
    front matter. A fence without a language is pasted text: it is scanned.

What is measured-looking
    - a decimal (``0.9689``, ``1.5``) or a number with an exponent (``1e-6``, ``2.4 × 10⁻⁷``);
    - a percentage (``92%``, ``99.2 %``, ``3 percent``, ``5 percentage points``);
    - a p-value (``p = 0.21``, ``p < 0.05``);
    - a number with a unit of time (``15 s``, ``2 minutes``, ``70 min``), of speed
      (``19.6 steps/s``) or of size (``2 GB``), or a ratio (``1.6×``, ``3x``);
    - a number with a scale word (``3.3 million``: compared as ``3.3E+6``, so ``3,274,634``
      backs it by rounding);
    - an integer written with thousands separators (``7,026 of 57,078``), or any other integer of
      100 or more (``787 of the test images``), outside inline code. In inline code, integers
      without a unit are code (``--steps 200``, ``:4096:2``), and so is any number right after
      ``=``, ``(``, ``[`` or ``,`` (``Dropout(0.2)``, ``learning_rate=1e-3``: arguments);
    - a hex digest of seven or more digits with at least one letter and one digit
      (``7956e77c...``): a fingerprint, backed only by an output, code or record containing it.
    Integers below 100 without a unit (chapter numbers, "ten runs", "16 hex digits") are not
    measured-looking, and a year (1950 to 2099, no separator, no unit) is a date. Not numbers at
    all: digits inside identifiers (``float32``, ``SHA-256``, ``x86-64``, ``keras#21874``),
    dotted versions with two or more dots (``3.15.1``), and a number right after a software name
    or the word "version", possibly in a list (``TensorFlow 2.21``, ``CPython 3.10 to 3.13``).

When a number is backed
    Numbers are compared as values (``Decimal``), thousands separators and signs dropped. A prose
    number is backed when a number of its sources
    - is equal to it (``0.5`` and ``0.50``, ``55,000`` and ``55000``); or
    - rounds to it: prose may quote a source with fewer decimals (``0.9689`` for ``0.96893``,
      ``92%`` for ``92.13%``), rounded half-even or half-up, but only a prose number of two or
      more significant digits, so that ``0.5`` is not backed by any output between 0.45 and 0.55;
    - for a percentage, also a fraction that gives it times 100, by the same two rules (``92%``
      for an accuracy printed as ``0.9213``, ``1.6 %`` for a recorded overhead of ``0.0157``).
    Units are not converted: "2 minutes" is not backed by an output of "130 s".
    The sources are the numbers in the chapter's outputs (``text/plain``, ``text/html`` without
    its tags, ``text/markdown``, ``text/latex``, streams and errors), in its code cells' source
    (``LEARNING_RATE = 0.5`` makes ``0.5`` a constant of the chapter), and in the JSON records
    under ``src/reprodl/results/`` (read with :func:`reprodl.results.load`), keys and values,
    floats as Python prints them (``repr``). A hex digest is backed when it is part of the text
    of one of these.
    The net has holes, on purpose: a small integer with a unit (``35 s``) is backed by any
    ``35`` of the sources, and a two-digit percentage by any value that rounds to it. The test
    catches numbers that nothing in the chapter shows; it cannot prove that a backed number is
    quoted from the right output.

The allow-list
    Constants that no output, code cell or record of the page shows (the 70,000 digits of MNIST,
    a hypothetical number in an exercise, a TensorFlow version in a table) are listed below, each
    with the reason it is a constant: :data:`ALLOWED_EVERYWHERE` for the whole book, and
    :data:`ALLOWED` per page. An entry that no unbacked number needs any more fails
    :func:`test_allow_list_has_no_stale_entries`, so the list stays as short as the book allows.

A failure lists one line per unbacked number: the file, the cell (0-based index into
``nb["cells"]``) and line, or the line of the page, the number, and its sentence. The test reads
JSON and markdown only (no TensorFlow) and takes well under a second.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path

import pytest
import yaml

from reprodl import results

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("*.ipynb"))

# --- The allow-list ---------------------------------------------------------------------------
# Keys are numbers as prose writes them (compared as values); values say why each is a constant.
# Every entry carries its reason. Remove an entry when the text no longer needs it (a test says).

#: Constants the whole book may state.
ALLOWED_EVERYWHERE: dict[str, str] = {
    # MNIST itself (lecun-mnist; data.load_mnist checks the SHA-256 of every file).
    "70,000": "the number of MNIST digits: a property of the data set",
    "60,000": "the MNIST training files' images: a property of the data set",
    "255": "the largest value of a uint8 pixel: a definition",
    "1.96": "the 97.5 % quantile of the standard normal distribution: a mathematical constant",
}

#: Constants one page may state, by its path relative to the repository root.
ALLOWED: dict[str, dict[str, str]] = {
    "chapters/02_softmax_regression.ipynb": {
        "0.05": "an exercise's learning rate to try (cell 30): an input, not a result",
        "128": "the hidden width of the book's MLP, in an exercise's question (cell 31)",
    },
    "chapters/10_repeat_experiments.ipynb": {
        "200": "the step count of a hypothetical resumed run in an exercise (cell 31): an input",
    },
}

# --- Prose ------------------------------------------------------------------------------------

#: Directives whose body is code or math, not prose.
CODE_DIRECTIVES = {"{code-block}", "{code}", "{code-cell}", "{sourcecode}", "{eval-rst}"}
CODE_DIRECTIVES |= {"{literalinclude}", "{math}", "{raw}", "{mermaid}", "{graphviz}"}

#: Names after which a number is a version.
SOFTWARE = (
    r"TensorFlow|TF|Keras|NumPy|Python|CPython|CUDA|cuDNN|glibc|macOS|Ubuntu|Debian|Windows|"
    r"jupyter-book|Jupyter Book|myst-nb|Sphinx|nbval|pip|pytest|JAX|PyTorch|oneDNN|MKL|"
    r"OpenBLAS|Eigen|XLA|NCCL|Linux|version|versions|release|v"
)
_VERSION_BEFORE = re.compile(
    rf"\b(?:{SOFTWARE})\s*(?:\d+(?:\.\d+)*(?:\.x)?\s*(?:,|and|or|to|-|–|/)\s*)*$",
    re.IGNORECASE,
)

#: One pass over prose: roles, code spans, display and inline math, links, references, URLs,
#: HTML tags. Code spans and link texts are kept, the rest blanked.
_INLINE = re.compile(
    r"(?P<role>\{[\w:.+-]+\}`[^`]*`)"
    r"|(?P<ticks>`+)(?P<code>.+?)(?P=ticks)"
    r"|(?P<dmath>\$\$.+?\$\$)"
    r"|(?P<imath>(?<![\\\w$])\$(?=\S)(?:[^$\n]|\n(?!\s*\n))+?(?<=\S)\$(?!\w))"
    r"|!?\[(?P<link>[^\]]*)\]\((?:[^()\s]|\([^()\s]*\))*\)"
    r"|(?P<footnote>\[\^[\w-]+\])"
    r"|(?P<url><https?://[^>]+>|https?://\S+)"
    r"|(?P<tag><!--.*?-->|</?[A-Za-z][^<>]*>)",
    re.DOTALL,
)

_DIGITS = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"
_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺−", "0123456789-+-")

#: A number in prose: not inside an identifier, a hex digest or a dotted version.
_PROSE_NUMBER = re.compile(
    rf"(?<![\w.,#@$\\])(?P<mantissa>{_DIGITS})"
    r"(?P<exponent>[eE][+\-−]?\d+(?!\w)|\s?[×x·]\s?10(?:[⁻⁺−]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+|\^\{?[+\-−]?\d+\}?))?"
    r"(?!\d|[.,]\d|\w*\.\d|[A-Za-z]+\d)"
)
_HEX_DIGEST = re.compile(r"(?<![\w.])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,}(?!\w)")

#: A number in an output, a code cell or a record: anything that prints like one.
_SOURCE_NUMBER = re.compile(
    r"(?<![\w.])(?P<mantissa>(?:\d{1,3}(?:,\d{3})+|\d+(?:_\d+)*)(?:\.\d+)?|\.\d+)"
    r"(?P<exponent>[eE][+-]?\d{1,3})?(?!\w)"
)

_PERCENT = re.compile(r"\s?(?:%|percent\b|per cent\b|percentage points?\b)")
_UNIT = re.compile(
    r"\s?-?\s?(?:"
    r"(?:ns|µs|μs|us|ms|s|secs?|seconds?|min|mins|minutes?|h|hrs?|hours?|days?)\b"  # time
    r"|[\w-]+/s\b|(?:steps?|images?|examples?|batches|runs?) per second\b"  # speed
    r"|(?:B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB|bytes)\b"  # size
    r"|(?:×|x)(?!\s?\d)(?!\w)"  # ratio
    r")"
)
_SCALE = re.compile(r"\s(thousand|million|billion)\b")
_SCALES = {"thousand": 3, "million": 6, "billion": 9}
_P_VALUE = re.compile(r"\bp(?:-value)?\s*(?:[=<>≤≥]|of|is)\s*$", re.IGNORECASE)
_IDENTIFIER_BEFORE = re.compile(r"[A-Za-z]\w*-$")
_LIST_ITEM = re.compile(r"\s*(?:[-*+]|\d+[.)])\s")


def _prose_lines(markdown: str) -> Iterator[tuple[int, str]]:
    """The lines of ``markdown`` that are prose, with their 0-based numbers: code blocks, math
    blocks, directive options, comments, targets and front matter left out."""
    lines = markdown.split("\n")
    fences: list[tuple[str, int, bool]] = []  # (fence character, length, body is code)
    in_options = in_math = in_indented = False
    start = 0
    if lines and lines[0].strip() == "---":  # YAML front matter
        start = next((i + 1 for i in range(1, len(lines)) if lines[i].strip() == "---"), 0)
    for number in range(start, len(lines)):
        line, stripped = lines[number], lines[number].strip()
        previous_blank = number == 0 or not lines[number - 1].strip()
        fence = re.match(r"(`{3,}|~{3,})\s*(\S*)", stripped)
        closing = fence and not fence[2] and fences and fence[1][0] == fences[-1][0]
        if closing and len(fence[1]) >= fences[-1][1]:  # the end of the innermost block
            fences.pop()
            in_options = False
            continue
        if fences and fences[-1][2]:
            continue
        if fence:
            info = fence[2]
            fences.append((fence[1][0], len(fence[1]), bool(info) and info[0] != "{"))
            if info in CODE_DIRECTIVES:
                fences[-1] = (fence[1][0], len(fence[1]), True)
            in_options = info.startswith("{")
            continue
        if in_options and re.match(r":[\w-]+:", stripped):
            continue
        in_options = False
        indented = re.match(r" {4,}\S", line) is not None and not _LIST_ITEM.match(line)
        in_indented = (in_indented and (indented or not stripped)) or (indented and previous_blank)
        if in_indented:
            continue
        if in_math:  # a display math block, up to the line that closes it
            in_math = "$$" not in stripped
            continue
        if stripped.startswith("$$"):
            in_math = not (len(stripped) > 2 and stripped.endswith("$$"))
            continue
        if stripped.startswith("%") or re.fullmatch(r"\([\w:.-]+\)=", stripped):
            continue
        yield number, line


@dataclass(frozen=True)
class Prose:
    """The prose of a markdown text, its line structure kept, with the spans of inline code."""

    text: str
    code: tuple[tuple[int, int], ...]

    def in_code(self, position: int) -> bool:
        return any(start <= position < end for start, end in self.code)


def prose(markdown: str) -> Prose:
    """The prose of ``markdown``: everything that is not prose blanked, lines kept."""
    kept = dict(_prose_lines(markdown))
    text = "\n".join(kept.get(i, "") for i in range(markdown.count("\n") + 1))
    pieces: list[str] = []
    code: list[tuple[int, int]] = []
    length = position = 0
    for m in _INLINE.finditer(text):
        pieces.append(text[position : m.start()])
        length += m.start() - position
        if m["code"] is not None:
            piece = f"`{m['code']}`"
            code.append((length + 1, length + len(piece) - 1))
        elif m["link"] is not None:
            piece = m["link"]
        elif m["role"]:
            piece = "{…}"
        elif m["dmath"] or m["imath"]:
            piece = "$…$" + "\n" * m[0].count("\n")
        else:
            piece = " " + "\n" * m[0].count("\n")
        pieces.append(piece)
        length += len(piece)
        position = m.end()
    pieces.append(text[position:])
    return Prose("".join(pieces), tuple(code))


@dataclass(frozen=True)
class Claim:
    """A measured-looking number (``value``) or hex digest (``value is None``) in prose."""

    path: str
    where: str  # "cell 13, line 4" or "line 20"
    text: str  # as the prose writes it
    value: Decimal | None
    percent: bool
    sentence: str

    def __str__(self) -> str:
        return f"{self.path}, {self.where}: {self.text!r} in: {self.sentence}"


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` around ``text[start:end]`` (a table's row), on one line."""
    line_start = text.rfind("\n", 0, start) + 1
    if text[line_start:].lstrip().startswith("|"):
        line_end = text.find("\n", end)
        sentence = text[line_start : line_end if line_end >= 0 else None]
    else:
        boundary = re.compile(r"[.!?;:](?=\s)|\n\s*\n")
        left = max((m.end() for m in boundary.finditer(text, 0, start)), default=0)
        right = next((m.end() for m in boundary.finditer(text, end)), len(text))
        sentence = text[left:right]
    sentence = " ".join(sentence.split())
    return sentence if len(sentence) <= 200 else sentence[:197] + "..."


def _value(mantissa: str, exponent: str | None = None) -> Decimal:
    """The value of a printed number, sign dropped (``1,234.5``, ``2.4 × 10⁻⁷``, ``1e-6``)."""
    digits = mantissa.replace(",", "").replace("_", "")
    if not exponent:
        return Decimal(digits)
    power = re.sub(r"^\s?(?:[eE]|[×x·]\s?10\^?\{?)", "", exponent.translate(_SUPERSCRIPT))
    return abs(Decimal(f"{digits}E{power.strip('{}')}"))


def claims(path: str, markdown: str, where: str = "") -> Iterator[Claim]:
    """The measured-looking numbers and hex digests of ``markdown`` (a cell's or page's text)."""
    text = prose(markdown)

    def claim(m: re.Match[str], value: Decimal | None, percent: bool = False) -> Claim:
        line = text.text.count("\n", 0, m.start()) + 1
        place = f"{where}, line {line}" if where else f"line {line}"
        sentence = _sentence(text.text, m.start(), m.end())
        return Claim(path, place, m[0].strip(), value, percent, sentence)

    for m in _PROSE_NUMBER.finditer(text.text):
        before = text.text[max(0, m.start() - 60) : m.start()]
        after = text.text[m.end() : m.end() + 30]
        if _IDENTIFIER_BEFORE.search(before) or _VERSION_BEFORE.search(before):
            continue
        in_code = text.in_code(m.start())
        if in_code and before.rstrip().endswith(("=", "(", "[", ",")):  # `f(0.2, lr=1e-3)`
            continue
        value = _value(m["mantissa"], m["exponent"])
        scale = _SCALE.match(after)
        if scale:  # "3.3 million": compared as 3.3E+6, rounded to hundred thousands
            value = value.scaleb(_SCALES[scale[1]])
        percent = _PERCENT.match(after) is not None
        decimal = "." in m["mantissa"] or m["exponent"] is not None
        with_unit = percent or _UNIT.match(after) is not None or _P_VALUE.search(before)
        count = ("," in m["mantissa"] or value >= 100) and not 1950 <= value <= 2099
        if decimal or with_unit or scale or (count and not in_code):
            yield claim(m, value, percent)
    for m in _HEX_DIGEST.finditer(text.text):
        yield claim(m, None)


# --- Sources ----------------------------------------------------------------------------------


@dataclass
class Sources:
    """The numbers (sorted, for a search by interval) and the text that back prose."""

    values: list[Decimal] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def add_text(self, text: str) -> Sources:
        self.texts.append(text.lower())
        self.values += (_value(m["mantissa"], m["exponent"]) for m in _SOURCE_NUMBER.finditer(text))
        return self

    def add(self, other: Sources) -> Sources:
        self.values += other.values
        self.texts += other.texts
        return self

    def freeze(self) -> Sources:
        self.values = sorted(set(self.values))
        self.texts = ["\n".join(self.texts)]
        return self

    def backing(self, claim: Claim) -> Decimal | str | None:
        """The source that backs ``claim`` (a number or the digest), or None."""
        if claim.value is None:
            digest = claim.text.lower()
            return digest if any(digest in text for text in self.texts) else None
        number = claim.value
        exponent = number.as_tuple().exponent
        assert isinstance(exponent, int)
        quantum = Decimal(1).scaleb(exponent)
        may_round = len(number.as_tuple().digits) >= 2  # significant digits as written
        for scale in (0, -2) if claim.percent else (0,):  # -2: a fraction for a percentage
            target, half = number.scaleb(scale), quantum.scaleb(scale) / 2
            low = bisect.bisect_left(self.values, target - half)
            high = bisect.bisect_right(self.values, target + half)
            for source in self.values[low:high]:
                if source == target:
                    return source
                shown = source.scaleb(-scale)
                if may_round and shown.as_tuple().exponent < exponent:  # type: ignore[operator]
                    rounded = {shown.quantize(quantum, r) for r in (ROUND_HALF_EVEN, ROUND_HALF_UP)}
                    if number in rounded:
                        return source
        return None


def _output_text(output: dict) -> str:
    """The text an output shows: streams, errors, and the text of its rich representations."""
    if output["output_type"] == "stream":
        return "".join(output["text"])
    if output["output_type"] == "error":
        return "\n".join([output["evalue"], *output["traceback"]])
    data = output.get("data", {})
    texts = ["".join(data.get(mime, "")) for mime in ("text/plain", "text/markdown", "text/latex")]
    if "text/html" in data:
        texts.append(re.sub(r"<[^>]*>", " ", "".join(data["text/html"])))
    return "\n".join(texts)


def _json_text(value: object) -> Iterator[str]:
    """Every key and value of a JSON document, as Python prints it."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _json_text(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_text(item)
    elif isinstance(value, float):
        yield repr(value)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


RECORDS = sorted(results.FOLDER.rglob("*.json"))


@cache
def record_sources(names: frozenset[str] | None = None) -> Sources:
    """The numbers of the package's committed JSON records (``reprodl.results``): those whose
    file name or folder is in ``names``, or all of them."""
    sources = Sources()
    for path in RECORDS:
        name = path.relative_to(results.FOLDER).as_posix()
        if names is None or path.name in names or name.split("/")[0] in names:
            for text in _json_text(results.load(name)):
                sources.add_text(text)
    return sources.freeze()


def records_named(text: str) -> frozenset[str]:
    """The records (file names, or folders of records) that ``text`` names."""
    names = {path.name for path in RECORDS} | {
        path.parent.name for path in RECORDS if path.parent != results.FOLDER
    }
    return frozenset(name for name in names if name in text)


def notebook_sources(notebook: dict) -> Sources:
    """The numbers of a notebook's code cells: their source and their outputs."""
    sources = Sources()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            sources.add_text("".join(cell["source"]))
            for output in cell.get("outputs", []):
                sources.add_text(_output_text(output))
    return sources


# --- The check --------------------------------------------------------------------------------


def _key_value(key: str) -> Decimal:
    m = _PROSE_NUMBER.fullmatch(key)
    assert m, f"allow-list key {key!r} is not a number as prose writes it"
    return _value(m["mantissa"], m["exponent"])


def allowed_values(path: str) -> set[Decimal]:
    """The values the allow-list lets the page ``path`` state without a source."""
    return {_key_value(key) for key in [*ALLOWED_EVERYWHERE, *ALLOWED.get(path, {})]}


def unbacked(
    path: str,
    cells: Iterable[tuple[str, str]],
    sources: Sources,
    allowed: set[Decimal] | None = None,
) -> list[Claim]:
    """The claims of ``cells`` (``(where, markdown)`` pairs of the page ``path``) that no source
    backs and that are not ``allowed`` (by default: the allow-list of ``path``)."""
    allowed = allowed_values(path) if allowed is None else allowed
    return [
        claim
        for where, markdown in cells
        for claim in claims(path, markdown, where)
        if claim.value not in allowed and sources.backing(claim) is None
    ]


def check_notebook(
    notebook_path: Path, name: str | None = None, allowed: set[Decimal] | None = None
) -> list[Claim]:
    """The unbacked numbers of a notebook's markdown cells, against its own outputs and code and
    the package's records that it names. ``name`` is the path the allow-list knows it by
    (default: its path in the repository); ``allowed`` replaces the allow-list."""
    notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
    if name is None:
        name = notebook_path.resolve().relative_to(ROOT).as_posix()
    everything = "\n".join("".join(cell["source"]) for cell in notebook["cells"])
    records = record_sources(records_named(everything))
    sources = Sources().add(notebook_sources(notebook)).add(records).freeze()
    cells = [
        (f"cell {index}", "".join(cell["source"]))
        for index, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "markdown"
    ]
    return unbacked(name, cells, sources, allowed)


def markdown_pages() -> list[Path]:
    """The ``.md`` pages of the book, in the order of ``_toc.yml``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [ROOT / f"{name}.md" for name in names if (ROOT / f"{name}.md").is_file()]


@cache
def book_sources() -> Sources:
    """The numbers of every chapter's code and outputs, and of every record."""
    sources = Sources().add(record_sources())
    for chapter in CHAPTERS:
        sources.add(notebook_sources(json.loads(chapter.read_text(encoding="utf-8"))))
    return sources.freeze()


def check_page(page: Path, allowed: set[Decimal] | None = None) -> list[Claim]:
    """The unbacked numbers of a ``.md`` page, against all chapters and records."""
    name = page.relative_to(ROOT).as_posix()
    return unbacked(name, [("", page.read_text(encoding="utf-8"))], book_sources(), allowed)


def _report(found: list[Claim]) -> str:
    return (
        f"{len(found)} number(s) in prose that no output, code cell or record backs: quote the "
        "output (myst-nb glue), load the record, drop the number, or allow-list a constant with "
        "its reason in tests/test_prose_numbers.py\n" + "\n".join(map(str, found))
    )


# --- The book ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _tensorflow_threads_pinned() -> None:
    """Overrides, for this module, the root conftest's autouse fixture of this name: these tests
    read JSON and markdown only and need no TensorFlow (importing it takes seconds)."""


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_prose_numbers_are_backed(chapter: Path):
    found = check_notebook(chapter)
    if found:
        pytest.fail(_report(found), pytrace=False)


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: p.stem)
def test_page_prose_numbers_are_backed(page: Path):
    found = check_page(page)
    if found:
        pytest.fail(_report(found), pytrace=False)


def test_allow_list_has_no_stale_entries():
    """Every allow-listed number is still unbacked in its page (a book-wide one: in some page)."""
    pages = [*CHAPTERS, *markdown_pages()]
    names = {page.relative_to(ROOT).as_posix() for page in pages}
    bare = [
        claim
        for page in pages
        for claim in (check_notebook(page, allowed=set()) if page.suffix == ".ipynb" else [])
        + (check_page(page, allowed=set()) if page.suffix == ".md" else [])
    ]
    stale = [f"ALLOWED[{path!r}]: not a page of the book" for path in ALLOWED if path not in names]
    stale += [
        f"{where}: {key!r}"
        for where, entries in [("ALLOWED_EVERYWHERE", ALLOWED_EVERYWHERE), *ALLOWED.items()]
        for key in entries
        if not any(
            c.value == _key_value(key) and where in ("ALLOWED_EVERYWHERE", c.path) for c in bare
        )
    ]
    assert not stale, "allow-list entries that no prose needs any more:\n" + "\n".join(stale)


# --- The rules --------------------------------------------------------------------------------


def _claimed(markdown: str) -> list[str]:
    return [claim.text for claim in claims("page.md", markdown)]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("Test accuracy 0.9689 after 1.5 epochs.", ["0.9689", "1.5"]),
        ("About 92% here, 99.2 % there, 3 percent, 5 percentage points.", ["92", "99.2", "3", "5"]),
        ("A difference with p = 0.21.", ["0.21"]),
        (
            "It took 15 s, then 2 minutes, then 70 min; 19.6 steps/s; 2 GB; 1.6× slower.",
            ["15", "2", "70", "19.6", "2", "1.6"],
        ),
        ("Wrong on 7,026 of 57,078 images, and on 787 of them twice.", ["7,026", "57,078", "787"]),
        ("Errors of 2.4 × 10⁻⁷ and 1e-6; 3.3 million parameters.", ["2.4 × 10⁻⁷", "1e-6", "3.3"]),
        ("The output `took 12.3 s` and the fingerprint `7956e77c...`.", ["12.3", "7956e77c"]),
        # Not claims: identifiers, versions, years, small counts, code, math, roles and links.
        ("float32, SHA-256, x86-64, AVX512, keras#21874 and a 28x28 image.", []),
        ("TensorFlow 2.21, Keras 3.15.1, CPython 3.10 to 3.13, since version 2.8; in 2015.", []),
        ("Ten runs, 16 hex digits, chapter 8, 3 of 10 seeds.", []),
        ("The rate $\\eta = 0.5$ and $$\\sigma = 0.1$$ here.", []),
        ("{cite:p}`lecun1998gradient`, {doc}`08_gpu_hardware`, [page](https://a.org/v1.5/x).", []),
        ("Run `--steps 200` with `learning_rate=1e-3` and `Dropout(0.2)`.", []),
        ("Code:\n\n```python\nlr = 0.5\n```\n\nand\n\n    x = 1.25\n\nend.", []),
        ("```{exercise}\n:label: ex-1.5\n\nWhat is 0.25?\n```", ["0.25"]),
    ],
)
def test_what_counts_as_a_measured_number(markdown: str, expected: list[str]):
    assert _claimed(markdown) == expected


def _sources(text: str) -> Sources:
    return Sources().add_text(text).freeze()


@pytest.mark.parametrize(
    ("prose_text", "backed"),
    [
        ("0.96893", True),  # as printed
        ("0.9689", True),  # rounded to fewer decimals
        ("0.96894", False),
        ("0.9700", False),
        ("92%", True),  # 92.13% rounded, and 0.9213 times 100
        ("93%", False),
        ("1.6 %", True),  # 0.0157 times 100, rounded
        ("0.5", False),  # one significant digit: exact only (0.52 is no backing)
        ("0.52", True),
        ("15 s", True),  # 15.2 rounded
        ("3.3 million", True),  # 3,274,634 rounded
        ("3.2 million", False),
        ("55,000", True),  # 55000 in code
    ],
)
def test_when_a_number_is_backed(prose_text: str, backed: bool):
    sources = _sources("acc 0.96893 | 92.13% | 0.9213 | took 15.2 s | 3,274,634 | 0.0157\n")
    sources.add(_sources("N = 55_000\nlr = 0.52\n")).freeze()
    (claim,) = claims("page.md", f"We see {prose_text} here.")
    assert (sources.backing(claim) is not None) == backed


def _notebook(markdown: list[str], code: str, output: str) -> dict:
    cell = {"cell_type": "code", "execution_count": 1, "metadata": {}, "source": code}
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": output}]
    cells = [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
    return {
        "cells": [cells[0], cell, *cells[1:]],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_a_synthetic_notebook_fails_on_its_unbacked_number_only(tmp_path: Path):
    notebook = _notebook(
        [
            "Training with learning rate 0.25 for 1,200 steps:",
            "It reaches 0.9213 (92%), not 0.9312.",
        ],
        "LEARNING_RATE = 0.25\nSTEPS = 1200\nprint(train(LEARNING_RATE, STEPS))",
        "test accuracy 0.9213 | took 15.2 s\n",
    )
    path = tmp_path / "synthetic.ipynb"
    path.write_text(json.dumps(notebook), encoding="utf-8")
    found = check_notebook(path, name="synthetic.ipynb")
    assert [(claim.where, claim.text) for claim in found] == [("cell 2, line 1", "0.9312")]
    assert str(found[0]) == (
        "synthetic.ipynb, cell 2, line 1: '0.9312' in: It reaches 0.9213 (92%), not 0.9312."
    )


def test_changing_a_quoted_output_in_a_chapter_fails(tmp_path: Path):
    """Mutation check on a copy of a chapter: its first decimal in prose, of three or more
    significant digits, that an output shows, with its last digit changed, is reported."""
    for chapter in CHAPTERS:
        notebook = json.loads(chapter.read_text(encoding="utf-8"))
        shown = Sources()
        for cell in notebook["cells"]:
            for output in cell.get("outputs", []):
                shown.add_text(_output_text(output))
        everything = Sources().add(shown).add(notebook_sources(notebook)).freeze()
        shown.freeze()
        for index, cell in enumerate(notebook["cells"]):
            source = "".join(cell["source"]) if cell["cell_type"] == "markdown" else ""
            for claim in claims(chapter.name, source, f"cell {index}"):
                if (
                    claim.value is None
                    or "." not in claim.text
                    or len(claim.value.as_tuple().digits) < 3
                ):
                    continue
                changed = claim.text[:-1] + str((int(claim.text[-1]) + 5) % 10)
                mutant = next(claims(chapter.name, f"Now {changed} here."))
                if shown.backing(claim) is None or everything.backing(mutant) is not None:
                    continue
                cell["source"] = source.replace(claim.text, changed, 1)
                copy = tmp_path / chapter.name
                copy.write_text(json.dumps(notebook), encoding="utf-8")
                found = check_notebook(copy, name=chapter.relative_to(ROOT).as_posix())
                assert (f"cell {index}", changed) in [
                    (c.where.split(",")[0], c.text) for c in found
                ]
                assert (f"cell {index}", claim.text) not in [
                    (c.where.split(",")[0], c.text) for c in check_notebook(chapter)
                ]
                return
    pytest.fail("no chapter quotes an output number in its prose: nothing to mutate")
