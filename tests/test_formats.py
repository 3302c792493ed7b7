"""``reprodl._formats``: the header, structure and file handling every versioned JSON format
shares (run records and decompositions use it)."""

from __future__ import annotations

import json

import pytest

from reprodl import _formats, decomposition, records
from reprodl.errors import RecordError

FMT = _formats.Format("reprodl.example", "example file", 2, (1, 2), "decomposition")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1], r"x\.json: not a example file \(a JSON list, not an object\)"),
        ({}, r"no 'format' field; expected 'reprodl.example'"),
        ({"format": "other"}, r"\(format 'other', expected 'reprodl.example'\)"),
        ({"format": "reprodl.example"}, r"missing or invalid 'version' \(expected 2\)"),
        ({"format": "reprodl.example", "version": True}, r"invalid 'version'"),
        (
            {"format": "reprodl.example", "version": 3},
            r"example file format version 3 is not supported \(this reprodl reads versions "
            r"1 and 2; a newer reprodl may read it\)",
        ),
    ],
)
def test_a_bad_header_is_named(payload, message):
    with pytest.raises(RecordError, match=message):
        FMT.check_header(payload, "x.json")


def test_a_good_header_gives_its_version():
    assert FMT.check_header({**FMT.header(), "rest": 1}, "x.json") == 2
    assert FMT.check_header({"format": "reprodl.example", "version": 1}, "x.json") == 1


def test_save_writes_nothing_that_loading_would_reject(tmp_path):
    path = tmp_path / "out.json"
    path.write_text('{"kept": true}\n')

    def rejects(payload, where):
        raise RecordError(f"{where}: rejected")

    with pytest.raises(RecordError, match="out.json: rejected"):
        _formats.save(path, {"a": 1}, rejects)
    assert path.read_text() == '{"kept": true}\n'
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_load_names_an_unreadable_file_with_the_formats_error(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text('{"format": "reprodl.example", "vers')
    with pytest.raises(RecordError, match="cut.json: not valid JSON, the file ends too early"):
        _formats.load(path, FMT, lambda payload, where: payload)


def test_the_package_formats_share_the_header():
    assert decomposition.FILE_FORMAT.header() == {"format": decomposition.FORMAT, "version": 1}
    assert json.loads(json.dumps(decomposition.FILE_FORMAT.header()))["format"] == (
        "reprodl.decomposition"
    )
    assert records.FORMAT == "reprodl.run-record"
