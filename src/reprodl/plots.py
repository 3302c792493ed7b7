"""The book's figures, in one style. Each function returns the matplotlib Figure it made.

In a notebook, assign the result (``fig = plots.loss_curves(...)``): the inline backend shows the
figure at the end of the cell, and nothing else is printed (no ``[<Line2D at 0x...>]`` addresses,
which would differ on every run; a trailing ``;`` does not help under nbval). The style is applied
inside each function and undone after it: importing this module changes no global setting.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

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
) -> Figure:
    """Each group's runs as dots in one column, with the group's min-max range and mean marked.

    For "same everything but one source of randomness" experiments: the height of a column is the
    spread that source alone causes. ``labels`` optionally names each dot (e.g. the order seed).
    """
    fig, ax = plt.subplots(figsize=(2.2 + 1.8 * len(groups), 3.6))
    for i, (name, values) in enumerate(groups.items()):
        y = np.asarray(values, dtype=np.float64)
        x = i + np.linspace(-0.15, 0.15, len(y)) if len(y) > 1 else np.array([float(i)])
        ax.vlines(i - 0.25, y.min(), y.max(), color="gray", linewidth=3, alpha=0.5)
        ax.hlines(y.mean(), i - 0.22, i + 0.22, color="black", linestyle="--", linewidth=1)
        ax.plot(x, y, "o", color=f"C{i}")
        for xi, yi, text in zip(x, y, (labels or {}).get(name, ()), strict=False):
            ax.annotate(text, (xi, yi), xytext=(4, 0), textcoords="offset points", fontsize=7)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set(ylabel=ylabel, title=title)
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
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    for y0, y1 in zip(a, b, strict=True):
        color = "#55A868" if y1 > y0 else "#C44E52" if y1 < y0 else "gray"
        ax.plot([0, 1], [y0, y1], color=color, alpha=0.6, linewidth=1)
    ax.plot(np.zeros_like(a), a, "o", color="#4C72B0", markersize=4)
    ax.plot(np.ones_like(b), b, "o", color="#4C72B0", markersize=4)
    ax.hlines([a.mean(), b.mean()], [-0.15, 0.85], [0.15, 1.15], color="black", linestyle="--")
    ax.set_xticks([0, 1], list(labels))
    ax.set_xlim(-0.4, 1.4)
    ax.set(ylabel=ylabel, title=title)
    fig.tight_layout()
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
        ax.axvline(step, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            label,
            (step, 1),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            ha="left",
            va="top",
            rotation=90,
            color="grey",
        )
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, yscale="log")
    if len(curves) > 1:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return fig
