"""``python -m reprodl replay RECORD --start S --end E --out FILE``: replay part of a recorded run
in a process of its own, with the record's settings (what ``bisect`` runs for each side).

Not listed among the commands: ``python -m reprodl`` hands ``replay ...`` to :func:`main` here,
which ``python -m reprodl.cli.replay`` also runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from reprodl.cli import _args
from reprodl.errors import RecordError

PROG = "python -m reprodl replay"


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``replay``."""
    p = argparse.ArgumentParser(
        prog=PROG, description="replay part of a recorded run (used by bisect)"
    )
    p.add_argument("record", metavar="RECORD")
    p.add_argument("--start", type=_args.seed, required=True, help="checkpoint step to start from")
    p.add_argument("--end", type=_args.positive_int, required=True, help="last step to replay")
    p.add_argument("--out", required=True, help="where to write the states (.npz)")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run=run, parser=p, command="replay")
    return p


def run(args: argparse.Namespace) -> int:
    """Replay steps ``start+1..end`` of the record and save the states for ``bisect``."""
    from reprodl import runtime, training
    from reprodl.record import runrecord
    from reprodl.training import replay

    rec = runrecord.load(args.record)
    if rec.replay_problem is not None:
        raise RecordError(f"{rec.name}: {rec.replay_problem}")
    spec = training.RunSpec.from_dict(rec.meta["run"]).resolved()
    runtime.setup(spec.seed, op_determinism=spec.op_determinism)
    training.apply_process_settings(spec)
    rep = replay.replay(rec, args.start, args.end)
    replay.save_replay(rep, args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; the exit status as for every command (:func:`reprodl.cli.main`)."""
    from reprodl.cli import execute

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.argv = [*PROG.split(), *(sys.argv[1:] if argv is None else argv)]
    return execute(args)


if __name__ == "__main__":
    sys.exit(main())
