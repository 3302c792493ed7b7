"""Record the batch invariance of the book's four models per setting (chapter 14).

    python tools/batch_invariance.py [--emulate MODEL ...] [--add | --keep] [--out FILE]

Trains the models once (:func:`reprodl.book.batch_invariance.build_models`, under the pins, so
every build gives the same bits), then measures them under each setting in a fresh interpreter,
natively, and under each ``--emulate``d CPU model (QEMU user mode) with the pinned setting only,
two emulators at a time. With ``--add`` the native runs are not measured again: the emulated runs
are added to (or replace those in) the existing record. With ``--keep`` the record's runs of other
real CPUs (and its emulated ones) are kept, and this CPU's native runs added or replaced: the
record then compares real CPUs. Writes the record atomically.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reprodl import _io, results
from reprodl.book import batch_invariance as bi
from reprodl.book import crosscheck
from reprodl.env import cpu, report

OUT = results.path("batch_invariance.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--emulate", nargs="*", default=[], metavar="MODEL")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--add", action="store_true", help="keep the record's native runs")
    how.add_argument("--keep", action="store_true", help="keep the runs of other real CPUs")
    args = parser.parse_args()
    start = time.perf_counter()
    old = results.load(args.out.name) if args.add or args.keep else {"runs": []}
    here = crosscheck.label({"emulated": None, "cpu": cpu.describe().to_dict()})
    runs = [
        r
        for r in old["runs"]
        if (args.add and r["emulated"] not in args.emulate)
        or (args.keep and crosscheck.label(r) != here)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bi.build_models(folder)
        for setting in () if args.add else bi.SETTINGS:
            runs.append({"emulated": None, **bi.run_setting(setting, folder)})
            print(setting, "natively:", *bi.table(runs[-1]["models"]), sep="\n  ", flush=True)
        with ThreadPoolExecutor(max_workers=2) as pool:
            emulated = pool.map(
                lambda m: {"emulated": m, **bi.run_setting(bi.SETTINGS[0], folder, emulate=m)},
                args.emulate,
            )
            for run in emulated:
                runs.append(run)
                print(run["emulated"], *bi.table(run["models"]), sep="\n  ", flush=True)
    record = {
        "what": "batch invariance of the book's models: one example alone against in batches",
        "date": datetime.date.today().isoformat(),
        "versions": report.installed_versions(),
        "sizes": bi.SIZES,
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 1),
    }
    _io.write_json(args.out, record, sort_keys=True)
    print(f"record: {args.out}")


if __name__ == "__main__":
    main()
