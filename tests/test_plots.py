"""Every figure function: it returns a Figure with the expected content, in the book's style,
and leaves matplotlib's global settings as they were."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from reprodl import plots
from reprodl.errors import UsageError

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    matplotlib.pyplot.close("all")


def _check(fig: Figure, axes: int) -> None:
    assert isinstance(fig, Figure)
    assert len(fig.axes) == axes
    for line in fig.axes[0].get_xgridlines():
        assert line.get_alpha() == plots.STYLE["grid.alpha"]


def test_loss_curves_one_line_per_curve_and_smoothing():
    fig = plots.loss_curves({"a": [3, 2, 1, 1], "b": [4, 3, 2, 2]}, smooth=2, logy=True)
    _check(fig, 1)
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["a", "b"]
    assert list(ax.lines[0].get_ydata()) == [2.5, 1.5, 1.0]
    assert ax.get_yscale() == "log" and ax.get_legend() is not None


def test_digit_grid_marks_wrong_predictions_red():
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    fig = plots.digit_grid(images, labels=[1, 2, 3], predictions=[1, 0, 3], columns=2)
    assert len(fig.axes) == 4  # 2 x 2 grid, the last panel empty
    colors = [ax.title.get_color() for ax in fig.axes[:3]]
    assert colors == ["black", "red", "black"]


def test_histogram_marks_the_mean():
    fig = plots.histogram([1.0, 2.0, 3.0, 6.0], bins=3)
    _check(fig, 1)
    (mean_line,) = fig.axes[0].lines
    assert mean_line.get_xdata()[0] == 3.0


def test_bars_write_their_values():
    fig = plots.bars({"x": 1.5, "y": 2.25}, fmt="{:.2f}")
    _check(fig, 1)
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.50", "2.25"]


def test_training_curves_left_loss_right_accuracy_in_percent():
    fig = plots.training_curves([2.0, 1.0, 0.5], {1: 0.5, 3: 0.9})
    _check(fig, 2)
    assert list(fig.axes[1].lines[0].get_ydata()) == [50.0, 90.0]


def test_weight_images_symmetric_scale_and_shape_check():
    kernel = np.linspace(-2, 1, 784 * 10).reshape(784, 10)
    fig = plots.weight_images(kernel)
    assert len(fig.axes) == 11  # ten panels and the colour bar
    assert fig.axes[0].images[0].get_clim() == (-2.0, 2.0)
    with pytest.raises(
        UsageError, match=r"expected a \(784, classes\) kernel, got shape \(10, 10\)"
    ):
        plots.weight_images(np.zeros((10, 10)))


def test_scores_by_run_one_panel_per_series():
    fig = plots.scores_by_run({"accuracy": [0.9, 0.91], "loss": [0.1, 0.01]}, logy=["loss"])
    assert len(fig.axes) == 2
    assert fig.axes[1].get_yscale() == "log" and fig.axes[0].get_yscale() == "linear"


def test_spread_by_group_one_column_per_group():
    fig = plots.spread_by_group(
        {"init": [1, 2, 3], "order": [2.0]}, labels={"init": ["a", "b", "c"]}
    )
    _check(fig, 1)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["init", "order"]
    assert [t.get_text() for t in fig.axes[0].texts] == ["a", "b", "c"]


def test_paired_scores_colours_each_seed_by_direction():
    fig = plots.paired_scores([1, 2, 3], [2, 1, 3], labels=("old", "new"))
    colors = [line.get_color() for line in fig.axes[0].lines[:3]]
    assert colors == ["#55A868", "#C44E52", "gray"]
    with pytest.raises(UsageError, match="a and b must have the same length, got 2 and 3"):
        plots.paired_scores([1, 2], [1, 2, 3])


def test_divergence_leaves_zeros_as_gaps_and_marks_steps():
    fig = plots.divergence({"A vs B": [0.0, 1e-7, 1e-3]}, marks={"first": 2})
    _check(fig, 1)
    y = fig.axes[0].lines[0].get_ydata()
    assert np.isnan(y[0]) and y[2] == 1e-3
    assert [t.get_text() for t in fig.axes[0].texts] == ["first"]


def test_no_global_settings_change():
    before = dict(matplotlib.rcParams)
    plots.loss_curves({"a": [1, 2]})
    assert dict(matplotlib.rcParams) == before
    assert matplotlib.rcParams["axes.grid"] is False  # the style is not global
