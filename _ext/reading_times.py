"""MyST substitutions ``{{ reading_01 }}`` ... ``{{ reading_14 }}``: each chapter's reading time
in minutes, read from the committed record ``src/reprodl/results/reading_time.json`` when the
book is built, so that a page listing them (the intro) cannot drift from the chapters' words.
``tools/reading_time.py`` writes the record; ``tests/test_reading_time.py`` keeps it current.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECORD = Path(__file__).resolve().parents[1] / "src" / "reprodl" / "results" / "reading_time.json"


def reading_substitutions(record: Path = RECORD) -> dict[str, str]:
    """``reading_NN`` -> the minutes of the chapter whose file name starts with ``NN_``."""
    chapters = json.loads(record.read_text(encoding="utf-8"))["chapters"]
    return {f"reading_{name[:2]}": str(entry["minutes"]) for name, entry in chapters.items()}


def add_substitutions(app, config) -> None:
    """``config-inited`` handler: the reading times join the book's other substitutions."""
    config.myst_substitutions = {**reading_substitutions(), **(config.myst_substitutions or {})}


def setup(app) -> dict[str, Any]:
    app.connect("config-inited", add_substitutions)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
