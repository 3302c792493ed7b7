"""Find where two runs diverge: the first step, the first variable, and how large the gap grows.

The usual way to hunt a run that matches for a while and then drifts is print statements until the
first difference shows. This module does it from two run records (:mod:`reprodl.records`):

- :func:`compare` reads the per-step losses and the per-variable digests and reports the first step
  whose loss differs (bit for bit), the last recorded step where every variable still agrees, the
  first one where some do not, which variable comes first, and the loss difference at every step.
  Losses compare by their bits: two NaNs with the same bits are equal, a NaN against a number is a
  difference whose size is undefined (NaN), and the report says which side is NaN.
- :func:`bisect` narrows a coarse answer down to one step. It restarts both runs from their last
  agreeing checkpoint, replays only the interval up to the first disagreeing digest, compares the
  full state after every step, and reports the first differing step and variable with the largest
  absolute weight difference there and at the end of the interval. Each side runs in this process
  or, when it needs process-global settings this process cannot take (TensorFlow's intra-op thread
  count is fixed once an op has run), in a process of its own (``python -m reprodl replay``). Each
  replay is checked against its own record, so a hidden setting that the record does not capture
  shows up as "does not reproduce its record" instead of a wrong answer.

Records of a Keras callback (:class:`reprodl.keras.RecordRun`) compare like the loop's own; they
cannot be replayed (the callback cannot know how to rebuild the run), so :func:`bisect` refuses
them with a :class:`~reprodl.errors.RecordError`.

- :func:`digest_map` and :func:`plot_map` show the digests of two records at a glance: one row per
  variable, one column per recorded step, each cell "same digest", "different" or "not recorded"
  (a step or variable only one record has), the first difference marked.

``python -m reprodl compare A B`` and ``python -m reprodl bisect A B`` print the same reports;
``compare A B --plot map.png`` also writes the map.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import os
import random
import shlex
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reprodl import _proc, fingerprint, records
from reprodl.errors import RecordError, SubprocessError, UsageError
from reprodl.records import RunRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from reprodl.data import Split
    from reprodl.training import Checkpoint, RunSpec

#: How many variable names a report lists before it says "...".
LIST_LIMIT = 6


def _fmt(x: float) -> str:
    from reprodl.fingerprint import format_float

    return format_float(x)


def _fmt_diff(x: float) -> str:
    """A difference at full float32 precision, in scientific notation (they are often tiny)."""
    if x == 0:
        return "0"
    return np.format_float_scientific(np.float32(x), unique=True, trim="-")


def _flatten(meta: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _meta_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return shlex.join(value)
    return "-" if value is None else str(value)


def _names_text(names: list[str]) -> str:
    shown = ", ".join(names[:LIST_LIMIT])
    return shown + (f", ... ({len(names) - LIST_LIMIT} more)" if len(names) > LIST_LIMIT else "")


@dataclass
class Comparison:
    """What :func:`compare` found. Steps count from 1; digest step 0 is the state before it."""

    a: RunRecord
    b: RunRecord
    meta_differences: list[tuple[str, Any, Any]]
    loss_differs: np.ndarray  # bool per step: the float32 bits differ
    loss_difference: np.ndarray  # |A - B| per step, float64: 0 where equal, NaN against a NaN
    first_loss_step: int | None
    digest_steps: list[int]
    first_digest_step: int | None  # first recorded step where some variable's digest differs
    last_agreeing_step: int | None  # last recorded step before it where all agree
    differing_variables: list[str]  # at first_digest_step, in the model's order

    @property
    def identical(self) -> bool:
        """Every loss and every recorded digest agree, bit for bit."""
        return self.first_loss_step is None and self.first_digest_step is None

    @property
    def first_step(self) -> int | None:
        """The earliest step with a visible difference (a loss, or a digest after the step)."""
        found = [s for s in (self.first_loss_step, self.first_digest_step) if s is not None]
        return min(found) if found else None

    @property
    def first_variable(self) -> str | None:
        """The first variable, in the model's order, that differs at :attr:`first_digest_step`."""
        return self.differing_variables[0] if self.differing_variables else None

    def loss_gap(self, step: int) -> str:
        """``|A-B|`` of the losses of ``step`` as report text; says which side is NaN if one is."""
        d = self.loss_difference[step - 1]
        if not np.isnan(d):
            return _fmt_diff(d)
        nan_a, nan_b = np.isnan(self.a.losses[step - 1]), np.isnan(self.b.losses[step - 1])
        if nan_a and nan_b:
            return "undefined (NaN in both, with different bits)"
        return f"undefined (NaN in {'A' if nan_a else 'B'} only)"

    def lines(self, *, meta: bool = True) -> list[str]:
        """The report: plain lines, the same every time for the same two records.

        ``meta=False`` leaves out the records' metadata (commands, paths, versions): for a page
        that must print the same text on every machine.
        """
        a, b = self.a, self.b
        out = [
            f"A: {a.name}",
            f"B: {b.name}",
            f"model {a.meta['model']}, {a.steps} steps; state digests at steps "
            f"{records.steps_text(self.digest_steps)}",
        ]
        out += self._note_lines()
        if meta:
            out += self._meta_lines()
        out += self._loss_lines()
        out += self._weight_lines()
        same = a.final_digest == b.final_digest
        out.append(
            "final fingerprint: identical"
            if same
            else f"final fingerprint: A {fingerprint.short(a.final_digest)}, "
            f"B {fingerprint.short(b.final_digest)}"
        )
        if self.identical:
            out.append("verdict: identical (every loss and every recorded digest agree)")
        else:
            out.append(f"verdict: the runs diverge; first difference at step {self.first_step}")
        return out

    def _note_lines(self) -> list[str]:
        """Lines only for records that need them: partial records, losses that are not steps'."""
        out = [
            f"{label} is partial: the run was interrupted ({rec.interrupted})"
            for label, rec in (("A", self.a), ("B", self.b))
            if rec.interrupted
        ]
        if self.a.meta["loss"] == "keras logs":
            out.append(
                "losses: what Keras logged after each step (its own train_step logs the epoch's "
                "running mean), not each step's own loss"
            )
        return out

    def _meta_lines(self) -> list[str]:
        """The report's lines on the records' metadata: identical, or each difference."""
        if not self.meta_differences:
            return ["meta: identical"]
        out = ["meta differences (A | B):"]
        for key, va, vb in self.meta_differences:
            out.append(f"  {key}: {_meta_text(va)} | {_meta_text(vb)}")
        return out

    def _loss_lines(self) -> list[str]:
        """The report's lines on the losses: the first difference, how many, the largest."""
        a, b = self.a, self.b
        if self.first_loss_step is None:
            return [f"losses: identical at all {a.steps} steps"]
        s = self.first_loss_step
        out = [
            f"losses: first differ at step {s}: A {_fmt(a.losses[s - 1])}, "
            f"B {_fmt(b.losses[s - 1])}, |A-B| {self.loss_gap(s)}"
        ]
        count = f"differ at {int(self.loss_differs.sum())} of {a.steps} steps"
        size = self._loss_size_text()
        out.append(f"losses: {count}{size}; at step {a.steps}: {self.loss_gap(a.steps)}")
        return out

    def _loss_size_text(self) -> str:
        """How large the loss differences are: the largest ``|A-B|``, and how many have a NaN."""
        d = self.loss_difference
        with_nan = self.loss_differs & np.isnan(d)
        sized = self.loss_differs & ~with_nan
        if not sized.any():
            return ", each with a NaN (no |A-B| to size them)"
        worst = int(np.argmax(np.where(sized, d, -1.0))) + 1
        size = f"; largest |A-B| {_fmt_diff(d[worst - 1])} at step {worst}"
        if with_nan.any():
            size = f" ({int(with_nan.sum())} of them with a NaN){size}"
        return size

    def _weight_lines(self) -> list[str]:
        """The report's lines on the recorded digests: where the weights first differ, and which."""
        if self.first_digest_step is None:
            return ["weights: identical at every recorded step"]
        s = self.first_digest_step
        if s == 0:
            out = ["weights: differ already at step 0 (before training)"]
        else:
            out = [
                f"weights: identical at step {self.last_agreeing_step}, differ at step {s} "
                f"(first changed after one of steps {self.last_agreeing_step + 1}..{s})"
            ]
        out.append(f"  first differing variable: {self.first_variable}")
        out.append(
            f"  differing at step {s}: {len(self.differing_variables)} of {len(self.a.variables)} "
            f"variables ({_names_text(self.differing_variables)})"
        )
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def compare(
    a: RunRecord | str | os.PathLike[str], b: RunRecord | str | os.PathLike[str]
) -> Comparison:
    """Compare two run records (objects or files) step by step, bit for bit;
    :class:`RecordError` if they cannot be compared."""
    a = a if isinstance(a, RunRecord) else records.load(a)
    b = b if isinstance(b, RunRecord) else records.load(b)
    records.check_comparable(a, b)
    fa, fb = _flatten(a.meta), _flatten(b.meta)
    keys = list(fa) + [k for k in fb if k not in fa]
    meta_diff = [(k, fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]
    la, lb = a.losses.astype(np.float32), b.losses.astype(np.float32)
    differs = la.view(np.uint32) != lb.view(np.uint32)
    with np.errstate(invalid="ignore"):  # inf - inf; those steps have equal bits
        diff = np.abs(la.astype(np.float64) - lb.astype(np.float64))
    diff[~differs] = 0.0  # equal bits (two identical NaNs too) are no difference
    first_loss = int(np.argmax(differs)) + 1 if differs.any() else None
    steps = sorted(a.digests)
    first_digest = last_agree = None
    differing: list[str] = []
    for step in steps:
        bad = [n for n in a.variable_names if a.digests[step][n] != b.digests[step][n]]
        if bad:
            first_digest, differing = step, bad
            break
        last_agree = step
    return Comparison(
        a=a,
        b=b,
        meta_differences=meta_diff,
        loss_differs=differs,
        loss_difference=diff,
        first_loss_step=first_loss,
        digest_steps=steps,
        first_digest_step=first_digest,
        last_agreeing_step=last_agree,
        differing_variables=differing,
    )


# --- the map of the digests: variable x recorded step -------------------------------------------

#: A cell of :class:`DigestMap`: both records hold this digest and it is the same.
SAME = 0
#: Both records hold this digest and it differs.
DIFFERENT = 1
#: One record (or both) holds no digest of this variable at this step.
NOT_RECORDED = 2
#: What a cell's value means, as the map's legend says it.
CELL_LABELS = {SAME: "same digest", DIFFERENT: "different", NOT_RECORDED: "not recorded"}
#: The map's colours: pale blue, the book's red, white (not recorded cells are also outlined).
CELL_COLOURS = {SAME: "#D4E1F0", DIFFERENT: "#C44E52", NOT_RECORDED: "#FFFFFF"}
#: Above this many variables, :func:`plot_map` groups them by layer (one row per layer).
GROUP_ABOVE = 40


@dataclass
class DigestMap:
    """Per variable (row) and recorded step (column): :data:`SAME`, :data:`DIFFERENT` or
    :data:`NOT_RECORDED`. Rows are ``a``'s variables in the model's order, then any only ``b``
    has; columns are every step either record holds digests of."""

    a: RunRecord
    b: RunRecord
    variables: list[str]
    steps: list[int]
    cells: np.ndarray  # int8, shape (len(variables), len(steps))

    @property
    def first_step(self) -> int | None:
        """The first recorded step where some variable differs (None: none does)."""
        cols = np.flatnonzero((self.cells == DIFFERENT).any(axis=0))
        return self.steps[int(cols[0])] if cols.size else None

    @property
    def first_variable(self) -> str | None:
        """The first variable, in the model's order, that differs at :attr:`first_step`."""
        if self.first_step is None:
            return None
        col = self.steps.index(self.first_step)
        return self.variables[int(np.flatnonzero(self.cells[:, col] == DIFFERENT)[0])]

    def grouped(self) -> DigestMap:
        """One row per layer (a name up to its last ``/``): "different" where any of the layer's
        variables differs, else "not recorded" where any is not recorded, else "same digest"."""
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(self.variables):
            groups.setdefault(name.rpartition("/")[0] or name, []).append(i)
        rows, labels = [], []
        for group, members in groups.items():
            part = self.cells[members]
            row = np.full(len(self.steps), SAME, dtype=np.int8)
            row[(part == NOT_RECORDED).any(axis=0)] = NOT_RECORDED
            row[(part == DIFFERENT).any(axis=0)] = DIFFERENT
            rows.append(row)
            labels.append(
                f"{group} ({len(members)})" if len(members) > 1 else self.variables[members[0]]
            )
        cells = np.array(rows, dtype=np.int8).reshape(len(rows), len(self.steps))
        return DigestMap(self.a, self.b, labels, list(self.steps), cells)


def digest_map(
    a: RunRecord | str | os.PathLike[str], b: RunRecord | str | os.PathLike[str]
) -> DigestMap:
    """Which variables of two run records (objects or files) have the same digest at each
    recorded step; see :class:`DigestMap`. Unlike :func:`compare`, records of different lengths
    or digest steps are mapped too (a partial record's missing steps are "not recorded")."""
    a = a if isinstance(a, RunRecord) else records.load(a)
    b = b if isinstance(b, RunRecord) else records.load(b)
    names = a.variable_names + [n for n in b.variable_names if n not in a.variable_names]
    steps = sorted(set(a.digests) | set(b.digests))
    cells = np.full((len(names), len(steps)), NOT_RECORDED, dtype=np.int8)
    for j, step in enumerate(steps):
        da, db = a.digests.get(step, {}), b.digests.get(step, {})
        for i, name in enumerate(names):
            if name in da and name in db:
                cells[i, j] = SAME if da[name] == db[name] else DIFFERENT
    return DigestMap(a, b, names, steps, cells)


def plot_map(
    a: RunRecord | str | os.PathLike[str] | DigestMap,
    b: RunRecord | str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    group: bool | None = None,
) -> Figure:
    """Where two recorded runs differ: a matplotlib Figure of variable (row, by name) x recorded
    step (column), each cell "same digest", "different" or "not recorded", with the first
    differing step and variable marked.

    ``a`` and ``b`` are run records or their files (or ``a`` is a :class:`DigestMap`).
    ``group`` draws one row per layer instead of per variable; ``None`` does so above
    :data:`GROUP_ABOVE` variables. ``title`` replaces the default (the first difference). In a
    notebook, assign the result (``fig = divergence.plot_map(a, b)``); elsewhere save it with
    ``fig.savefig(...)`` or ``python -m reprodl compare A B --plot map.png``.
    """
    from reprodl import plots  # matplotlib loads only here: the module itself stays light

    dmap = a if isinstance(a, DigestMap) else digest_map(a, b)
    first, first_variable = dmap.first_step, dmap.first_variable
    if title is None:
        title = (
            "identical at every step both records hold"
            if first is None
            else f"first differing digest: step {first}, {first_variable}"
        )
    if group or (group is None and len(dmap.variables) > GROUP_ABOVE):
        dmap = dmap.grouped()
    return plots._styled(_draw_map)(dmap, title)


def write_map(
    a: RunRecord | str | os.PathLike[str], b: RunRecord | str | os.PathLike[str], path: Path
) -> None:
    """Write :func:`plot_map` of ``a`` and ``b`` to ``path`` as PNG, atomically, at twice the
    book's pixel density (missing folders are made); a path that cannot be written is a
    :class:`~reprodl.errors.UsageError`, raised before any drawing where it can be foreseen."""
    import matplotlib.pyplot as plt

    from reprodl import _io, plots

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"cannot write the map to {path}: it is a folder")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise UsageError(f"cannot write the map to {path}: {blocking} is not a folder")
    fig = plot_map(a, b)
    dpi = 2 * plots.STYLE["figure.dpi"]  # as the book's own figures (plots.retina_inline)
    try:
        _io.atomic_write(
            path, lambda fh: fig.savefig(fh, format="png", dpi=dpi, metadata={"Software": None})
        )
    except OSError as exc:
        raise UsageError(f"cannot write the map to {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)


def _draw_map(dmap: DigestMap, title: str) -> Figure:
    """The map's figure (under the book's style; see :func:`plot_map`)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch, Rectangle

    rows, cols = dmap.cells.shape
    first, first_variable = dmap.first_step, dmap.first_variable
    label_width = max((len(v) for v in dmap.variables), default=8)
    width = min(10.0, max(7.0, 3.0 + 0.055 * label_width + 0.08 * cols))
    fig, ax = plt.subplots(figsize=(width, max(2.6, 1.5 + 0.24 * rows)), layout="constrained")
    cmap = ListedColormap([CELL_COLOURS[k] for k in (SAME, DIFFERENT, NOT_RECORDED)])
    ax.imshow(dmap.cells, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto", interpolation="nearest")
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(True)
    if rows <= 80 and cols <= 120:  # thin white lines between the cells, while they stay visible
        ax.set_xticks(np.arange(cols + 1) - 0.5, minor=True)
        ax.set_yticks(np.arange(rows + 1) - 0.5, minor=True)
        ax.grid(which="minor", color="white", linewidth=0.8, alpha=1.0)
        ax.tick_params(which="minor", length=0)
    missing = np.argwhere(dmap.cells == NOT_RECORDED)
    for i, j in missing:  # white cells would vanish against the background: outline them
        ax.add_patch(
            Rectangle(
                (j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#999999", linewidth=0.5, hatch="//"
            )
        )
    ax.set_yticks(range(rows), dmap.variables, fontsize=8)
    ticks = _step_ticks(cols, dmap.steps.index(first) if first is not None else None)
    ax.set_xticks(ticks, [str(dmap.steps[j]) for j in ticks], fontsize=8)
    ax.set(xlabel="recorded step (the state after it; 0: before training)")
    if first is not None:
        col = dmap.steps.index(first)
        ax.axvline(col - 0.5, color="black", linestyle="--", linewidth=1.2)
        row = dmap.variables.index(first_variable)
        ax.add_patch(
            Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2)
        )
        ax.get_yticklabels()[row].set_fontweight("bold")
    present = sorted({int(v) for v in np.unique(dmap.cells)} | {SAME, DIFFERENT})
    handles = [
        Patch(
            facecolor=CELL_COLOURS[k],
            edgecolor="#999999",
            label=CELL_LABELS[k],
            hatch="//" if k == NOT_RECORDED else None,
        )
        for k in present
    ]
    if first is not None:
        handles.append(
            Patch(facecolor="none", edgecolor="black", linewidth=2, label="first differing digest")
        )
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return fig


def _step_ticks(cols: int, first: int | None, most: int = 12) -> list[int]:
    """Columns to label: at most about ``most``, evenly spaced, the last and the first
    difference's included."""
    every = max(1, -(-cols // most))
    ticks = set(range(0, cols, every)) | {cols - 1}
    if first is not None:
        ticks = {t for t in ticks if abs(t - first) >= max(1, every // 2)} | {first}
    return sorted(ticks)


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
    return records.save_run(
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
                    rows.append((name, f"step {first}", _fmt_diff(w[first - s]), _fmt_diff(w[-1])))
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
    a = a if isinstance(a, RunRecord) else records.load(a)
    b = b if isinstance(b, RunRecord) else records.load(b)
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
