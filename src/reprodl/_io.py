"""File reading and writing shared by every file format: atomic writes and strict JSON."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reprodl.errors import RecordError, ReprodlError


def atomic_write(path: str | os.PathLike[str], write: Callable[[Any], None]) -> None:
    """Write a file through ``write(binary_file)`` into a temp file, then rename it into place.

    A crash leaves either the old file or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], payload: Any, *, sort_keys: bool = False) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (temp file, then rename)."""
    text = json.dumps(payload, indent=1, sort_keys=sort_keys) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return Path(path)


def read_json(path: str | os.PathLike[str], error: type[ReprodlError] = RecordError) -> Any:
    """Parse a JSON file; ``error`` says why it cannot be (missing, empty, cut short, corrupt),
    naming the file. ``NaN`` and ``Infinity`` are rejected: they are not JSON."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise error(f"{where}: no such file") from None
    except OSError as exc:
        raise error(f"{where}: cannot be read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{where}: not a text file (not UTF-8)") from None
    if not text.strip():
        raise error(f"{where}: the file is empty")

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        end = text.rstrip()  # a record ends with "}": a file that does not was cut short
        cut = exc.pos >= len(end) or not end.endswith(("}", "]"))
        hint = "the file ends too early (truncated?)" if cut else f"line {exc.lineno}"
        # The decoder's message without its dangling "... at" (its position followed it): the
        # hint says where ("Unterminated string starting at" -> "Unterminated string").
        msg = exc.msg.removesuffix(" at").removesuffix(" starting")
        raise error(f"{where}: not valid JSON, {hint}: {msg}") from None
    except ValueError as exc:
        raise error(f"{where}: not valid JSON: {exc}") from None
