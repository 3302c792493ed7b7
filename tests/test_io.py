"""Atomic writes: a crash while writing leaves the old file (or none), never half a file."""

from __future__ import annotations

import json
import os

import pytest

from reprodl import _io
from reprodl.errors import RecordError, ReprodlError


def test_write_then_read_round_trip(tmp_path):
    path = _io.write_json(tmp_path / "sub" / "a.json", {"x": [1, 2.5]})
    assert _io.read_json(path) == {"x": [1, 2.5]}
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_crash_while_writing_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = _io.write_json(tmp_path / "a.json", {"old": True})

    def crash(fh):
        fh.write(b'{"new": ')
        raise KeyboardInterrupt("interrupted while writing")  # not only an Exception

    with pytest.raises(KeyboardInterrupt, match="interrupted while writing"):
        _io.atomic_write(path, crash)
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_crash_before_the_first_write_creates_nothing(tmp_path):
    def crash(fh):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _io.atomic_write(tmp_path / "b.json", crash)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b'{"a": 1', "the file ends too early"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
        (b"\xff\xfe", "not a text file"),
        (b'{"a": 1}}', "not valid JSON, line 1"),
    ],
)
def test_read_json_names_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(RecordError, match=f"bad.json: .*{message}"):
        _io.read_json(path)


def test_read_json_raises_the_error_class_asked_for(tmp_path):
    class OtherError(ReprodlError):
        pass

    with pytest.raises(OtherError, match="missing.json: no such file"):
        _io.read_json(tmp_path / "missing.json", error=OtherError)
