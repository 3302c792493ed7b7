"""Train a run and record it, replay an interval of a recorded run, and bisect two runs down to
the first step and variable where they part.

:func:`bisect` narrows :func:`~reprodl.record.compare.compare`'s coarse answer down to one step.
It restarts both runs from their last agreeing checkpoint, replays only the interval up to the
first disagreeing digest, compares the full state after every step, and reports the first
differing step and variable with the largest absolute weight difference there and at the end of
the interval. Each side runs in this process or, when it needs process-global settings this
process cannot take (TensorFlow's intra-op thread count is fixed once an op has run), in a process
of its own (``python -m reprodl replay``, through :mod:`reprodl._proc`, with a timeout). Each
replay is checked against its own record, so a hidden setting that the record does not capture
shows up as "does not reproduce its record" instead of a wrong answer.

Records of a Keras callback (:class:`reprodl.keras.RecordRun`) compare like the loop's own; they
cannot be replayed (the callback cannot know how to rebuild the run), so :func:`bisect` refuses
them with a :class:`~reprodl.errors.RecordError`. Part of the book's engine: importing it pins
the process.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reprodl import _proc
from reprodl.errors import RecordError, SubprocessError
from reprodl.record import fingerprint, runrecord
from reprodl.record.compare import Comparison, compare, difference_text
from reprodl.record.runrecord import RunRecord

if TYPE_CHECKING:
    from reprodl.data import Split
    from reprodl.training import Checkpoint, RunSpec

# --- recording runs in this process ----------------------------------------------------------


def record(
    spec: RunSpec,
    path: str | os.PathLike[str],
    *,
    data: Split | None = None,
    digest_every: int = 0,
    checkpoint_every: int = 0,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    command: list[str] | None = None,
) -> RunRecord:
    """Train ``spec`` (a :class:`~reprodl.training.RunSpec`) in this process and save its record.

    ``data`` is the training split (default: MNIST's). Checkpoints go to ``checkpoint_dir``
    (default: the record's name with ``.ckpt``). Returns the saved record.
    """
    from reprodl import training

    path = Path(path)
    if data is None:
        from reprodl.data import load_mnist

        data = load_mnist().train
    spec = spec.resolved()
    folder = Path(checkpoint_dir) if checkpoint_dir else path.with_suffix(".ckpt")
    _, trec = training.run(
        spec,
        data,
        digest_every=digest_every,
        checkpoint_every=checkpoint_every,
        checkpoint_dir=folder if checkpoint_every else None,
    )
    return runrecord.save_run(
        spec=spec,
        result=trec,
        path=path,
        digest_every=digest_every,
        checkpoint_every=checkpoint_every,
        checkpoint_dir=folder,
        command=command,
    )


# --- replaying an interval -------------------------------------------------------------------


@dataclass
class Replay:
    """One side's replay: the state after every step ``start..end`` and the losses in between."""

    start: int
    end: int
    losses: np.ndarray  # steps start+1 .. end
    names: list[str]
    states: list[list[np.ndarray]]  # states[j][i]: variable i after step start + j
    where: str = "in this process"

    def state_digests(self, j: int) -> dict[str, str]:
        """The digest of each variable after step ``start + j``."""
        return {
            n: fingerprint.array_digest(a) for n, a in zip(self.names, self.states[j], strict=True)
        }


@contextmanager
def _global_random_state_kept() -> Iterator[None]:
    """Restore NumPy's and Python's global random state afterwards (a replay resets them)."""
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)


def replay(rec: RunRecord, start: int, end: int, *, data: Split | None = None) -> Replay:
    """Replay steps ``start + 1 .. end`` of ``rec`` in this process from its checkpoint at
    ``start``, keeping the full state after every step. The process must have the run's
    process-global settings (:func:`reprodl.training.apply_process_settings` sets them if it can).
    """
    from reprodl import training

    _check_replayable(rec)
    spec = training.RunSpec.from_dict(rec.meta["run"]).resolved()
    ckpt = _checkpoint(rec, start)
    if data is None:
        from reprodl.data import load_mnist

        data = load_mnist().train
    training.apply_process_settings(spec)
    states = [list(ckpt.model.values())]
    with _global_random_state_kept():
        model, optimizer, stream = training.build(spec, len(data))

        def keep(step: int, loss: float) -> None:
            states.append(list(training.state_arrays(model).values()))

        trec = training.train(
            model,
            data,
            steps=end,
            batch_size=spec.batch_size,
            optimizer=optimizer,
            order_seed=spec.seed,
            stream=stream,
            resume=ckpt,
            on_step=keep,
        )
    return Replay(start, end, trec.losses, list(ckpt.model), states)


def save_replay(rep: Replay, path: str | os.PathLike[str]) -> None:
    """Write ``rep`` to ``path`` as ``.npz`` (no pickle), atomically: what ``python -m reprodl
    replay`` hands back to :func:`replay_in_subprocess`."""
    from reprodl._io import atomic_write

    arrays = {
        "start": np.array(rep.start),
        "end": np.array(rep.end),
        "losses": rep.losses,
        "names": np.array(rep.names, dtype=str),
    }
    for j, state in enumerate(rep.states):
        for i, a in enumerate(state):
            arrays[f"state/{j}/{i}"] = a
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _load_replay(path: str | os.PathLike[str], where: str) -> Replay:
    with np.load(path, allow_pickle=False) as z:
        start, end = int(z["start"]), int(z["end"])
        names = [str(n) for n in z["names"]]
        states = [[z[f"state/{j}/{i}"] for i in range(len(names))] for j in range(end - start + 1)]
        return Replay(start, end, z["losses"], names, states, where)


#: Seconds a replay in a process of its own may take before it is stopped.
REPLAY_TIMEOUT = 1800.0


def replay_in_subprocess(
    rec: RunRecord, start: int, end: int, reason: str = "", *, timeout: float = REPLAY_TIMEOUT
) -> Replay:
    """:func:`replay` in a fresh ``python -m reprodl replay`` process (own thread settings), in a
    process group of its own that is stopped after ``timeout`` seconds
    (:class:`SubprocessError`)."""
    if not rec.source:
        raise RecordError("a record must be saved to a file to be replayed in another process")
    with tempfile.TemporaryDirectory(prefix="reprodl-replay-") as tmp:
        out = Path(tmp) / "replay.npz"
        argv = ["-m", "reprodl", "replay", rec.source, "--start", str(start), "--end", str(end)]
        proc = _proc.run([sys.executable, *argv, "--out", str(out)], timeout=timeout)
        if proc.timed_out:
            raise SubprocessError(
                f"replaying {rec.name} {proc.status}; the end of its stderr:\n{proc.tail()}"
            )
        if proc.returncode != 0:
            raise SubprocessError(
                f"replaying {rec.name} failed (exit status {proc.returncode}):\n{proc.stderr}"
            )
        where = "in a process of its own" + (f" (it needs {reason})" if reason else "")
        return _load_replay(out, where)


def _checkpoint(rec: RunRecord, step: int) -> Checkpoint:
    """The checkpoint of ``rec`` at ``step``, checked against the record's digests there."""
    from reprodl import training

    folder = rec.checkpoint_dir()
    if folder is None:
        raise RecordError(f"{rec.name}: no checkpoints (record the run with checkpoints)")
    try:
        ckpt = training.load_checkpoint(training.checkpoint_path(folder, step))
    except training.CheckpointError as exc:
        raise RecordError(f"{rec.name}: {exc}") from None
    if ckpt.step != step or list(ckpt.model) != rec.variable_names:
        raise RecordError(f"{rec.name}: checkpoint {ckpt.path} is not this run's step {step}")
    digests = {n: fingerprint.array_digest(a) for n, a in ckpt.model.items()}
    if step in rec.digests and digests != rec.digests[step]:
        raise RecordError(f"{rec.name}: checkpoint {ckpt.path} does not match the record's digests")
    return ckpt


def _reproduces(rec: RunRecord, rep: Replay) -> str | None:
    """None if the replay matches the record's losses and digests; else what differs."""
    want = rec.losses[rep.start : rep.end].view(np.uint32)
    got = np.asarray(rep.losses, dtype=np.float32).view(np.uint32)
    if len(got) != len(want) or not np.array_equal(got, want):
        bad = int(np.argmax(got != want)) + rep.start + 1 if len(got) == len(want) else rep.end
        return f"its loss at step {bad} differs from the record"
    for step in range(rep.start, rep.end + 1):
        if step in rec.digests and rep.state_digests(step - rep.start) != rec.digests[step]:
            return f"its state after step {step} differs from the record"
    return None


@dataclass
class Bisection:
    """What :func:`bisect` found at per-step granularity inside the replayed interval."""

    comparison: Comparison
    start: int | None = None
    end: int | None = None
    checkpoint_differences: list[str] = field(default_factory=list)
    replays: tuple[Replay, Replay] | None = None
    reproduced: tuple[str | None, str | None] = (None, None)
    first_step: int | None = None  # first step whose state (after the step) differs
    first_variable: str | None = None
    first_differs: dict[str, int | None] = field(default_factory=dict)
    #: For float variables: max ``|A - B|`` after each step ``start..end`` (index 0 is ``start``).
    weight_differences: dict[str, np.ndarray] = field(default_factory=dict)
    first_loss_step: int | None = None

    @property
    def diverged(self) -> bool:
        """The two records differ (else there was nothing to bisect)."""
        return not self.comparison.identical

    def lines(self) -> list[str]:
        """The report: plain lines, the same every time for the same two records."""
        if not self.diverged:
            return ["bisect: nothing to do, the records are identical"]
        s, e = self.start, self.end
        out = [
            f"bisect: replayed steps {s + 1}..{e} of both runs from their checkpoints at step {s}"
        ]
        for label, rep, problem in zip("AB", self.replays, self.reproduced, strict=True):
            verdict = "reproduces its record" if problem is None else f"does NOT: {problem}"
            out.append(f"  {label}: {rep.where}; {verdict}")
        if self.checkpoint_differences:
            out.append(
                f"checkpoints at step {s} differ in: {', '.join(self.checkpoint_differences)}"
            )
        else:
            out.append(f"checkpoints at step {s}: identical")
        if self.first_step is None:
            out.append(f"state: identical after every step {s}..{e}")
        else:
            note = " (the checkpoints already differ)" if self.first_step == s else ""
            out.append(f"first differing step: {self.first_step}{note}")
            out.append(f"first differing variable: {self.first_variable}")
        if self.first_loss_step is not None:
            out.append(f"losses in the replay: first differ at step {self.first_loss_step}")
        else:
            out.append("losses in the replay: identical")
        if self.first_step is not None:
            rows = [("variable", "first differs", "max |A-B| there", f"max |A-B| at step {e}")]
            for name, first in self.first_differs.items():
                if first is None:
                    rows.append((name, "never", "", ""))
                elif name in self.weight_differences:
                    w = self.weight_differences[name]
                    rows.append(
                        (
                            name,
                            f"step {first}",
                            difference_text(w[first - s]),
                            difference_text(w[-1]),
                        )
                    )
                else:
                    rows.append((name, f"step {first}", "(not a float)", ""))
            widths = [max(len(r[i]) for r in rows) for i in range(4)]
            out += [
                "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
            ]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _check_replayable(rec: RunRecord) -> None:
    """Raise :class:`RecordError` unless ``rec`` holds what a replay needs (a single-device
    run's RunSpec)."""
    problem = rec.replay_problem
    if problem is not None:
        raise RecordError(f"{rec.name}: {problem}")


def _isolate(rec: RunRecord) -> list[str]:
    from reprodl import training

    return training.process_settings_differ(training.RunSpec.from_dict(rec.meta["run"]))


def bisect(
    a: RunRecord | str | os.PathLike[str],
    b: RunRecord | str | os.PathLike[str],
    *,
    isolate: bool | None = None,
    data: Split | None = None,
) -> Bisection:
    """Find the first step (and variable) where two recorded runs differ, replaying from their
    last agreeing checkpoint with per-step comparison of the full state.

    ``isolate=None`` replays a side in its own process only when it needs process-global settings
    this process does not have; ``True`` always does (``data`` must then be MNIST's); ``False``
    never does. ``data`` is the training split for in-process replays (default: MNIST's).
    """
    a = a if isinstance(a, RunRecord) else runrecord.load(a)
    b = b if isinstance(b, RunRecord) else runrecord.load(b)
    for rec in (a, b):
        _check_replayable(rec)
    cmp = compare(a, b)
    result = Bisection(comparison=cmp)
    if cmp.identical:
        return result
    a, b = cmp.a, cmp.b
    start, end = _bisect_interval(cmp)
    ckpt_a, ckpt_b = _checkpoint(a, start), _checkpoint(b, start)
    ra = _replay_side(a, start, end, isolate=isolate, data=data)
    rb = _replay_side(b, start, end, isolate=isolate, data=data)
    result.start, result.end = start, end
    result.checkpoint_differences = ckpt_a.differences(ckpt_b)
    result.replays = (ra, rb)
    result.reproduced = (_reproduces(a, ra), _reproduces(b, rb))
    _compare_replays(result, a.variables, ra, rb)
    return result


def _bisect_interval(cmp: Comparison) -> tuple[int, int]:
    """The steps to replay: from the last common checkpoint before the first difference to the
    first recorded step after it where the digests (else the losses) differ."""
    a, b = cmp.a, cmp.b
    common = sorted(set(a.checkpoint_steps()) & set(b.checkpoint_steps()))
    for rec in (a, b):
        if not rec.checkpoint_steps():
            raise RecordError(f"{rec.name}: no checkpoints (record the run with checkpoints)")
    if not common:
        raise RecordError(f"{a.name} and {b.name}: no checkpoint step in common")
    target = cmp.first_digest_step if cmp.first_digest_step is not None else cmp.first_loss_step
    start = max([c for c in common if c < target], default=0) if target else 0
    later = [
        s
        for s in cmp.digest_steps
        if s > start and any(a.digests[s][n] != b.digests[s][n] for n in a.variable_names)
    ]
    if later:
        return start, later[0]
    if cmp.first_loss_step is not None and cmp.first_loss_step > start:
        return start, cmp.first_loss_step
    return start, min(start + 1, a.steps)


def _replay_side(
    rec: RunRecord, start: int, end: int, *, isolate: bool | None, data: Split | None
) -> Replay:
    """Replay ``start..end`` of ``rec`` in this process or, as ``isolate`` says, in its own."""
    reasons = _isolate(rec)
    if isolate or (isolate is None and reasons):
        why = "; ".join(reasons) if isolate is None else ""
        return replay_in_subprocess(rec, start, end, why)
    return replay(rec, start, end, data=data)


def _compare_replays(
    result: Bisection, variables: list[dict[str, Any]], ra: Replay, rb: Replay
) -> None:
    """Fill ``result`` in from the two replays: per variable, the first differing step and the
    largest weight difference after every step; the first differing step, variable and loss."""
    start = result.start
    for i, info in enumerate(variables):
        name = info["name"]
        diffs = [
            sa[i].tobytes() != sb[i].tobytes() for sa, sb in zip(ra.states, rb.states, strict=True)
        ]
        result.first_differs[name] = start + diffs.index(True) if any(diffs) else None
        if np.issubdtype(np.dtype(info["dtype"]), np.floating):
            result.weight_differences[name] = _max_abs_differences(ra, rb, i)
    firsts = [(s, n) for n, s in result.first_differs.items() if s is not None]
    if firsts:
        step = min(s for s, _ in firsts)
        result.first_step = step
        result.first_variable = next(n for s, n in firsts if s == step)
    la = np.asarray(ra.losses, dtype=np.float32).view(np.uint32)
    lb = np.asarray(rb.losses, dtype=np.float32).view(np.uint32)
    if (la != lb).any():
        result.first_loss_step = start + int(np.argmax(la != lb)) + 1


def _max_abs_differences(ra: Replay, rb: Replay, i: int) -> np.ndarray:
    """Max ``|A - B|`` of float variable ``i`` after every replayed step (0 for an empty one)."""
    return np.array(
        [
            float(np.max(np.abs(sa[i].astype(np.float64) - sb[i].astype(np.float64))))
            if sa[i].size
            else 0.0
            for sa, sb in zip(ra.states, rb.states, strict=True)
        ]
    )
