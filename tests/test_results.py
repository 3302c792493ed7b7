"""The recorded results ship inside the package and load by name; unknown names list the rest."""

from __future__ import annotations

import pytest

from reprodl import results
from reprodl.errors import RecordError


def test_records_load_by_name_from_the_package():
    assert results.FOLDER.name == "results" and results.FOLDER.parent.name == "reprodl"
    full_run = results.load("cnn_full_run.json")
    assert full_run["command"][:4] == ["python", "-m", "reprodl", "train"]
    assert results.path("cross_cpu").is_dir()


def test_an_unknown_record_names_the_ones_there_are():
    with pytest.raises(RecordError, match="no recorded result 'nothing.json'; the package has: "):
        results.path("nothing.json")
