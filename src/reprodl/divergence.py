"""The old path of :mod:`reprodl.record.compare` (where two records part),
:mod:`reprodl.record.digest_map` (the map of where they differ) and :mod:`reprodl.training.replay`
(recording, replaying and bisecting runs): their names, re-exported. Importing it pins the process,
as :mod:`reprodl.training.replay` does.
"""

from reprodl.record.compare import LIST_LIMIT, Comparison, compare
from reprodl.record.digest_map import (
    CELL_COLOURS,
    CELL_LABELS,
    DIFFERENT,
    GROUP_ABOVE,
    NOT_RECORDED,
    SAME,
    DigestMap,
    digest_map,
    plot_map,
    write_map,
)
from reprodl.training.replay import (
    REPLAY_TIMEOUT,
    Bisection,
    Replay,
    bisect,
    record,
    replay,
    replay_in_subprocess,
    save_replay,
)

__all__ = [
    "CELL_COLOURS",
    "CELL_LABELS",
    "DIFFERENT",
    "GROUP_ABOVE",
    "LIST_LIMIT",
    "NOT_RECORDED",
    "REPLAY_TIMEOUT",
    "SAME",
    "Bisection",
    "Comparison",
    "DigestMap",
    "Replay",
    "bisect",
    "compare",
    "digest_map",
    "plot_map",
    "record",
    "replay",
    "replay_in_subprocess",
    "save_replay",
    "write_map",
]
