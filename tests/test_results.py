"""The recorded results ship inside the package and load by name; unknown names list the rest."""

from __future__ import annotations

import pytest

from reprodl import results
from reprodl.errors import RecordError


def test_every_record_ships_in_the_wheel():
    """Each file under ``reprodl/results`` matches the package data of ``pyproject.toml`` (a
    record in a new subfolder would otherwise be missing from the installed package)."""
    import fnmatch
    import tomllib

    from support import ROOT

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["reprodl.results"]
    files = [
        p.relative_to(results.FOLDER).as_posix()
        for p in results.FOLDER.rglob("*")
        if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    ]
    assert files

    def shipped(file: str, pattern: str) -> bool:  # a glob as setuptools reads it: '*' stops at /
        parts, globs = file.split("/"), pattern.split("/")
        return len(parts) == len(globs) and all(map(fnmatch.fnmatchcase, parts, globs))

    unshipped = [f for f in files if not any(shipped(f, pat) for pat in patterns)]
    assert not unshipped, f"not in [tool.setuptools.package-data]: {unshipped}"


def test_records_load_by_name_from_the_package():
    full_run = results.load("cnn_full_run.json")
    assert full_run["command"][:4] == ["python", "-m", "reprodl", "train"]
    assert results.path("cross_cpu").is_dir()


def test_an_unknown_record_names_the_ones_there_are():
    with pytest.raises(RecordError, match="no recorded result 'nothing.json'; the package has: "):
        results.path("nothing.json")


def test_the_recorder_overhead_record_is_consistent_with_its_runs():
    import statistics

    rec = results.load("recorder_overhead.json")
    assert rec["model"] == "cnn" and rec["steps"] > 0 and rec["repeats"] >= 1
    for variant, median in rec["median_steps_per_second"].items():
        runs = [r["steps_per_second"] for r in rec["runs"] if r["variant"] == variant]
        assert len(runs) == rec["repeats"] and statistics.median(runs) == median
    none = rec["median_steps_per_second"]["none"]
    for variant, percent in rec["overhead_percent"].items():
        assert percent == pytest.approx(100 * (none / rec["median_steps_per_second"][variant] - 1))
    every = {r["variant"]: r.get("every") for r in rec["runs"]}
    assert every == {"none": None, "every-1": 1, "default": rec["default_every"]}
