"""The book's figures, in one style. Each function returns the matplotlib Figure it made.

In a notebook, assign the result (``fig = plots.loss_curves(...)``): the inline backend shows the
figure at the end of the cell, and nothing else is printed (no ``[<Line2D at 0x...>]`` addresses,
which would differ on every run; a trailing ``;`` does not help under nbval). The style is applied
inside each function and undone after it: importing this module changes no matplotlib setting.

Sharp on high-density screens, one way for the whole book: importing this module inside an
IPython kernel makes the kernel show figures as PNGs of twice the pixels (:func:`retina_inline`),
the one setting it changes there. Each figure's output then holds a PNG drawn at twice
``figure.dpi`` and, in its metadata, a ``width`` of the 1x size, at which the book shows it (or
narrower, on a narrow screen). The text of a figure's output (its ``<Figure size 700x360 ...>``,
which the exact-output gate compares) does not change, and a chapter gets sharp figures when it is
re-executed: every chapter imports this module before its first figure. Outside IPython (scripts,
tests) nothing changes.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyBboxPatch, Patch

from reprodl.errors import UsageError

#: The book's style, applied while each figure is made.
STYLE: dict[str, Any] = {
    "figure.figsize": (7.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "legend.frameon": False,
    "svg.hashsalt": "reprodl",
}

P = ParamSpec("P")

#: Colours of categories in the book's grids, in order: the first group, the second, ...
GROUP_COLORS = ("#4C72B0", "#DD8452", "#C44E52", "#8172B3", "#937860", "#DA8BC3")
#: Further colours for grids with more groups than GROUP_COLORS (chapter 14's batch sizes).
_MORE_GROUP_COLORS = ("#55A868", "#8C8C8C", "#CCB974", "#64B5CD")
#: A cell of a grid with nothing in it (a case a machine did not run).
EMPTY_COLOR = "#EEEEEE"
_MASK_COLORS = ListedColormap(["#333333", "#C9D6EA"])  # dropped, kept


def retina_inline() -> bool:
    """In an IPython kernel, show every matplotlib figure as a PNG of twice its pixels.

    Registers a PNG printer for :class:`~matplotlib.figure.Figure` that draws at twice
    ``figure.dpi`` (IPython's ``retina_figure``, with the inline backend's ``bbox_inches="tight"``)
    and gives the output only a ``width``, the 1x one: the page then scales the image to that width
    or to its column, whichever is narrower, and its height follows. (The inline backend's own
    ``"retina"`` format stores a height too, which myst-nb writes into the page as a fixed height:
    on a column narrower than the figure the image is squeezed.) Returns whether a kernel was
    found. Called when this module is imported.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - not in a Jupyter environment
        return False
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return False
    # The inline backend selects its figure formats when it loads: let it do that now, before the
    # printer below is registered, not over it at the first figure.
    with contextlib.suppress(ImportError):  # ipykernel brings it
        import matplotlib_inline.backend_inline  # noqa: F401
    shell.display_formatter.formatters["image/png"].for_type(Figure, _png_at_twice_the_pixels)
    return True


def _png_at_twice_the_pixels(fig: Figure) -> tuple[str, dict[str, int]] | None:
    from IPython.core.pylabtools import retina_figure

    made = retina_figure(fig, base64=True, bbox_inches="tight")
    if made is None:  # an empty figure: nothing to show
        return None
    data, size = made
    return data, {"width": size["width"]}


def _styled(make: Callable[P, Figure]) -> Callable[P, Figure]:
    """Make the figure under :data:`STYLE` and leave the global settings as they were.

    Matplotlib creates ticks and their grid lines lazily, reading the settings then: the figure
    is laid out once inside the style, so that nothing is created later under other settings.
    """

    @functools.wraps(make)
    def styled(*args: P.args, **kwargs: P.kwargs) -> Figure:
        # Only the style's own keys are saved and restored: matplotlib.rc_context restores every
        # setting, the backend included, and that stops the notebook's inline backend from
        # showing any later figure (matplotlib 3.11, matplotlib-inline).
        saved = {key: matplotlib.rcParams[key] for key in STYLE}
        matplotlib.rcParams.update(STYLE)
        try:
            fig = make(*args, **kwargs)
            fig.draw_without_rendering()
        finally:
            matplotlib.rcParams.update(saved)
        return fig

    return styled


retina_inline()


@_styled
def loss_curves(
    curves: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    xlabel: str = "step",
    ylabel: str = "training loss",
    smooth: int = 1,
    logy: bool = False,
) -> Figure:
    """One line per named loss curve; ``smooth`` > 1 averages over a sliding window."""
    fig, ax = plt.subplots()
    for label, values in curves.items():
        y = np.asarray(values, dtype=np.float64)
        x = np.arange(1, len(y) + 1)
        if smooth > 1 and len(y) >= smooth:
            y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
            x = x[smooth - 1 :]
        ax.plot(x, y, label=label, linewidth=1.2)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logy:
        ax.set_yscale("log")
    if len(curves) > 1:
        ax.legend()
    fig.tight_layout()
    return fig


@_styled
def digit_grid(
    images, labels=None, predictions=None, *, columns: int = 10, title: str = ""
) -> Figure:
    """Digits in a grid, with their label (and prediction, red when wrong) above each."""
    images = np.asarray(images)
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 1.05), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255 if images.dtype == np.uint8 else 1)
        if labels is not None and predictions is not None:
            ok = int(labels[i]) == int(predictions[i])
            ax.set_title(f"{int(predictions[i])}", color="black" if ok else "red", fontsize=9)
        elif labels is not None:
            ax.set_title(f"{int(labels[i])}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def histogram(
    values, *, bins: int = 15, xlabel: str = "", title: str = "", mark_mean: bool = True
) -> Figure:
    """A histogram of ``values`` with the mean marked."""
    values = np.asarray(values, dtype=np.float64)
    fig, ax = plt.subplots()
    ax.hist(values, bins=bins, color="#4C72B0", alpha=0.85)
    if mark_mean:
        ax.axvline(values.mean(), color="black", linestyle="--", linewidth=1, label="mean")
        ax.legend()
    ax.set(xlabel=xlabel, ylabel="runs", title=title)
    fig.tight_layout()
    return fig


@_styled
def bars(
    values: Mapping[str, float], *, ylabel: str = "", title: str = "", fmt: str = "{:.3g}"
) -> Figure:
    """A labelled bar chart (one bar per named value, the value written on top)."""
    fig, ax = plt.subplots()
    names = list(values)
    heights = [float(values[n]) for n in names]
    ax.bar(names, heights, color="#4C72B0")
    for i, h in enumerate(heights):
        ax.annotate(fmt.format(h), (i, h), ha="center", va="bottom", fontsize=9)
    ax.set(ylabel=ylabel, title=title)
    fig.tight_layout()
    return fig


@_styled
def training_curves(
    losses, evaluations: Mapping[int, float], *, smooth: int = 1, title: str = ""
) -> Figure:
    """Training loss per step (left) and an accuracy measured at some steps (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    y = np.asarray(losses, dtype=np.float64)
    x = np.arange(1, len(y) + 1)
    if smooth > 1 and len(y) >= smooth:
        y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        x = x[smooth - 1 :]
    left.plot(x, y, linewidth=1.2)
    left.set(xlabel="step", ylabel="training loss", yscale="log")
    steps = sorted(evaluations)
    right.plot(steps, [100 * evaluations[s] for s in steps], marker="o", linewidth=1.2)
    right.set(xlabel="step", ylabel="validation accuracy (%)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def weight_images(kernel, *, columns: int = 5, title: str = "") -> Figure:
    """The columns of a ``(784, 10)`` kernel as ten 28x28 images: red pushes towards the class.

    One colour scale for all panels, symmetric around zero (white), so the panels can be compared.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != 28 * 28:
        raise UsageError(f"expected a (784, classes) kernel, got shape {kernel.shape}")
    classes = kernel.shape[1]
    rows = -(-classes // columns)
    limit = float(np.abs(kernel).max()) or 1.0
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.5, rows * 1.7), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= classes:
            continue
        image = ax.imshow(kernel[:, i].reshape(28, 28), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(str(i), fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="weight")
    if title:
        fig.suptitle(title)
    return fig


@_styled
def scores_by_run(
    panels: Mapping[str, Sequence[float]],
    *,
    logy: Sequence[str] = (),
    xlabel: str = "run",
    title: str = "",
) -> Figure:
    """One panel per named series: each run's score as a dot, the mean as a dashed line.

    Panels named in ``logy`` get a logarithmic y axis (for scores spanning orders of magnitude).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (label, values) in zip(axes.flat, panels.items(), strict=True):
        y = np.asarray(values, dtype=np.float64)
        x = np.arange(1, len(y) + 1)
        ax.plot(x, y, "o", color="#4C72B0")
        ax.axhline(y.mean(), color="black", linestyle="--", linewidth=1, label="mean")
        ax.set(xlabel=xlabel, xticks=x)
        ax.set_title(label, fontsize=10)
        if label in logy:
            ax.set_yscale("log")
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def spread_by_group(
    groups: Mapping[str, Sequence[float]],
    *,
    ylabel: str = "",
    title: str = "",
    labels: Mapping[str, Sequence[str]] | None = None,
    separate: bool = False,
) -> Figure:
    """Each group's runs as dots in one column, with the group's min-max range and mean marked.

    For "same everything but one source of randomness" experiments: the height of a column is the
    spread that source alone causes. ``labels`` optionally names each dot (e.g. the order seed).

    ``separate=True`` gives each group its own panel, for groups whose levels are far apart (one
    shared axis would squeeze each spread into a few pixels): every panel spans the same height
    of y values, centred on its group, so the spreads can still be compared by eye.
    """
    groups = {name: np.asarray(values, dtype=np.float64) for name, values in groups.items()}
    if separate:
        fig, axes = plt.subplots(
            1, len(groups), figsize=(1.2 + 2.6 * len(groups), 3.6), squeeze=False
        )
        panels = [(ax, {name: y}) for ax, (name, y) in zip(axes.flat, groups.items(), strict=True)]
        half = max(np.ptp(y) for y in groups.values()) / 2 * 1.25 or 1.0
    else:
        fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(groups), 3.6))
        panels = [(ax, groups)]
    colour = {name: f"C{i}" for i, name in enumerate(groups)}
    for ax, shown in panels:
        for i, (name, y) in enumerate(shown.items()):
            x = i + np.linspace(-0.15, 0.15, len(y)) if len(y) > 1 else np.array([float(i)])
            ax.vlines(i - 0.25, y.min(), y.max(), color="gray", linewidth=3, alpha=0.5)
            ax.hlines(y.mean(), i - 0.22, i + 0.22, color="black", linestyle="--", linewidth=1)
            ax.plot(x, y, "o", color=colour[name])
            for xi, yi, text in zip(x, y, (labels or {}).get(name, ()), strict=False):
                ax.annotate(text, (xi, yi), xytext=(4, 0), textcoords="offset points", fontsize=7)
            if separate:
                middle = (y.min() + y.max()) / 2
                ax.set_ylim(middle - half, middle + half)
        ax.set_xticks(range(len(shown)), list(shown))
        ax.set_xlim(-0.6, len(shown) - 0.4)
    panels[0][0].set_ylabel(ylabel)
    if title and separate:
        fig.suptitle(title)
    elif title:
        panels[0][0].set_title(title)
    fig.tight_layout()
    return fig


@_styled
def paired_scores(
    a: Sequence[float],
    b: Sequence[float],
    *,
    labels: tuple[str, str] = ("a", "b"),
    ylabel: str = "",
    title: str = "",
) -> Figure:
    """Two variants run on the same seeds: one line per seed from its score in ``a`` to ``b``.

    Lines going up are seeds where ``b`` did better; a comparison of unpaired runs would see only
    the two clouds of dots, not which dots belong together.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise UsageError(f"a and b must have the same length, got {a.size} and {b.size}")
    fig, ax = plt.subplots(figsize=(5.8, 3.8), layout="constrained")
    for y0, y1 in zip(a, b, strict=True):
        color = "#55A868" if y1 > y0 else "#C44E52" if y1 < y0 else "gray"
        ax.plot([0, 1], [y0, y1], color=color, alpha=0.6, linewidth=1)
    ax.plot(np.zeros_like(a), a, "o", color="#4C72B0", markersize=4)
    ax.plot(np.ones_like(b), b, "o", color="#4C72B0", markersize=4)
    ax.hlines([a.mean(), b.mean()], [-0.15, 0.85], [0.15, 1.15], color="black", linestyle="--")
    ax.set_xticks([0, 1], list(labels))
    ax.set_xlim(-0.4, 1.4)
    ax.set(ylabel=ylabel, title=title)
    handles = [
        Line2D([], [], color="#55A868", label=f"{labels[1]} higher"),
        Line2D([], [], color="#C44E52", label=f"{labels[0]} higher"),
        *([Line2D([], [], color="gray", label="tie")] if (a == b).any() else []),
        Line2D([], [], color="black", linestyle="--", label="mean"),
    ]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    return fig


@_styled
def divergence(
    curves: Mapping[str, Sequence[float] | tuple[Sequence[float], Sequence[float]]],
    *,
    ylabel: str = "|loss A - loss B|",
    xlabel: str = "step",
    title: str = "",
    marks: Mapping[str, int] | None = None,
) -> Figure:
    """How far two runs drift apart: one line per named difference curve, on a log scale.

    A curve is its values at steps 1, 2, ... or an ``(steps, values)`` pair. Zeros (the runs
    still agree) cannot be drawn on a log scale and are left as gaps; ``marks`` draws a dotted
    vertical line at a named step (e.g. the first differing one).
    """
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    for label, curve in curves.items():
        if isinstance(curve, tuple):
            x, y = np.asarray(curve[0], dtype=np.float64), np.asarray(curve[1], dtype=np.float64)
        else:
            y = np.asarray(curve, dtype=np.float64)
            x = np.arange(1, len(y) + 1, dtype=np.float64)
        y = np.where(y > 0, y, np.nan)
        ax.plot(x, y, label=label, linewidth=1.2, marker="." if len(y) <= 60 else None)
    for label, step in (marks or {}).items():
        _vertical_mark(ax, step, label, ha="left")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale="log")
    if len(curves) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return fig


def _cell_grid(
    ax,
    colors: Sequence[Sequence[str]],
    texts: Sequence[Sequence[str]],
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    fontsize: float = 8,
) -> None:
    """Draw a table of coloured cells with a text in each, rows labelled left, columns on top."""
    rgb = np.array([[to_rgb(c) for c in row] for row in colors])
    ax.imshow(rgb, aspect="auto", interpolation="nearest")
    for r, row in enumerate(texts):
        for c, text in enumerate(row):
            if text:
                ax.text(c, r, text, ha="center", va="center", fontsize=fontsize, color="white")
    ax.set_xticks(
        range(len(columns)),
        list(columns),
        rotation=40,
        ha="left",
        rotation_mode="anchor",
        fontsize=fontsize,
    )
    ax.set_yticks(range(len(rows)), list(rows), fontsize=fontsize)
    ax.xaxis.tick_top()
    ax.set_xticks(np.arange(len(columns) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(rows) + 1) - 0.5, minor=True)
    ax.grid(False)
    ax.grid(which="minor", color="white", linewidth=1.5, alpha=1.0)
    ax.tick_params(which="both", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


@_styled
def agreement_grid(
    rows: Sequence[Any], *, columns: Sequence[str] | None = None, title: str = ""
) -> Figure:
    """Which machines gave the same bits: one row per setting and case, one column per machine.

    ``rows`` are :class:`reprodl.book.crosscheck.Agreement` objects (or anything with ``setting``,
    ``case`` and ``groups``, the groups as ``(bits, machines)`` pairs, largest first). In a row,
    each machine's cell has the letter and colour of its group of equal bits: A for the row's
    largest group (on a tie, the one whose digest sorts first, as ``groups`` is ordered), B for the
    next, and so on; a grey cell is a machine that did not run the case.
    A row of one colour gave the same bits on every machine that ran it. ``columns`` orders the
    machines (default: as they first appear).
    """
    if columns is None:
        columns = list(dict.fromkeys(cpu for row in rows for _, cpus in row.groups for cpu in cpus))
    colors, texts, names = [], [], []
    for row in rows:
        group_of = {cpu: g for g, (_, cpus) in enumerate(row.groups) for cpu in cpus}
        unknown = set(group_of) - set(columns)
        if unknown:
            raise UsageError(f"machines missing from columns: {sorted(unknown)}")
        colors.append(
            [
                GROUP_COLORS[group_of[c] % len(GROUP_COLORS)] if c in group_of else EMPTY_COLOR
                for c in columns
            ]
        )
        texts.append([chr(ord("A") + group_of[c]) if c in group_of else "" for c in columns])
        names.append(f"{row.setting}  {row.case}")
    fig, ax = plt.subplots(figsize=(7.0, 2.4 + 0.22 * len(rows)))
    _cell_grid(ax, colors, texts, names, columns)
    for r in range(1, len(rows)):
        if rows[r].setting != rows[r - 1].setting:
            ax.axhline(r - 0.5, color="black", linewidth=0.8)
    handles = [
        Patch(color=GROUP_COLORS[0], label="A"),
        Patch(color=GROUP_COLORS[1], label="B"),
        Patch(color=GROUP_COLORS[2], label="C"),
        Patch(color=EMPTY_COLOR, label="not run"),
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        ncols=4,
        title="one colour per distinct result in a row (A: its largest group)",
        title_fontsize=9,
    )
    if title:
        ax.set_title(title, pad=12)
    fig.tight_layout()
    return fig


@_styled
def equality_grid(
    table: Mapping[str, Mapping[str, bool]],
    *,
    labels: tuple[str, str] = ("same", "different"),
    title: str = "",
) -> Figure:
    """A table of yes/no results as coloured cells: rows and columns named by ``table``'s keys.

    ``table[row][column]`` is True (first colour, ``labels[0]`` written in the cell) or False
    (second colour, ``labels[1]``); a column missing from a row is a grey, empty cell.
    """
    rows = list(table)
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    colors = [
        [
            EMPTY_COLOR if c not in table[r] else GROUP_COLORS[0 if table[r][c] else 1]
            for c in columns
        ]
        for r in rows
    ]
    texts = [
        ["" if c not in table[r] else labels[0 if table[r][c] else 1] for c in columns]
        for r in rows
    ]
    fig, ax = plt.subplots(figsize=(7.0, 1.6 + 0.45 * len(rows)))
    _cell_grid(ax, colors, texts, rows, columns, fontsize=9)
    if title:
        ax.set_title(title, pad=12)
    fig.tight_layout()
    return fig


@_styled
def error_vs_epsilon(
    panels: Mapping[str, Mapping[str, Mapping[float, float]]],
    *,
    marks: Mapping[str, float] | None = None,
    xlabel: str = "step ε",
    ylabel: str = "relative error",
    title: str = "",
) -> Figure:
    """A finite-difference check's error against its step, on log-log axes, one panel per name.

    ``panels[panel][line]`` maps each step ``eps`` to the error measured with it. Large steps show
    the truncation error (falling as ``eps`` falls), small steps the rounding error (rising): the V.
    The panels share their axes; ``marks`` draws a dotted vertical line at a named ``eps`` in every
    panel, named in the first.
    """
    fig, axes = plt.subplots(
        1, len(panels), figsize=(3.6 * len(panels) + 0.6, 3.6), squeeze=False, sharey=True
    )
    for i, (ax, (name, lines)) in enumerate(zip(axes.flat, panels.items(), strict=True)):
        for label, errors in lines.items():
            eps = np.array(sorted(errors), dtype=np.float64)
            ax.plot(
                eps, [errors[e] for e in sorted(errors)], marker=".", label=label, linewidth=1.2
            )
        for label, x in (marks or {}).items():
            _vertical_mark(ax, x, label if i == 0 else None, ha="right")  # named in panel 1
        ax.set(xscale="log", yscale="log", xlabel=xlabel, title=name)
    axes.flat[0].set_ylabel(ylabel)
    axes.flat[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@_styled
def mask_grid(
    masks: Mapping[str, Sequence[Any]],
    *,
    columns: Sequence[str] | None = None,
    xlabel: str = "unit",
    ylabel: str = "image",
    title: str = "",
) -> Figure:
    """Dropout masks as images: one row of panels per name, one panel per replica.

    ``masks[name]`` is a sequence of boolean arrays ``(images, units)``, one per replica: True
    (kept) is drawn light, False (dropped) dark, with a legend saying so. ``columns`` names the
    panels of a row (default ``replica 0``, ``replica 1``, ...).
    """
    names = list(masks)
    width = max(len(m) for m in masks.values())
    columns = list(columns) if columns is not None else [f"replica {r}" for r in range(width)]
    fig, axes = plt.subplots(
        len(names), width, figsize=(1.4 + 2.2 * width, 0.6 + 1.3 * len(names)), squeeze=False
    )
    for r, name in enumerate(names):
        for c, ax in enumerate(axes[r]):
            ax.grid(False)
            if c >= len(masks[name]):
                ax.axis("off")
                continue
            kept = np.asarray(masks[name][c], dtype=bool)
            ax.imshow(kept, cmap=_MASK_COLORS, vmin=0, vmax=1, interpolation="nearest")
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_xticks(np.arange(kept.shape[1] + 1) - 0.5, minor=True)
            ax.set_yticks(np.arange(kept.shape[0] + 1) - 0.5, minor=True)
            ax.grid(which="minor", color="white", linewidth=1, alpha=1.0)
            ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
            if r == 0:
                ax.set_title(columns[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(f"{name}\n{ylabel}", fontsize=9)
            if r == len(names) - 1:
                ax.set_xlabel(xlabel, fontsize=9)
    handles = [
        Patch(color=_MASK_COLORS(1.0), label="kept"),
        Patch(color=_MASK_COLORS(0.0), label="dropped"),
    ]
    fig.legend(handles=handles, loc="lower center", ncols=2, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


@_styled
def sum_orders(
    ways: Mapping[str, tuple[Sequence[int], Any]],
    *,
    term: str = "image",
    title: str = "",
) -> Figure:
    """A diagram of one sum computed in parts: one block per way of splitting the same terms.

    ``ways[name] = (sizes, result)``: the terms ``1..n`` are summed in consecutive parts of the
    given sizes (one box per part, stacked, its width proportional to its size), then the parts'
    sums are added (a ``+``), giving ``result``: a number, written with every digit its own dtype
    needs to tell it apart, or a text.
    """
    heights = [max(len(sizes), 1) for sizes, _ in ways.values()]
    fig, ax = plt.subplots(figsize=(7.0, 0.5 + 0.55 * sum(heights) + 0.45 * len(ways)))
    ax.axis("off")
    total = max(sum(sizes) for sizes, _ in ways.values())
    top = 0.0
    for name, (sizes, result) in ways.items():
        top = _sum_in_parts(ax, name, sizes, result, top=top, term=term, total=total)
    ax.set_xlim(0, 1)
    ax.set_ylim(top + 0.2, 0.1)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


#: :func:`sum_orders`' layout: boxes from left to right, the "+" at join (axes fractions).
_SUM_LEFT, _SUM_RIGHT, _SUM_JOIN = 0.0, 0.5, 0.6


def _sum_in_parts(
    ax: Any, name: str, sizes: Sequence[int], result: Any, *, top: float, term: str, total: int
) -> float:
    """Draw one way of :func:`sum_orders` from height ``top`` down; the next way's top."""
    left, right, join = _SUM_LEFT, _SUM_RIGHT, _SUM_JOIN
    ax.text(left, top, name, fontsize=10, fontweight="bold", va="top")
    first = top - 0.45
    centres = [first - 0.55 * k - 0.2 for k in range(len(sizes))]
    middle = float(np.mean(centres))
    start = 0
    for size, yc in zip(sizes, centres, strict=True):
        width = (right - left) * size / total
        box = FancyBboxPatch(
            (left, yc - 0.2),
            width,
            0.4,
            boxstyle="round,pad=0,rounding_size=0.015",
            facecolor=GROUP_COLORS[0],
            alpha=0.25,
            edgecolor=GROUP_COLORS[0],
        )
        ax.add_patch(box)
        label = f"Σ {term}s {start + 1}–{start + size}"
        ax.text(left + width / 2, yc, label, ha="center", va="center", fontsize=9)
        end = join - 0.02 if len(sizes) > 1 else join + 0.08
        arrow = {"arrowstyle": "->", "color": "gray"}
        ax.annotate("", (end, middle), (left + width + 0.005, yc), arrowprops=arrow)
        start += size
    if len(sizes) > 1:
        ax.text(join, middle, "+", ha="center", va="center", fontsize=14)
        arrow = {"arrowstyle": "->", "color": "gray"}
        ax.annotate("", (join + 0.08, middle), (join + 0.02, middle), arrowprops=arrow)
    text = (
        result
        if isinstance(result, str)
        else np.format_float_positional(result, unique=True, trim="-")
    )
    ax.text(join + 0.09, middle, text, va="center", fontsize=10, family="monospace")
    return centres[-1] - 0.5


def _vertical_mark(ax: Any, x: float, label: str | None, *, ha: str) -> None:
    """A dotted grey vertical line at ``x``, with ``label`` written along it at the top."""
    ax.axvline(x, color="grey", linestyle=":", linewidth=1)
    if label is not None:
        ax.annotate(
            label,
            (x, 1),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            ha=ha,
            va="top",
            rotation=90,
            color="grey",
        )


@_styled
def layer_parting(layers: Mapping[str, Sequence[tuple[str, float]]], *, title: str = "") -> Figure:
    """Where two backends part: for each model (``layers``: model -> (layer, share of the layer's
    outputs whose bits differ, 0 to 1) in the model's order), one bar per layer, top to bottom;
    a layer whose outputs agree to the last bit is marked "same bits"."""
    labels, shares = [], []
    for model, rows in layers.items():
        for layer, share in rows:
            labels.append(f"{model}: {layer}")
            shares.append(100.0 * float(share))
    fig, ax = plt.subplots(figsize=(7.0, 1.0 + 0.32 * len(labels)))
    y = np.arange(len(labels))
    ax.barh(y, shares, color=GROUP_COLORS[1])
    for i, share in enumerate(shares):
        text = "same bits" if share == 0 else f"{share:.0f}%"
        ax.annotate(text, (share, i), xytext=(4, 0), textcoords="offset points", va="center")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set(xlim=(0, 115), xlabel="outputs whose bits differ (%)", title=title)
    fig.tight_layout()
    return fig


@_styled
def size_groups(
    table: Mapping[str, Sequence[Sequence[int]]], *, separators: Sequence[int] = (), title: str = ""
) -> Figure:
    """Which batch sizes give an example the same bits: one row per model (and setting), one
    column per batch size, each cell lettered and coloured by its group of equal bits.

    ``table[row]`` lists the row's groups of sizes (as :attr:`reprodl.serving.Invariance.groups`
    gives them); A is the group of the example alone (size 1), then B, C, ... in order of their
    smallest size. A row of one colour is batch-invariant over the sizes measured. A line is drawn
    above each row index in ``separators`` (e.g. between settings).
    """
    columns = sorted({n for groups in table.values() for g in groups for n in g})
    palette = (*GROUP_COLORS, *_MORE_GROUP_COLORS)
    colors, texts = [], []
    for groups in table.values():
        ordered = sorted(groups, key=lambda g: (1 not in g, min(g)))
        group_of = {n: k for k, g in enumerate(ordered) for n in g}
        colors.append(
            [palette[group_of[n] % len(palette)] if n in group_of else EMPTY_COLOR for n in columns]
        )
        texts.append([chr(ord("A") + group_of[n]) if n in group_of else "" for n in columns])
    fig, ax = plt.subplots(figsize=(7.0, 1.4 + 0.3 * len(table)))
    _cell_grid(ax, colors, texts, list(table), [str(n) for n in columns], fontsize=9)
    for r in separators:
        ax.axhline(r - 0.5, color="black", linewidth=0.8)
    ax.set_xlabel("batch size (rows in the call)")
    ax.xaxis.set_label_position("top")
    if title:
        ax.set_title(title, pad=12)
    fig.tight_layout()
    return fig
