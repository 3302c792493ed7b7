"""The workshop's timetables, from measured reading and run times plus stated assumptions.

    python tools/workshop_timetable.py           # rewrites the tables in chapters/workshop.md
    python tools/workshop_timetable.py --check   # exit status 1 if they are out of date

A chapter's block lasts its reading time, plus its run time, plus the assumed minutes to open it
and to do its exercise. Measured: the reading time (the chapter's words at two hundred a minute,
rounded up: ``src/reprodl/results/reading_time.json``, made by ``tools/reading_time.py``; the
checklist's words counted here by the same rule) and the run time (the seconds the strict gate
spent executing the chapter's cells in the committed suite record
``benchmarks/results/suite_durations.json``, key ``chapters``, rounded up to whole minutes).
Assumed, and said so on the page: :data:`WELCOME`, :data:`OPEN`, :data:`EXERCISE`,
:data:`QUESTIONS` and the breaks. The tables go between ``<!-- timetable:NAME -->`` and
``<!-- /timetable:NAME -->`` in ``chapters/workshop.md``; ``tests/test_workshop.py`` checks that
they equal what this tool makes from the committed records, so that they cannot drift.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "chapters" / "workshop.md"
READING = ROOT / "src" / "reprodl" / "results" / "reading_time.json"
DURATIONS = ROOT / "benchmarks" / "results" / "suite_durations.json"
CHECKLIST = ROOT / "chapters" / "checklist.md"

# Assumptions, in minutes (not measured; workshop.md states each one).
WELCOME = 20  #: welcome, and every participant prints their environment line
OPEN = 3  #: per chapter: open the notebook and start its kernel (Colab: its install cell too)
EXERCISE = 10  #: per exercise: try it, then discuss the answer
QUESTIONS = 10  #: after the checklist
BREAK = 15
LUNCH = 60

#: One line each: what a participant can do after the block.
GOALS = {
    "01_why_runs_differ": "see that runs differ, name the five sources, choose repeat or pin",
    "02_softmax_regression": "train softmax regression and report accuracy, loss, fingerprint",
    "03_seeding": "seed every generator a script uses; know what must be set before start-up",
    "04_batch_order": "measure what the batch order alone changes, and pin it",
    "05_backprop_numpy": "prove a backward pass right; train NumPy code deterministically",
    "06_deep_cnn": "train the deep CNN bit for bit, dropout seeded apart from the weights",
    "07_op_determinism": "know what op determinism promises, what not, and what it costs",
    "08_gpu_hardware": "see why other hardware gives other bits, and what the pins hold",
    "09_divergence": "record two runs and find the first step and variable that differ",
    "10_repeat_experiments": "summarise runs over seeds; compare two variants with paired seeds",
    "11_your_own_training": "apply the recipe to a plain Keras script and `check` it",
    "12_many_replicas": "see why the replica count changes the bits; seed masks per replica",
    "13_another_backend": "pin a Keras-on-JAX run; see where TensorFlow and JAX part",
    "14_serving": "check a saved model for batch invariance; serve it on one fixed batch shape",
}

#: The exercise done in class, per chapter (the page's labels; the others are homework).
EXERCISES = {
    "01_why_runs_differ": "ch1-ex4",
    "02_softmax_regression": "ch2-ex2",
    "03_seeding": "ch3-ex1",
    "04_batch_order": "ch4-ex3",
    "05_backprop_numpy": "ch5-ex3",
    "06_deep_cnn": "ch6-ex3",
    "07_op_determinism": "ch7-ex1",
    "08_gpu_hardware": "ch8-ex1",
    "09_divergence": "ch9-ex3",
    "10_repeat_experiments": "ch10-ex4",
    "11_your_own_training": "ch11-ex1",
    "12_many_replicas": "ch12-ex2",
}

_CHAPTERS = list(GOALS)
#: The plans: chapter stems in order, and ("break", minutes, name) between them.
PLANS: dict[str, list[str | tuple[str, int, str]]] = {
    "full": [
        *_CHAPTERS[0:3],
        ("break", BREAK, "Break"),
        *_CHAPTERS[3:5],
        ("break", LUNCH, "Lunch"),
        *_CHAPTERS[5:8],
        ("break", BREAK, "Break"),
        *_CHAPTERS[8:12],
    ],
    # Chapters 1-4, 7 and 11: each one's prerequisites come before it.
    "half": [
        *_CHAPTERS[0:3],
        ("break", BREAK, "Break"),
        "04_batch_order",
        "07_op_determinism",
        "11_your_own_training",
    ],
}


@dataclass(frozen=True)
class Block:
    """One row of a timetable."""

    what: str  # markdown
    goal: str
    minutes: int
    how: str  # how the minutes add up
    exercise: str  # markdown


def _reading_time():
    """``tools/reading_time.py`` as a module (its word count and rounding)."""
    spec = importlib.util.spec_from_file_location("reading_time", ROOT / "tools/reading_time.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measured() -> tuple[dict[str, int], dict[str, int]]:
    """Reading minutes and run minutes per chapter stem, from the committed records."""
    reading = json.loads(READING.read_text(encoding="utf-8"))["chapters"]
    suite = json.loads(DURATIONS.read_text(encoding="utf-8"))["chapters"]
    read = {Path(name).stem: entry["minutes"] for name, entry in reading.items()}
    run = {Path(e["file"]).stem: math.ceil(e["seconds"] / 60) for e in suite}
    return read, run


def checklist_minutes() -> int:
    """The checklist's reading minutes, counted as tools/reading_time.py counts a chapter."""
    tool = _reading_time()
    return tool.minutes(tool.count_words(CHECKLIST.read_text(encoding="utf-8")))


def blocks(plan: str) -> list[Block]:
    """The rows of ``plan``, welcome and checklist included."""
    read, run = measured()
    goal = "everyone prints their environment line"
    rows = [Block("Welcome and set-up check", goal, WELCOME, f"{WELCOME} assumed", "-")]
    for entry in PLANS[plan]:
        if isinstance(entry, tuple):
            rows.append(Block(entry[2], "", entry[1], f"{entry[1]} assumed", ""))
            continue
        minutes = read[entry] + run[entry] + OPEN + EXERCISE
        how = f"{read[entry]} read + {run[entry]} run + {OPEN} open + {EXERCISE} exercise"
        label = EXERCISES[entry]
        rows.append(Block(f"{{doc}}`{entry}`", GOALS[entry], minutes, how, f"{{numref}}`{label}`"))
    check = checklist_minutes()
    how = f"{check} read + {QUESTIONS} questions"
    goal = "take the checklist to a project of one's own"
    rows.append(Block("{doc}`checklist`; questions", goal, check + QUESTIONS, how, "-"))
    return rows


def _clock(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}"


def table(plan: str) -> str:
    """The markdown of ``plan``'s timetable and its total."""
    lines = ["| Time | Block | Goal | Minutes | Exercise |", "| --- | --- | --- | --- | --- |"]
    start = 0
    for row in blocks(plan):
        end = start + row.minutes
        lines.append(
            f"| {_clock(start)}-{_clock(end)} | {row.what} | {row.goal} | {row.how} "
            f"| {row.exercise} |"
        )
        start = end
    pauses = sum(e[1] for e in PLANS[plan] if isinstance(e, tuple))
    lines += ["", f"Total: {_clock(start)} (h:mm), breaks included ({_clock(pauses)} of breaks)."]
    return "\n".join(lines)


def render(page: str) -> str:
    """``page`` with every plan's table put between its markers."""
    for plan in PLANS:
        pattern = re.compile(
            rf"(<!-- timetable:{plan} -->\n).*?(\n<!-- /timetable:{plan} -->)", re.DOTALL
        )
        if not pattern.search(page):
            raise ValueError(f"{PAGE.name} lacks the markers of the {plan!r} timetable")
        page = pattern.sub(lambda m, plan=plan: m[1] + table(plan) + m[2], page)
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    page = PAGE.read_text(encoding="utf-8")
    new = render(page)
    if args.check:
        print(f"{PAGE.name}: timetables {'up to date' if new == page else 'out of date'}")
        return 0 if new == page else 1
    PAGE.write_text(new, encoding="utf-8")
    for plan in PLANS:
        print(f"{plan}: {table(plan).splitlines()[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
