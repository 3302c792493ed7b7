"""Every figure function: it returns a Figure with the expected content, in the book's style,
and leaves matplotlib's global settings as they were."""

from __future__ import annotations

import base64

import matplotlib
import numpy as np
import pytest
from matplotlib.colors import to_rgb
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
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["new higher", "old higher", "tie", "mean"]
    assert [h.get_color() for h in legend.legend_handles[:3]] == colors
    untied = plots.paired_scores([1, 2], [2, 1], labels=("old", "new"))
    assert "tie" not in [t.get_text() for t in untied.legends[0].get_texts()]
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


class _Agreement:
    """A stand-in for reprodl.crosscheck.Agreement: setting, case and groups, largest first."""

    def __init__(self, setting, case, groups):
        self.setting, self.case, self.groups = setting, case, groups


def test_agreement_grid_colours_follow_the_groups():
    rows = [
        _Agreement("pinned", "mlp", (("x/1", ("cpu1", "cpu2", "cpu3")),)),
        _Agreement("other", "mlp", (("y/1", ("cpu1", "cpu3")), ("y/2", ("cpu2",)))),
        _Agreement("other", "cnn", (("z/1", ("cpu2",)),)),
    ]
    fig = plots.agreement_grid(rows, columns=["cpu1", "cpu2", "cpu3"])
    ax = fig.axes[0]
    rgb = ax.images[0].get_array()
    colour = {
        name: to_rgb(c)
        for name, c in (
            ("A", plots.GROUP_COLORS[0]),
            ("B", plots.GROUP_COLORS[1]),
            ("-", plots.EMPTY_COLOR),
        )
    }
    expected = [["A", "A", "A"], ["A", "B", "A"], ["-", "A", "-"]]
    for r, row in enumerate(expected):
        for c, key in enumerate(row):
            assert tuple(rgb[r, c]) == pytest.approx(colour[key])
    assert [t.get_text() for t in ax.texts] == ["A", "A", "A", "A", "B", "A", "A"]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "pinned  mlp",
        "other  mlp",
        "other  cnn",
    ]
    assert len(ax.lines) == 1  # one rule between the two settings
    with pytest.raises(UsageError, match=r"machines missing from columns: \['cpu3'\]"):
        plots.agreement_grid(rows, columns=["cpu1", "cpu2"])


def test_equality_grid_true_false_and_missing_cells():
    fig = plots.equality_grid({"seed a": {"x": True, "y": False}, "seed b": {"y": True}})
    ax = fig.axes[0]
    rgb = ax.images[0].get_array()
    assert tuple(rgb[0, 0]) == pytest.approx(to_rgb(plots.GROUP_COLORS[0]))
    assert tuple(rgb[0, 1]) == pytest.approx(to_rgb(plots.GROUP_COLORS[1]))
    assert tuple(rgb[1, 0]) == pytest.approx(to_rgb(plots.EMPTY_COLOR))
    assert [t.get_text() for t in ax.texts] == ["same", "different", "same"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["x", "y"]


def test_error_vs_epsilon_log_log_panels_and_marks():
    panels = {
        "float64": {"W": {1e-2: 1e-4, 1e-5: 1e-10, 1e-8: 1e-7}},
        "float32": {"W": {1e-2: 1e-3, 1e-5: 0.1, 1e-8: 1.0}},
    }
    fig = plots.error_vs_epsilon(panels, marks={"kink": 1e-4})
    _check(fig, 2)
    for ax, name in zip(fig.axes, panels, strict=True):
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_title() == name
        assert list(ax.lines[0].get_xdata()) == [1e-8, 1e-5, 1e-2]  # sorted by the step
        assert len(ax.lines) == 2  # the curve and the mark
    assert list(fig.axes[0].lines[0].get_ydata()) == [1e-7, 1e-10, 1e-4]
    assert [t.get_text() for t in fig.axes[0].texts] == ["kink"]  # named once
    assert len(fig.axes[1].texts) == 0


def test_mask_grid_one_panel_per_replica_dark_where_dropped():
    kept = np.array([[True, False], [False, True]])
    fig = plots.mask_grid({"step 1": [kept, kept], "seeded": [kept, ~kept]})
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes[:2]] == ["replica 0", "replica 1"]
    image = fig.axes[3].images[0]
    assert np.array_equal(image.get_array(), ~kept)
    rgba = image.to_rgba(image.get_array())
    assert rgba[0, 0, 0] < rgba[0, 1, 0]  # the dropped unit darker than the kept one
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["kept", "dropped"]


def test_sum_orders_one_box_per_part_and_the_results_written():
    fig = plots.sum_orders(
        {"1 replica": ([100], np.float32(0.25)), "2 replicas": ([50, 50], "other bits")}
    )
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(ax.patches) == 3
    assert "Σ images 1–100" in texts and "Σ images 51–100" in texts
    assert texts.count("+") == 1  # only the split sum adds its parts
    assert "0.25" in texts and "other bits" in texts


def test_spread_by_group_separate_panels_share_one_height():
    fig = plots.spread_by_group({"a": [1.0, 1.2], "b": [90.0, 90.8]}, separate=True)
    assert len(fig.axes) == 2
    low, high = fig.axes[0].get_ylim()
    low_b, high_b = fig.axes[1].get_ylim()
    assert high - low == pytest.approx(high_b - low_b)
    assert low_b < 90.0 and high_b > 90.8 and high < 90.0


def test_retina_inline_needs_a_kernel():
    assert plots.retina_inline() is False  # pytest runs outside IPython: nothing to change


def test_retina_inline_in_a_shell_doubles_the_pixels_and_keeps_the_width():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        assert plots.retina_inline() is True
        fig = plots.loss_curves({"a": [1, 2]})
        data, metadata = shell.display_formatter.format(fig)
        assert set(metadata["image/png"]) == {"width"}  # no fixed height: narrow pages scale it
        width = metadata["image/png"]["width"]
        assert 0.9 * fig.get_figwidth() * fig.dpi < width <= fig.get_figwidth() * fig.dpi
        png = base64.b64decode(data["image/png"])
        assert int.from_bytes(png[16:20], "big") in (2 * width, 2 * width + 1)
        assert data["text/plain"] == "<Figure size 700x360 with 1 Axes>"  # what the gate compares
    finally:
        InteractiveShell.clear_instance()


def test_layer_parting_one_bar_per_layer_and_same_bits_marked():
    fig = plots.layer_parting({"cnn": [("conv_1", 0.0), ("dense", 0.5)], "lstm": [("lstm", 1.0)]})
    _check(fig, 1)
    ax = fig.axes[0]
    assert [p.get_width() for p in ax.patches] == [0.0, 50.0, 100.0]
    assert [t.get_text() for t in ax.texts] == ["same bits", "50%", "100%"]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["cnn: conv_1", "cnn: dense", "lstm: lstm"]


def test_size_groups_letters_a_for_alone_and_one_colour_per_group():
    fig = plots.size_groups(
        {"mlp": [[1], [2], [3], [4, 100]], "lstm": [[2], [1, 4, 100], [3]]}, separators=[1]
    )
    _check(fig, 1)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3", "4", "100"]
    assert [t.get_text() for t in ax.texts] == [*"ABCDD", *"ABCAA"]
    cells = ax.images[0].get_array()
    assert (cells[1, 0] == cells[1, 3]).all() and not (cells[0, 0] == cells[0, 3]).all()
    assert len(ax.lines) == 1  # the separator
