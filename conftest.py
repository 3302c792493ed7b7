"""Root pytest configuration.

- Every process this test run starts (nbval kernels, CLI runs) inherits the reproducibility pins,
  the fixed hash seed and the MNIST folder: the shared folder's files (``$REPRODL_DATA`` or
  ``../shared/data/mnist``) beside their uncompressed, verified copies, in
  ``.pytest_cache/mnist`` (the loader takes the uncompressed file where there is one: each of the
  suite's ~150 loads then skips the gunzip, 0.24 s -> 0.07 s here by ``benchmarks/
  startup_cost.py``; the ``.gz`` files stay there for the example scripts, which read them).
- The strict nbval gate runs every chapter in the reader's environment (``tests/outside.py``): a
  kernel outside the checkout, with the package installed from a wheel by the chapter's own first
  cell. The stored outputs of the checkout's notebook are what each cell must reproduce.
- Under pytest-xdist (``make test``: ``--dist loadscope``), a unit of work is a test file, a
  test class (the slowest tests each have a class of their own, so the two workers can share
  them out) or a notebook (its cells stay on one worker, in order); the units are handed out
  longest first, by the times of the committed durations record.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from reprodl.runtime import REPRODUCIBLE_ENV

os.environ.update(REPRODUCIBLE_ENV)
ROOT = Path(__file__).resolve().parent
_SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
_UNCOMPRESSED = ROOT / ".pytest_cache" / "mnist"


def _with_uncompressed(source: Path, target: Path = _UNCOMPRESSED) -> Path:
    """``target``: links to ``source``'s files and each ``.gz`` uncompressed beside it, verified
    against the loader's hashes; made once, atomically (two workers may race: one folder wins)."""
    from reprodl import data

    def complete(folder: Path) -> bool:
        done = folder / ".complete"
        return done.is_file() and done.read_text(encoding="utf-8") == str(source.resolve())

    if complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".mnist-", dir=target.parent))
    for path in sorted(source.iterdir()):
        (work / path.name).symlink_to(path.resolve())
        if path.suffix == ".gz" and path.stem in data.FILES:
            content = gzip.decompress(path.read_bytes())
            data.verify(path.stem, content, path)
            (work / path.stem).write_bytes(content)
    (work / ".complete").write_text(str(source.resolve()), encoding="utf-8")
    if target.exists() and not complete(target):  # of another source: never a complete one
        stale = target.with_name(f".{target.name}-stale-{os.getpid()}")
        with contextlib.suppress(OSError):
            target.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        work.rename(target)
    except OSError:  # another process's copy is in place
        shutil.rmtree(work, ignore_errors=True)
    return target


_MNIST = Path(os.environ.get("REPRODL_DATA") or _SHARED_MNIST)
if _MNIST.is_dir() and any(_MNIST.glob("*.gz")):
    os.environ["REPRODL_DATA"] = str(_with_uncompressed(_MNIST))

sys.path.insert(0, str(ROOT / "tests"))
import outside  # noqa: E402  (tests/outside.py: the reader's environment)
from nbval.kernel import RunningKernel  # noqa: E402
from nbval.plugin import IPyNbFile  # noqa: E402

CHAPTERS_DIR = ROOT / "chapters"
DURATIONS = ROOT / "benchmarks" / "results" / "suite_durations.json"


class OutsideNotebook(IPyNbFile):
    """A chapter checked by nbval, its kernel in the reader's environment (its copy's folder)."""

    def setup(self) -> None:
        env = outside.environment(self.config)
        if outside.INSTALLED not in env.install_output or not env.package_file.startswith(
            str(env.purelib)
        ):
            raise RuntimeError(
                "the install cell did not install reprodl from the wheel:\n"
                f"{env.install_output}\nreprodl imports from {env.package_file or 'nowhere'}"
            )
        self.kernel = RunningKernel(
            outside.KERNEL,
            cwd=str(env.book),
            startup_timeout=self.config.option.nbval_kernel_startup_timeout,
        )
        self.setup_sanitize_files()


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    collected = yield
    if file_path.parent != CHAPTERS_DIR:
        return collected
    return [
        OutsideNotebook.from_parent(parent, path=file_path) if type(c) is IPyNbFile else c
        for c in collected
    ]


def _recorded_seconds() -> dict[str, float]:
    """Seconds per test file, chapter and test class in the committed durations record (empty
    if none)."""
    try:
        record = json.loads(DURATIONS.read_text(encoding="utf-8"))
        seconds = {e["file"]: e["seconds"] for e in record["files"] + record["chapters"]}
        seconds.update({e["scope"]: e["seconds"] for e in record.get("classes", [])})
        return seconds
    except (OSError, ValueError, KeyError):
        return {}


def work_unit(nodeid: str) -> str:
    """The unit of work of a test under ``--dist loadscope``: its file, or its file and class
    (xdist's own rule: the node id without its last ``::`` part)."""
    return nodeid.rsplit("::", 1)[0]


@pytest.fixture(scope="session", autouse=True)
def _tensorflow_threads_pinned() -> None:
    """The pytest process runs TensorFlow with the pinned thread counts from its first test on,
    whichever test that is (under xdist each worker's first test differs): what a process that
    calls ``reprodl.setup`` before any op has. (Notebook cells take no fixtures: a run of
    notebooks alone imports no TensorFlow here.)"""
    from reprodl import runtime

    threading = runtime.import_tensorflow().config.threading
    try:
        threading.set_intra_op_parallelism_threads(runtime.INTRA_OP_THREADS)
        threading.set_inter_op_parallelism_threads(runtime.INTER_OP_THREADS)
    except RuntimeError:  # already initialised by an import-time op: setup() warns about it
        pass


_TIMELINE = os.environ.get("REPRODL_TEST_TIMELINE")  # set by tools/suite_durations.py


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """With ``$REPRODL_TEST_TIMELINE``, append one JSON line per test: its worker, wall-clock
    start and end, and the CPU seconds of this process and of its finished children meanwhile
    (a test whose wall time far exceeds its CPU time waited or was starved)."""
    if not _TIMELINE:
        return (yield)
    start, before = time.time(), os.times()
    try:
        return (yield)
    finally:
        after = os.times()
        line = {
            "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
            "item": item.nodeid,
            "start": round(start, 3),
            "end": round(time.time(), 3),
            "cpu_self": round(after.user + after.system - before.user - before.system, 3),
            "cpu_children": round(
                after.children_user
                + after.children_system
                - before.children_user
                - before.children_system,
                3,
            ),
        }
        with open(_TIMELINE, "a", encoding="utf-8") as log:
            log.write(json.dumps(line) + "\n")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist (``--dist loadscope``: a file's tests, a class's tests, a notebook's cells,
    on one worker), the longest units first: longest-processing-time-first scheduling, from the
    committed record (a unit it lacks counts as its file's time; a file it lacks goes first, as
    a new test may be slow)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    seconds = _recorded_seconds()
    position: dict[str, int] = {}
    for item in items:
        position.setdefault(work_unit(item.nodeid), len(position))

    def key(item: pytest.Item) -> tuple[float, int]:
        unit = work_unit(item.nodeid)
        file = unit.split("::")[0]
        return -seconds.get(unit, seconds.get(file, math.inf)), position[unit]

    items.sort(key=key)  # stable: a file's items keep their order
