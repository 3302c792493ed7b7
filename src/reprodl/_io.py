"""File writing shared by the record formats: JSON, written atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: str | os.PathLike[str], payload: Any, *, sort_keys: bool = False) -> Path:
    """Write ``payload`` as indented JSON to ``path`` atomically (temp file, then rename)."""
    from reprodl.training import atomic_write  # moves here with the package layout of DESIGN.md

    text = json.dumps(payload, indent=1, sort_keys=sort_keys) + "\n"
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return Path(path)
