"""The book: it builds with no warning, its table of contents matches the files, and every page
works in a real browser (headless Chromium driven by Playwright).

The book is built once per session into a temporary folder (``jupyter-book build --path-output``)
and served on 127.0.0.1. The browser reaches nothing else: MathJax, which the pages load from a
CDN, is served from a local copy of the npm package ``mathjax@3`` (installed with ``npm`` into
``$REPRODL_TEST_CACHE``, default ``~/.cache/reprodl-test``, on first use), and every other request
that leaves 127.0.0.1 is aborted and reported.

Chromium: ``$CHROMIUM`` or ``chromium`` on PATH (Debian's package); ``make test`` installs it
and npm when it can (``tools/ensure_browser.sh``: root with apt-get). Without them the browser
tests are skipped with one line saying how to enable them, except under ``CI=true``, where they
fail. Deselect them with ``-m "not browser"``.

The API reference (``api.md``) lists every public module of the package; a test checks the list
against ``src/reprodl`` and that the built page documents the package's functions.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup
from support import is_old_path

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))

MATHJAX_URL = CONFIG["sphinx"]["config"]["mathjax_path"]
MATHJAX_PREFIX = MATHJAX_URL.split("/es5/")[0] + "/"  # https://cdn.jsdelivr.net/npm/mathjax@3/
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def toc_docnames() -> list[str]:
    """Every page of the book in reading order, as listed in _toc.yml."""
    names = [TOC["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            walk(entry.get("sections", []))

    for part in TOC.get("parts", []):
        walk(part.get("chapters", []))
    walk(TOC.get("chapters", []))
    return [str(Path(n).with_suffix("")) for n in names]


DOCNAMES = toc_docnames()
NOTEBOOKS = [d for d in DOCNAMES if (ROOT / f"{d}.ipynb").is_file()]
#: Pages Sphinx adds to every book.
GENERATED = ["genindex", "search"]
PACKAGE = ROOT / "src" / "reprodl"
API_PAGE = ROOT / "api.md"
ENABLE_BROWSER = (
    "apt-get install chromium npm as root (make test does it when it can), or set $CHROMIUM"
)


def _mathjax_folder() -> Path:
    cache = Path(os.environ.get("REPRODL_TEST_CACHE", Path.home() / ".cache" / "reprodl-test"))
    return cache / "mathjax3" / "node_modules" / "mathjax"


def _browser_missing() -> str | None:
    """What the browser tests lack on this machine (None: nothing)."""
    if not (os.environ.get("CHROMIUM") or shutil.which("chromium")):
        return "no Chromium"
    if not (_mathjax_folder() / "es5" / "tex-mml-chtml.js").is_file() and not shutil.which("npm"):
        return "no npm to fetch MathJax 3 once"
    return None


def _require(visit: Visit | None) -> Visit:
    """The browser tab, or: skip the test with one line saying how to enable the browser tests
    (raised here, so that pytest -ra folds every browser test into that one line); under
    ``CI=true`` fail instead (CI must run every test)."""
    if visit is not None:
        return visit
    what = _browser_missing()
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} under CI: {ENABLE_BROWSER}")
    pytest.skip(f"browser tests skipped, {what}: {ENABLE_BROWSER}")


def _source(docname: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{docname}{suffix}").is_file():
            return ROOT / f"{docname}{suffix}"
    return None


# --- the build ---------------------------------------------------------------------------------


def test_toc_lists_exactly_the_pages_that_exist() -> None:
    listed = set(DOCNAMES)
    missing = sorted(d for d in listed if _source(d) is None)
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"
    assert len(listed) == len(DOCNAMES), "a page is listed twice in _toc.yml"
    pages = {str(p.relative_to(ROOT).with_suffix("")) for p in ROOT.glob("chapters/*.ipynb")}
    pages |= {str(p.relative_to(ROOT).with_suffix("")) for p in ROOT.glob("chapters/*.md")}
    unlisted = sorted(pages - listed)
    assert not unlisted, f"pages missing from _toc.yml: {unlisted}"


@pytest.fixture(scope="session")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the book once (warnings are errors); return the folder with its HTML."""
    out = tmp_path_factory.mktemp("book")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(jupyter_book), "build", str(ROOT), "--path-output", str(out)]
        + ["--warningiserror", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    seconds = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-8000:]
    assert "build succeeded" in log, log[-8000:]
    assert "WARNING" not in log, log[-8000:]
    print(f"book built in {seconds:.1f} s")
    return out / "_build" / "html"


@pytest.mark.book
def test_book_builds_without_warnings(book: Path) -> None:
    for docname in DOCNAMES + GENERATED:
        assert (book / f"{docname}.html").is_file(), docname
    # Every notebook is offered for download as it is in the repository.
    for docname in NOTEBOOKS:
        copied = book / "_sources" / f"{docname}.ipynb"
        assert copied.read_bytes() == (ROOT / f"{docname}.ipynb").read_bytes(), docname
    # The local extension removed sphinx-thebe's duplicated inline script.
    for page in book.rglob("*.html"):
        assert page.read_text(encoding="utf-8").count("const THEBE_JS_URL") <= 1, page


# --- the API reference -------------------------------------------------------------------------


def _public_modules() -> set[str]:
    """Every module of the package a user imports: no private ``_name``, no ``__main__``, no old
    path of a moved module; a subpackage counts once (``reprodl.training`` documents what it
    exports), its public submodules may be documented beside it."""
    names = {"reprodl"}
    for path in PACKAGE.iterdir():
        name = path.stem if path.suffix == ".py" else path.name
        if name.startswith("_") or not (path.suffix == ".py" or (path / "__init__.py").is_file()):
            continue
        if not is_old_path(path):
            names.add(f"reprodl.{name}")
    return names


def _public_submodules() -> set[str]:
    """The public modules inside the package's subpackages."""
    return {
        f"reprodl.{path.parent.name}.{path.stem}"
        for path in PACKAGE.glob("*/*.py")
        if not path.stem.startswith("_") and (path.parent / "__init__.py").is_file()
    }


def test_api_page_lists_every_public_module() -> None:
    text = API_PAGE.read_text(encoding="utf-8")
    documented = re.findall(r"^\.\. automodule:: (\S+)$", text, flags=re.MULTILINE)
    summary = text.split(".. autosummary::")[1].split("```")[0].split()
    assert len(documented) == len(set(documented)), "a module is documented twice in api.md"
    public = _public_modules()
    assert public <= set(documented), f"api.md: undocumented {sorted(public - set(documented))}"
    extra = set(documented) - public - _public_submodules()
    assert not extra, f"api.md: not public modules of the package: {sorted(extra)}"
    assert summary == [m for m in documented if m in public], "api.md: summary and sections differ"


def test_api_modules_import_without_tensorflow() -> None:
    """autodoc imports every module: none may load TensorFlow or Keras at import time."""
    code = (
        "import importlib, sys\n"
        f"for name in {sorted(_public_modules())!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n"


@pytest.mark.book
def test_api_page_documents_the_package(book: Path) -> None:
    html = (book / "api.html").read_text(encoding="utf-8")
    for module in sorted(_public_modules()):
        assert f'id="module-{module}"' in html, module
    for name in ("reprodl.training.train", "reprodl.training.RunSpec", "reprodl.data.load_mnist"):
        assert f'id="{name}"' in html, name
    intro = (book / "intro.html").read_text(encoding="utf-8")
    assert 'href="api.html"' in intro, "the intro does not link to the API reference"


# --- the intro's recipe and the pages' defects ------------------------------------------------

INTRO = ROOT / "intro.md"
RECIPE = PACKAGE / "examples" / "train_keras.py"
#: What the intro's excerpt of the recipe must show, in this order: the pins before TensorFlow is
#: imported, the seeds, op determinism, the GPU lines, seeded layers, compile, the seeded shuffle.
RECIPE_KEY_LINES = (
    'os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"',
    'os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"',
    'os.environ["TF_NUM_INTRAOP_THREADS"] = "1"',
    'os.environ["TF_NUM_INTEROP_THREADS"] = "2"',
    "import tensorflow as tf",
    "keras.utils.set_random_seed(SEED)",
    "tf.config.experimental.enable_op_determinism()",
    "tf.config.experimental.enable_tensor_float_32_execution(False)",
    "kernel_initializer=keras.initializers.GlorotUniform(1)",
    "keras.layers.Dropout(0.2, seed=2)",
    "jit_compile=False",
    ".shuffle(len(x), seed=4)",
    "shuffle=False",
)


def _selected_lines(spec: str, count: int) -> list[int]:
    """Sphinx's ``:lines:`` syntax (``12,15-20,49-``), as 0-based indexes into ``count`` lines."""
    indexes = []
    for part in spec.replace(" ", "").split(","):
        first, _, last = part.partition("-")
        end = int(last) if last else (count if part.endswith("-") else int(first))
        indexes.extend(range(int(first) - 1, end))
    assert all(0 <= i < count for i in indexes), f":lines: {spec} is past the end of the file"
    return indexes


def _intro_excerpts() -> list[str]:
    """The intro's ``literalinclude`` excerpts of the recipe, as the book shows them."""
    lines = RECIPE.read_text(encoding="utf-8").splitlines()
    excerpts = []
    for body in re.findall(r"```\{literalinclude\} (\S+)\n(.*?)```", INTRO.read_text(), re.DOTALL):
        path, options = body
        assert (ROOT / path).resolve() == RECIPE.resolve(), f"the intro includes {path}"
        opts = dict(re.findall(r"^:(\w[\w-]*):[ ]*(.*)$", options, flags=re.MULTILINE))
        assert set(opts) <= {"language", "lines", "dedent", "class"}, opts
        chosen = [lines[i] for i in _selected_lines(opts["lines"], len(lines))]
        dedent = int(opts.get("dedent", 0))
        assert all(not line[:dedent].strip() for line in chosen), "dedent would cut code"
        excerpts.append("\n".join(line[dedent:] for line in chosen) + "\n")
    return excerpts


def test_the_intros_recipe_excerpt_holds_the_key_lines() -> None:
    """The intro shows the recipe by line numbers (``:lines:``): an edit of the script that moves
    a line must not silently drop it from the excerpt or cut a statement in half."""
    excerpts = _intro_excerpts()
    assert excerpts, "the intro includes no excerpt of the recipe"
    for excerpt in excerpts:
        ast.parse(excerpt)  # each excerpt is whole statements
    text = "".join(excerpts)
    positions = [text.find(line) for line in RECIPE_KEY_LINES]
    missing = [line for line, at in zip(RECIPE_KEY_LINES, positions, strict=True) if at < 0]
    assert not missing, f"the intro's recipe excerpt lacks {missing}: update its :lines:"
    assert positions == sorted(positions), "the intro's excerpt has the key lines out of order"
    intro = INTRO.read_text(encoding="utf-8")
    assert "PYTHONHASHSEED=0 python train.py" in intro
    assert "python -m reprodl check" in intro
    assert "{doc}`chapter 11 <chapters/11_your_own_training>`" in intro


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


@pytest.mark.book
def test_the_intro_shows_the_recipe_as_highlighted_code_before_the_first_table(
    book: Path,
) -> None:
    article = _soup(book / "intro.html").select_one("article")
    blocks = article.select("div.recipe.highlight-python pre")
    assert len(blocks) == len(_intro_excerpts()), "the recipe is not shown as Python code"
    assert all(block.select("span.n") for block in blocks), "the recipe is not highlighted"
    shown = "".join(block.get_text() for block in blocks)
    assert all(line in shown for line in RECIPE_KEY_LINES)
    order = article.find_all(["pre", "table"])
    first_table = next(i for i, e in enumerate(order) if e.name == "table")
    assert all(order.index(block) < first_table for block in blocks), "a table comes first"


@pytest.mark.book
def test_no_exercise_inside_a_solution(book: Path) -> None:
    """sphinx-exercise renders an exercise as div.exercise and a solution as div.solution; an
    unclosed solution fence swallows the next exercise, which then shows only when the solution
    is opened."""
    nested = []
    for page in sorted(book.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        if "solution" not in text:
            continue
        for solution in BeautifulSoup(text, "html.parser").select("div.solution"):
            nested += [
                f"{page.relative_to(book)}: {e.get('id')}" for e in solution.select(".exercise")
            ]
    assert not nested, f"exercises inside a solution: {nested}"


@pytest.mark.book
def test_the_api_page_publishes_no_environment_value(book: Path) -> None:
    """autodoc prints a module variable's value; one that comes from the building machine (its
    environment, its paths) must be hidden (``#: :meta hide-value:``)."""
    html = (book / "api.html").read_text(encoding="utf-8")
    values = {
        name: value
        for name, value in os.environ.items()
        if (name in ("HOME", "PATH") and len(value) > 1) or (len(value) >= 12 and "/" in value)
    }
    assert "HOME" in values and "PATH" in values
    leaked = sorted(name for name, value in values.items() if value in html)
    assert not leaked, f"api.html shows the values of {leaked} (hide them: :meta hide-value:)"
    assert str(ROOT) not in html, "api.html shows the checkout's path (hide that value)"


@pytest.mark.book
@pytest.mark.parametrize("docname", ["intro", "api", "chapters/11_your_own_training"])
def test_one_search_field_and_a_favicon(book: Path, docname: str) -> None:
    page = book / f"{docname}.html"
    soup = _soup(page)
    fields = soup.select(".search-button-field")
    assert len(fields) == 1, f"{len(fields)} search fields (the theme's top bar adds one)"
    assert not soup.select("#pst-header .search-button-field, .navbar-persistent--mobile")
    icons = soup.select('link[rel="icon"]')
    assert len(icons) == 1, "no favicon link"
    assert (page.parent / icons[0]["href"]).is_file(), icons[0]["href"]


# --- the browser -------------------------------------------------------------------------------


@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 while the block runs; yield its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def server(book: Path) -> Iterator[str]:
    """Serve the built book on 127.0.0.1; yield its base URL."""
    with _serve(book) as base:
        yield base


@pytest.fixture(scope="session")
def mathjax_dir() -> Path:
    """A local copy of the MathJax 3 distribution (npm package ``mathjax@3``)."""
    folder = _mathjax_folder()
    prefix = folder.parents[1]
    if not (folder / "es5" / "tex-mml-chtml.js").is_file():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed once to fetch MathJax 3"  # see _browser_missing
        subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "mathjax@3"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return folder


@pytest.fixture(scope="session")
def browser():
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium")
    assert executable, "Chromium not found"  # see _browser_missing
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


class Visit:
    """One browser tab on the served book, recording console errors and blocked requests."""

    def __init__(self, browser, base: str, mathjax: Path) -> None:
        self.base = base
        self.mathjax = mathjax
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(self.base):
            route.continue_()
        elif url.startswith(MATHJAX_PREFIX):
            path = self.mathjax / urlsplit(url[len(MATHJAX_PREFIX) :]).path
            if path.is_file():
                route.fulfill(path=str(path))
            else:
                self.errors.append(f"MathJax file not in the local copy: {url}")
                route.abort()
        else:
            self.blocked.append(url)
            route.abort()

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text}")

    def goto(self, docname: str):
        response = self.page.goto(urljoin(self.base, f"{docname}.html"), wait_until="load")
        assert response is not None and response.ok, docname
        return response

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visit(request: pytest.FixtureRequest) -> Iterator[Visit | None]:
    """A fresh tab on the served book; None when the browser tests cannot run here (each test
    then skips through :func:`_require`, before the book is built)."""
    if _browser_missing():
        yield None
        return
    v = Visit(
        request.getfixturevalue("browser"),
        request.getfixturevalue("server"),
        request.getfixturevalue("mathjax_dir"),
    )
    yield v
    v.close()


def _markdown_text(docname: str) -> str:
    """The prose of a page (a .md file, or a notebook's markdown cells) without code."""
    source = _source(docname)
    if source is None:
        return ""
    text = source.read_text(encoding="utf-8")
    if source.suffix == ".ipynb":
        cells = json.loads(text)["cells"]
        text = "".join(
            "".join(c["source"]) for c in cells if c["cell_type"] == "markdown"
        )  # nbformat stores a cell's source as a string or a list of lines
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)  # code is not math
    return re.sub(r"`[^`]*`", "", text)


def _wait_for_images(page) -> list[str]:
    """Wait until every <img> finished loading; return the sources of broken ones."""
    page.wait_for_function("Array.from(document.images).every((img) => img.complete)")
    return page.evaluate(
        "Array.from(document.images).filter((img) => img.naturalWidth === 0)"
        ".map((img) => img.getAttribute('src'))"
    )


def _wait_for_math(page) -> int:
    """Wait until MathJax typeset every math element; return how many there are."""
    count = page.evaluate("document.querySelectorAll('span.math, div.math').length")
    if count:
        page.wait_for_function(
            "document.querySelectorAll('mjx-container').length >= "
            "document.querySelectorAll('span.math, div.math').length",
            timeout=30_000,
        )
        errors = page.evaluate("document.querySelectorAll('mjx-merror').length")
        assert errors == 0, f"{errors} formulas with TeX errors"
    return count


@dataclass
class Loaded:
    """What one visit of a page at 1280 px found: every browser test of that width reads it, so
    each page loads once (a page load costs 1 to 4 s of CPU here)."""

    url: str = ""
    broken: list[str] = field(default_factory=list)
    math: int = 0
    errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    heading: str = ""
    links: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    hrefs: list[str] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    failure: str | None = None  # an exception while loading: the page's tests report it


def _load(visit: Visit, docname: str) -> Loaded:
    """Load ``docname`` in ``visit``'s tab, wait for its images and math, and read it."""
    found = Loaded()
    try:
        visit.goto(docname)
        found.url = visit.page.url
        found.broken = _wait_for_images(visit.page)
        found.math = _wait_for_math(visit.page)
        visit.page.wait_for_timeout(300)  # late console errors (async scripts)
        found.heading = visit.page.locator("main h1").first.inner_text().rstrip("#¶ \n")
        for name, selector in (("previous", "a.left-prev"), ("next", "a.right-next")):
            link = visit.page.locator(selector)
            assert link.count() <= 1, f"{docname}: more than one {selector} link"
            if link.count():
                href = urljoin(found.url, link.get_attribute("href"))
                title = link.locator(".prev-next-title").inner_text().strip()
                path = urlsplit(href).path.lstrip("/").removesuffix(".html")
                found.links[name] = (path, title)
            else:
                found.links[name] = None
        found.hrefs = visit.page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        found.downloads = [
            urljoin(found.url, a.get_attribute("href"))
            for a in visit.page.locator("a.btn-download-source-button").all()
        ]
    except Exception as exc:  # noqa: BLE001  (reported by each test of the page)
        found.failure = f"{type(exc).__name__}: {exc}"
    found.errors, found.blocked = list(visit.errors), list(visit.blocked)
    return found


@pytest.fixture(scope="session")
def loaded(request: pytest.FixtureRequest) -> dict[str, Loaded] | None:
    """Every page of the book loaded once at 1280 px, each in a fresh tab; None when the browser
    tests cannot run here (each test then skips through :func:`_require`)."""
    if _browser_missing():
        return None
    browser = request.getfixturevalue("browser")
    base = request.getfixturevalue("server")
    mathjax = request.getfixturevalue("mathjax_dir")
    pages = {}
    for docname in DOCNAMES + GENERATED:
        visit = Visit(browser, base, mathjax)
        try:
            pages[docname] = _load(visit, docname)
        finally:
            visit.close()
    return pages


def _page(loaded: dict[str, Loaded] | None, docname: str) -> Loaded:
    """The visit of ``docname``, or skip/fail as :func:`_require` does; a load that raised fails."""
    if loaded is None:
        _require(None)
    page = loaded[docname]
    assert page.failure is None, f"{docname}: {page.failure}"
    return page


@pytest.mark.browser
@pytest.mark.parametrize("docname", DOCNAMES + GENERATED)
def test_page_renders_in_browser(loaded: dict[str, Loaded] | None, docname: str) -> None:
    page = _page(loaded, docname)
    assert not page.broken, f"images that did not load: {page.broken}"
    if "$" in _markdown_text(docname):
        assert page.math > 0, "the source has $math$ but the page shows no typeset formula"
    assert not page.errors, "\n".join(page.errors)
    assert not page.blocked, f"requests to the internet: {page.blocked}"


@pytest.mark.browser
def test_next_and_previous_links_follow_the_table_of_contents(
    loaded: dict[str, Loaded] | None,
) -> None:
    """Each page's next link leads to the next page of the table of contents and its previous
    link to the one before, each titled as the heading of the page it leads to; the first page
    has no previous link, the last no next link."""
    pages = [_page(loaded, docname) for docname in DOCNAMES]
    headings = {docname: page.heading for docname, page in zip(DOCNAMES, pages, strict=True)}
    for i, (docname, page) in enumerate(zip(DOCNAMES, pages, strict=True)):
        for name, j in (("previous", i - 1), ("next", i + 1)):
            if not 0 <= j < len(DOCNAMES):
                assert page.links[name] is None, f"{docname} has a {name} link"
                continue
            assert page.links[name] is not None, f"{docname}: no {name} link"
            target, title = page.links[name]
            assert target == DOCNAMES[j], (docname, name, target)
            heading = headings[target]
            assert heading.endswith(title) or title in heading, (docname, name, title, heading)


@pytest.mark.browser
@pytest.mark.parametrize("docname", NOTEBOOKS)
def test_launch_and_download_buttons(loaded: dict[str, Loaded] | None, docname: str) -> None:
    page = _page(loaded, docname)
    repo = urlsplit(CONFIG["repository"]["url"]).path.strip("/")  # owner/name
    branch = CONFIG["repository"]["branch"]
    notebook = f"{docname}.ipynb"
    colab = [h for h in page.hrefs if "colab.research.google.com" in h]
    assert colab == [f"https://colab.research.google.com/github/{repo}/blob/{branch}/{notebook}"]
    binder = [h for h in page.hrefs if "mybinder.org" in h]
    assert binder == [f"https://mybinder.org/v2/gh/{repo}/{branch}?urlpath=tree/{notebook}"]
    assert len(page.downloads) == 1
    with urllib.request.urlopen(page.downloads[0], timeout=30) as response:  # the local server
        assert response.read() == (ROOT / notebook).read_bytes()


@pytest.mark.browser
def test_screenshots(visit: Visit | None) -> None:
    """Landing page and one chapter, for a person to look at (``_build/screenshots``)."""
    visit = _require(visit)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = {"landing": DOCNAMES[0]}
    if NOTEBOOKS:
        chapter = next((d for d in NOTEBOOKS if "02_" in d), NOTEBOOKS[0])
        pages["chapter"] = chapter
    for name, docname in pages.items():
        visit.goto(docname)
        _wait_for_images(visit.page)
        _wait_for_math(visit.page)
        shots = {name: False, f"{name}_full": True} if name == "chapter" else {name: False}
        for shot, full_page in shots.items():
            path = SCREENSHOTS / f"{shot}.png"
            visit.page.screenshot(path=str(path), full_page=full_page)
            assert path.stat().st_size > 10_000, path
    assert not visit.errors, "\n".join(visit.errors)


@pytest.mark.browser
def test_the_recipe_is_in_the_intros_first_screen(visit: Visit | None) -> None:
    """At 1280x800 the intro shows the recipe's first block whole and the seeds, op determinism
    and TF32 lines of the second, without scrolling, and no recipe line is cut at the right."""
    visit = _require(visit)
    visit.page.set_viewport_size({"width": 1280, "height": 800})
    visit.goto(DOCNAMES[0])
    found = visit.page.evaluate(
        """(needles) => {
            const blocks = Array.from(document.querySelectorAll('article div.recipe pre'));
            const bottom = (needle) => {
                for (const pre of blocks) {
                    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
                    let text = '', nodes = [];
                    while (walker.nextNode()) { nodes.push([walker.currentNode, text.length]);
                                                text += walker.currentNode.data; }
                    const at = text.indexOf(needle);
                    if (at < 0) continue;
                    const [node, start] = nodes.filter(([, s]) => s <= at).pop();
                    const range = document.createRange();
                    range.setStart(node, at - start);
                    range.setEnd(node, Math.min(node.data.length, at - start + 1));
                    return range.getBoundingClientRect().bottom;
                }
                return null;
            };
            return {
                first: blocks.length ? blocks[0].getBoundingClientRect().bottom : null,
                clipped: blocks.filter((pre) => pre.scrollWidth > pre.clientWidth + 1).length,
                lines: needles.map(bottom),
            };
        }""",
        ["set_random_seed", "enable_op_determinism", "enable_tensor_float_32_execution"],
    )
    assert found["first"] is not None and found["first"] <= 800, found
    assert all(b is not None and b <= 800 for b in found["lines"]), found
    assert found["clipped"] == 0, "a recipe line is cut at the right at 1280 px"
    assert not visit.errors, "\n".join(visit.errors)


@pytest.mark.browser
@pytest.mark.parametrize("docname", DOCNAMES)
def test_pages_fit_a_400_px_screen(visit: Visit | None, docname: str) -> None:
    """On a phone-sized screen no page scrolls sideways: wide tables scroll in their own box and
    long inline code wraps (``_static/narrow.css``)."""
    visit = _require(visit)
    visit.page.set_viewport_size({"width": 400, "height": 800})
    visit.goto(docname)
    width = visit.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400, f"{docname} is {width} px wide at 400 px"


@pytest.mark.book
def test_mathjax_is_loaded_from_the_pinned_url(book: Path) -> None:
    """The browser test serves MathJax for exactly this URL; the pages must use it."""
    pages_with_math = [
        p for p in book.rglob("*.html") if re.search(r'class="math', p.read_text(encoding="utf-8"))
    ]
    for page in pages_with_math:
        assert MATHJAX_URL in page.read_text(encoding="utf-8"), page


@pytest.mark.book
def test_the_intro_gives_each_chapters_reading_time_from_the_record(book: Path) -> None:
    """The intro's table shows every chapter's minutes through the ``{{ reading_NN }}``
    substitutions (``_ext/reading_times.py``), i.e. the committed record's numbers."""
    from reprodl import results

    chapters = results.load("reading_time.json")["chapters"]
    rows = _soup(book / "intro.html").select("article table tr")
    shown = {}
    for row in rows:
        link = row.select_one('a[href*="chapters/"]')
        if link is not None:
            shown[Path(link["href"].split("#")[0]).stem] = row.get_text(" ", strip=True)
    assert {Path(name).stem for name in chapters} <= set(shown), sorted(shown)
    for name, entry in chapters.items():
        assert f"about {entry['minutes']} min" in shown[Path(name).stem], name
    assert "{{" not in (book / "intro.html").read_text(encoding="utf-8")


@pytest.mark.book
def test_every_figure_is_numbered_with_a_caption_and_alt_text(book: Path) -> None:
    """Every image in a chapter is a numbered figure with a caption and alt text of its own (not
    the file path Sphinx writes when a figure has none): from the cells' ``mystnb`` metadata."""
    bare: list[str] = []
    for docname in NOTEBOOKS:
        for img in _soup(book / f"{docname}.html").select("article img"):
            figure = img.find_parent("figure")
            alt = (img.get("alt") or "").strip()
            caption = figure.select_one("figcaption") if figure else None
            number = caption.select_one(".caption-number") if caption else None
            a_path = alt.endswith((".png", ".svg")) or "_images/" in alt or alt == img.get("src")
            if not (caption and number and alt and not a_path):
                bare.append(f"{docname}: {img.get('src')}")
    assert not bare, f"figures without a number, caption or alt text: {bare}"


def _reveal_folder() -> Path:
    cache = Path(os.environ.get("REPRODL_TEST_CACHE", Path.home() / ".cache" / "reprodl-test"))
    return cache / "reveal4" / "node_modules"


@pytest.fixture(scope="session")
def reveal_dir() -> Path:
    """Local copies of what nbconvert's slides load from CDNs: reveal.js 4.0.2 and require.js
    2.1.10 (npm packages, installed once like MathJax)."""
    folder = _reveal_folder()
    if not (folder / "reveal.js" / "dist" / "reveal.js").is_file():
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed once to fetch reveal.js"  # see _browser_missing
        subprocess.run(
            [npm, "install", "--prefix", str(folder.parent), "--no-audit", "--no-fund"]
            + ["reveal.js@4.0.2", "requirejs@2.1.10"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return folder


REVEAL_PREFIX = "https://unpkg.com/reveal.js@4.0.2/"
REQUIRE_JS = "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js"


@pytest.mark.browser
def test_the_slides_open_with_one_slide_per_tagged_cell(
    visit: Visit | None, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``make slides`` for the chapter with the most tagged cells: reveal.js starts in Chromium
    and shows one slide per cell tagged ``slide`` (reveal.js and require.js from local copies;
    the slides' other CDN requests, MathJax 2 and Font Awesome, are cut off)."""
    visit = _require(visit)
    local = request.getfixturevalue("reveal_dir")
    tagged = {
        path: sum("slide" in c.get("metadata", {}).get("tags", []) for c in nb["cells"])
        for path in sorted((ROOT / "chapters").glob("*.ipynb"))
        for nb in [json.loads(path.read_text(encoding="utf-8"))]
    }
    chapter, count = max(tagged.items(), key=lambda item: item[1])
    assert count > 0, "no chapter has a cell tagged slide"
    out = tmp_path / "slides"
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_slides.py"), "--out", str(out), str(chapter)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    (html,) = out.glob("*.html")
    require_js = local / "requirejs" / "require.js"

    def reveal(route) -> None:
        route.fulfill(path=str(local / "reveal.js" / route.request.url[len(REVEAL_PREFIX) :]))

    with _serve(out) as base:
        visit.page.route(f"{base}**", lambda route: route.continue_())
        visit.page.route(f"{REVEAL_PREFIX}**", reveal)
        visit.page.route(REQUIRE_JS, lambda route: route.fulfill(path=str(require_js)))
        visit.page.goto(f"{base}{html.name}", wait_until="load")
        # reveal.js loads as a require.js module (no global Reveal): it marks .reveal "ready"
        visit.page.wait_for_selector(".reveal.ready", timeout=30_000)
        slides = visit.page.locator(".reveal .slides > section")
        assert slides.count() == count
        assert visit.page.locator(".reveal .slides > section.present").inner_text().strip()
