"""Versioned JSON files: the one header (``format``, ``version``), its check, the schema check,
and atomic saving that never writes what loading would reject.

Each format (run records, decompositions, crosscheck records) keeps what its fields mean in its
own module and describes itself here with a :class:`Format`; reading and writing the header, the
structure and the file are done once, here, with the same messages for every format.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from reprodl import _io, schemas
from reprodl.errors import RecordError, ReprodlError

T = TypeVar("T")


@dataclass(frozen=True)
class Format:
    """A versioned JSON file format: its name in the file, what a reader calls it, the version
    written, the versions read, its schema in :mod:`reprodl.schemas` and its error type."""

    name: str
    noun: str
    version: int
    reads: tuple[int, ...]
    schema: str
    error: type[ReprodlError] = RecordError

    def header(self) -> dict[str, Any]:
        """The fields every file of this format starts with."""
        return {"format": self.name, "version": self.version}

    def fail(self, where: str, problem: str) -> NoReturn:
        raise self.error(f"{where}: {problem}")

    def check_header(self, payload: Any, where: str) -> int:
        """The version of ``payload``, once it is an object of this format that this package
        reads; otherwise the format's error, ``WHERE: what is wrong``."""
        if not isinstance(payload, dict):
            kind = type(payload).__name__
            self.fail(where, f"not a {self.noun} (a JSON {kind}, not an object)")
        if "format" not in payload:
            self.fail(where, f"not a {self.noun} (no 'format' field; expected {self.name!r})")
        if payload["format"] != self.name:
            found = payload["format"]
            self.fail(where, f"not a {self.noun} (format {found!r}, expected {self.name!r})")
        version = payload.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            self.fail(where, f"missing or invalid 'version' (expected {self.version})")
        if version not in self.reads:
            reads = " and ".join(map(str, self.reads))
            plural = "s" if len(self.reads) > 1 else ""
            self.fail(
                where,
                f"{self.noun} format version {version} is not supported (this reprodl reads "
                f"version{plural} {reads}; a newer reprodl may read it)",
            )
        return version

    def check_structure(self, payload: Any, where: str) -> None:
        """The format's error unless ``payload`` has the structure its schema describes."""
        schemas.check(payload, self.schema, where, error=self.error)


def save(
    path: str | os.PathLike[str],
    payload: Any,
    reads: Callable[[Any, str], object],
    *,
    sort_keys: bool = False,
) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically, after ``reads(payload, where)``
    accepted it as loading would read it back (nothing is written that cannot be read); returns
    the path. A NaN or infinity in ``payload`` is a ``ValueError``: it is not JSON."""
    text = json.dumps(payload, indent=1, allow_nan=False, sort_keys=sort_keys) + "\n"
    reads(json.loads(text), str(path))
    _io.atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return Path(path)


def load(path: str | os.PathLike[str], fmt: Format, reads: Callable[[Any, str], T]) -> T:
    """``reads(payload, path)`` of the JSON in ``path`` (``fmt``'s error if it is unreadable)."""
    return reads(_io.read_json(path, error=fmt.error), str(path))
