"""Time a workshop participant's set-up, as chapters/workshop.md tells it, on this machine.

    python tools/participant_setup.py    # writes src/reprodl/results/participant_setup.json

A fresh virtual environment, ``pip install -r requirements-chapters.txt .`` (no pip cache, so every
wheel is fetched from the package index this machine is configured for), then the first thing a
chapter does: ``reprodl.setup`` and the environment line. The record holds the seconds of each
step, the download's size, the machine and pip's index, so that a timetable can quote a measured
set-up rather than a guess; a laptop on another network will take another time.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "src" / "reprodl" / "results" / "participant_setup.json"
CHECK = "import reprodl; reprodl.setup(0); print(reprodl.environment_line())"


def _timed(command: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return round(time.perf_counter() - start, 1), result


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> int:
    from reprodl import cpu

    with tempfile.TemporaryDirectory(prefix="reprodl-participant-") as tmp:
        venv = Path(tmp) / "venv"
        python = venv / "bin" / "python"
        steps = {}
        steps["venv"], _ = _timed([sys.executable, "-m", "venv", str(venv)])
        install = [str(python), "-m", "pip", "install", "--no-cache-dir", "--quiet"]
        install += ["-r", str(ROOT / "requirements-chapters.txt"), str(ROOT)]
        steps["pip_install"], _ = _timed(install)
        env = {"PYTHONHASHSEED": "0", "PATH": str(venv / "bin"), "HOME": str(Path.home())}
        steps["first_cell"], check = _timed([str(python), "-c", CHECK], env=env, cwd=tmp)
        installed = _size(venv)
    index = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True
    ).stdout
    record = {
        "what": "a participant's set-up: fresh venv, pip install -r requirements-chapters.txt ., "
        "then reprodl.setup and the environment line",
        "date": date.today().isoformat(),
        "cpu": cpu.describe().to_dict(),
        "python": platform.python_version(),
        "pip_config": sorted(line for line in index.splitlines() if "index" in line),
        "seconds": steps,
        "total_seconds": round(sum(steps.values()), 1),
        "total_minutes": round(sum(steps.values()) / 60, 1),
        "installed_mib": round(installed / 2**20),
        "environment_line": check.stdout.strip().splitlines()[-1],
    }
    RECORD.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
