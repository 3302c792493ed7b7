"""A map of where two run records differ: one row per variable (or layer), one column per
recorded step, each cell "same digest", "different" or "not recorded", the first difference marked.

:func:`digest_map` computes it from any two records, :func:`plot_map` draws it and
:func:`write_map` saves it as a PNG (``python -m reprodl compare A B --plot map.png``).
Importing this module loads neither matplotlib nor TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from reprodl.errors import UsageError
from reprodl.record import runrecord
from reprodl.record.runrecord import RunRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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
    a = a if isinstance(a, RunRecord) else runrecord.load(a)
    b = b if isinstance(b, RunRecord) else runrecord.load(b)
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
    from reprodl.book import plots  # matplotlib loads only here: the module itself stays light

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

    from reprodl import _io
    from reprodl.book import plots

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
