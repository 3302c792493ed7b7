"""compare finds the first differing step and variable; bisect finds the exact step on real runs."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from support import VARIABLES, run_python, synthetic_digits, synthetic_record

import reprodl
from reprodl import divergence, records, training
from reprodl.data import Split
from reprodl.errors import RecordError


def test_identical_records():
    result = divergence.compare(synthetic_record(), synthetic_record())
    assert result.identical and result.first_step is None and result.first_variable is None
    assert result.lines()[-1] == "verdict: identical (every loss and every recorded digest agree)"
    assert not result.loss_difference.any()


def test_first_differing_loss_step_and_sizes():
    losses = np.linspace(2.3, 0.3, 12, dtype=np.float32)
    other = losses.copy()
    other[6:] += np.float32(1e-3) * np.arange(1, 7, dtype=np.float32)  # steps 7..12 drift
    result = divergence.compare(synthetic_record(losses=losses), synthetic_record(losses=other))
    assert result.first_loss_step == 7 and result.first_digest_step is None
    assert not result.loss_difference[:6].any() and result.loss_difference[6:].all()
    assert result.loss_difference[-1] == pytest.approx(6e-3, rel=1e-3)
    assert "losses: first differ at step 7" in str(result)
    assert "differ at 6 of 12 steps" in str(result)


def test_a_one_ulp_loss_difference_is_found():
    losses = np.linspace(2.3, 0.3, 12, dtype=np.float32)
    other = losses.copy()
    other[9] = np.nextafter(other[9], np.float32(10))
    result = divergence.compare(synthetic_record(losses=losses), synthetic_record(losses=other))
    assert result.first_loss_step == 10


LOSSES = np.linspace(2.3, 0.3, 12, dtype=np.float32)


def _losses(**changes: float) -> np.ndarray:
    """LOSSES with ``s7=nan`` style changes (step 7 becomes NaN)."""
    out = LOSSES.copy()
    for key, value in changes.items():
        out[int(key[1:]) - 1] = value
    return out


def _loss_lines(a: np.ndarray, b: np.ndarray) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" warning from inf - inf or NaN
        result = divergence.compare(synthetic_record(losses=a), synthetic_record(losses=b))
    return [line for line in result.lines() if line.startswith("losses")]


def test_equal_nans_are_equal():
    nans = _losses(s7=np.nan, s8=np.nan, s12=np.inf)
    result = divergence.compare(synthetic_record(losses=nans), synthetic_record(losses=nans))
    assert result.identical and not result.loss_differs.any()
    assert not result.loss_difference.any() and not np.isnan(result.loss_difference).any()


def test_a_nan_against_a_number_is_a_difference_without_a_size():
    a = _losses(s7=np.nan, s8=np.nan, s9=np.nan)
    result = divergence.compare(synthetic_record(losses=a), synthetic_record(losses=LOSSES))
    assert result.first_loss_step == 7 and result.first_step == 7 and not result.identical
    assert result.loss_differs.tolist() == [False] * 6 + [True] * 3 + [False] * 3
    assert np.isnan(result.loss_difference[6:9]).all() and not result.loss_difference[:6].any()
    assert _loss_lines(a, LOSSES) == [
        "losses: first differ at step 7: A nan, B 1.209091, |A-B| undefined (NaN in A only)",
        "losses: differ at 3 of 12 steps, each with a NaN (no |A-B| to size them); at step 12: 0",
    ]


def test_the_largest_difference_ignores_nans_and_names_them():
    a = _losses(s3=1.0, s11=np.nan, s12=np.nan)
    b = _losses(s3=1.5, s12=np.nan)  # step 12: the same NaN on both sides
    assert _loss_lines(a, b) == [
        "losses: first differ at step 3: A 1, B 1.5, |A-B| 5e-01",
        "losses: differ at 2 of 12 steps (1 of them with a NaN); largest |A-B| 5e-01 at step 3; "
        "at step 12: 0",
    ]
    assert _loss_lines(LOSSES, _losses(s12=np.nan))[1].endswith(
        "at step 12: undefined (NaN in B only)"
    )


def test_nans_with_other_bits_and_infinities():
    other_nan = np.array([0x7FC00001], dtype=np.uint32).view(np.float32)[0]
    assert _loss_lines(_losses(s2=np.nan), _losses(s2=other_nan))[0] == (
        "losses: first differ at step 2: A nan, B nan, |A-B| undefined (NaN in both, with "
        "different bits)"
    )
    assert _loss_lines(_losses(s4=np.inf, s5=-np.inf), _losses(s4=np.inf, s5=np.inf)) == [
        "losses: first differ at step 5: A -inf, B inf, |A-B| inf",
        "losses: differ at 1 of 12 steps; largest |A-B| inf at step 5; at step 12: 0",
    ]


def test_nan_losses_compare_the_same_after_a_round_trip_through_files(tmp_path):
    a = records.save(synthetic_record(losses=_losses(s10=np.nan)), tmp_path / "a.json")
    b = records.save(synthetic_record(losses=_losses(s10=np.nan)), tmp_path / "b.json")
    c = records.save(synthetic_record(), tmp_path / "c.json")
    assert divergence.compare(a, b).identical
    assert divergence.compare(a, c).first_loss_step == 10


def test_first_differing_digest_step_and_variable():
    a = synthetic_record()
    b = synthetic_record(changed={"net/logits/kernel": 8, "net/dense/bias": 12})
    result = divergence.compare(a, b)
    assert result.first_digest_step == 8 and result.last_agreeing_step == 4
    assert result.first_variable == "net/logits/kernel"
    assert result.differing_variables == ["net/logits/kernel"]
    c = synthetic_record(changed={"net/logits/kernel": 8, "net/dense/bias": 8})
    result = divergence.compare(a, c)
    assert result.differing_variables == ["net/dense/bias", "net/logits/kernel"]  # model order
    assert result.first_variable == "net/dense/bias"
    assert "weights: identical at step 4, differ at step 8" in str(result)


def test_difference_before_training_and_meta_differences():
    a = synthetic_record()
    b = synthetic_record(changed={"net/dropout/seed_generator_state": 0})
    b.meta["settings"] = {"tf_intra_op_threads": 1}
    result = divergence.compare(a, b)
    assert result.first_digest_step == 0 and result.first_step == 0
    assert result.first_variable == "net/dropout/seed_generator_state"
    assert result.meta_differences == [("settings.tf_intra_op_threads", 2, 1)]
    text = str(result)
    assert "weights: differ already at step 0 (before training)" in text
    assert "settings.tf_intra_op_threads: 2 | 1" in text
    without = result.lines(meta=False)
    assert not any("settings" in line or line.startswith("meta") for line in without)
    assert len(without) == len(result.lines()) - 2  # the header and the one difference


def test_compare_reads_files_and_reports_deterministically(tmp_path):
    a = records.save(synthetic_record(), tmp_path / "a.json")
    b = records.save(synthetic_record(changed={"net/dense/kernel": 4}), tmp_path / "b.json")
    first = divergence.compare(a, b).lines()
    assert first == divergence.compare(a, b).lines()
    assert first[0] == f"A: {a}" and first[1] == f"B: {b}"


def test_mismatched_pair_is_an_error():
    with pytest.raises(RecordError, match="different numbers of steps"):
        divergence.compare(synthetic_record(), synthetic_record(steps=8))


# --- the digest map ------------------------------------------------------------------------------

MAP_NAMES = [name for name, *_ in VARIABLES]
S, D, N = divergence.SAME, divergence.DIFFERENT, divergence.NOT_RECORDED


def _image(fig):
    (ax,) = [ax for ax in fig.axes if ax.images]
    return ax, np.asarray(ax.images[0].get_array())


def test_the_map_cells_follow_the_digests():
    a = synthetic_record(steps=12, every=4)
    b = synthetic_record(steps=12, every=4, changed={"net/dense/bias": 8, "net/logits/kernel": 12})
    dmap = divergence.digest_map(a, b)
    assert dmap.variables == MAP_NAMES and dmap.steps == [0, 4, 8, 12]
    expected = np.array(
        [
            [S, S, S, S],  # net/dense/kernel
            [S, S, D, D],  # net/dense/bias: from step 8 on
            [S, S, S, S],  # net/dropout/seed_generator_state
            [S, S, S, D],  # net/logits/kernel: at step 12
        ]
    )
    assert np.array_equal(dmap.cells, expected)
    assert (dmap.first_step, dmap.first_variable) == (8, "net/dense/bias")
    # The first difference agrees with compare's.
    cmp = divergence.compare(a, b)
    assert (cmp.first_digest_step, cmp.first_variable) == (dmap.first_step, dmap.first_variable)

    fig = divergence.plot_map(a, b)
    ax, image = _image(fig)
    assert np.array_equal(image, expected)  # the drawn cells are the digests' verdicts
    assert [t.get_text() for t in ax.get_yticklabels()] == MAP_NAMES
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "4", "8", "12"]
    assert fig.texts[0].get_text() == "first differing digest: step 8, net/dense/bias"
    # The first difference is marked: a dashed line before column 2, a box on its cell, bold name.
    (line,) = ax.lines
    assert list(line.get_xdata()) == [1.5, 1.5]
    boxes = [p for p in ax.patches if p.get_linewidth() == 2]
    assert [(b.get_x(), b.get_y()) for b in boxes] == [(1.5, 0.5)]
    assert ax.get_yticklabels()[1].get_fontweight() == "bold"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["same digest", "different", "first differing digest"]


def test_the_map_of_identical_records_has_no_difference():
    fig = divergence.plot_map(synthetic_record(), synthetic_record())
    ax, image = _image(fig)
    assert (image == S).all() and not ax.lines
    assert fig.texts[0].get_text() == "identical at every step both records hold"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["same digest", "different"]


def test_steps_and_variables_only_one_record_has_are_not_recorded(tmp_path):
    # A partial run (8 of 12 steps) and a variable only the second record has.
    extra = [*VARIABLES, ("net/extra/bias", [2], "float32", "weight")]
    a = records.save(synthetic_record(steps=12, every=4), tmp_path / "a.json")
    b = records.save(
        synthetic_record(steps=8, every=4, variables=extra, changed={"net/dense/kernel": 4}),
        tmp_path / "b.json",
    )
    dmap = divergence.digest_map(tmp_path / "a.json", tmp_path / "b.json")  # files too
    assert dmap.variables == [*MAP_NAMES, "net/extra/bias"] and dmap.steps == [0, 4, 8, 12]
    expected = np.array([[S, D, D, N], [S, S, S, N], [S, S, S, N], [S, S, S, N], [N, N, N, N]])
    assert np.array_equal(dmap.cells, expected)
    fig = divergence.plot_map(a, b)
    _, image = _image(fig)
    assert np.array_equal(image, expected)
    assert "not recorded" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_many_variables_are_grouped_by_layer():
    many = [(f"deep/layer_{i:02d}/{k}", [2], "float32", "weight") for i in range(25) for k in "wb"]
    a = synthetic_record(variables=many)
    b = synthetic_record(variables=many, changed={"deep/layer_03/b": 8})
    assert len(many) > divergence.GROUP_ABOVE
    fig = divergence.plot_map(a, b)
    ax, image = _image(fig)
    assert image.shape == (25, 4)
    assert ax.get_yticklabels()[3].get_text() == "deep/layer_03 (2)"
    assert np.array_equal(image[3], [S, S, D, D]) and (np.delete(image, 3, axis=0) == S).all()
    assert fig.texts[0].get_text() == "first differing digest: step 8, deep/layer_03/b"
    # One row per variable on request.
    _, full = _image(divergence.plot_map(a, b, group=False))
    assert full.shape == (50, 4) and np.array_equal(full[7], [S, S, D, D])


def test_the_map_leaves_matplotlib_unloaded_until_drawn():
    code = "import sys\nimport reprodl.divergence\nprint('matplotlib' in sys.modules)\n"
    proc = run_python("-c", code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False"]


# --- real runs (TensorFlow, in this process, small synthetic data) ----------------------------


@pytest.fixture(scope="module")
def digits() -> Split:
    """200 digit-like images (the label is the bright row): 10 steps of 20 per epoch."""
    reprodl.setup(0)
    return synthetic_digits()


def test_bisect_finds_the_first_step_of_a_reshuffled_second_epoch(digits, tmp_path):
    spec = training.RunSpec(model="softmax", steps=30, batch_size=20, order="global-after-first")
    # The same code twice in one process: epoch 2 is shuffled from NumPy's global state, which
    # the first run has moved on. Epoch 2 starts at step 11.
    a = divergence.record(spec, tmp_path / "a.json", data=digits, checkpoint_every=10)
    b = divergence.record(spec, tmp_path / "b.json", data=digits, checkpoint_every=10)
    cmp = divergence.compare(a, b)
    assert cmp.first_loss_step == 11
    assert (cmp.last_agreeing_step, cmp.first_digest_step) == (10, 20)
    before = np.random.get_state()[1].copy()
    result = divergence.bisect(a, b, data=digits)
    assert np.array_equal(np.random.get_state()[1], before)  # the caller's RNG state is kept
    assert result.reproduced == (None, None)
    assert (result.start, result.end) == (10, 20)
    assert result.first_step == 11 and result.first_loss_step == 11
    assert result.first_variable == "softmax_regression/logits/kernel"
    assert "NumPy global random state" in result.checkpoint_differences
    w = result.weight_differences["softmax_regression/logits/kernel"]
    assert w[0] == 0 and w[1] > 0 and len(w) == 11  # steps 10..20
    assert "first differing step: 11" in str(result)


def test_bisect_names_an_entropy_seeded_dropout_layer(digits, tmp_path):
    spec = training.RunSpec(
        model="mlp", steps=10, batch_size=20, dropout=0.3, dropout_seed="entropy"
    )
    a = divergence.record(spec, tmp_path / "a.json", data=digits, checkpoint_every=5)
    b = divergence.record(spec, tmp_path / "b.json", data=digits, checkpoint_every=5)
    result = divergence.bisect(a, b, data=digits)
    assert result.reproduced == (None, None)
    assert result.first_step == 0 and result.first_variable == "mlp/dropout_1/seed_generator_state"
    assert result.checkpoint_differences == ["model variable mlp/dropout_1/seed_generator_state"]
    weights = [v["name"] for v in a.variables if v["kind"] == "weight"]
    assert all(result.first_differs[n] == 1 for n in weights)


def test_identical_runs_bisect_to_nothing(digits, tmp_path):
    spec = training.RunSpec(model="softmax", steps=6, batch_size=20)
    a = divergence.record(spec, tmp_path / "a.json", data=digits, checkpoint_every=3)
    b = divergence.record(spec, tmp_path / "b.json", data=digits, checkpoint_every=3)
    result = divergence.bisect(a, b, data=digits)
    assert not result.diverged and result.replays is None
    assert str(result) == "bisect: nothing to do, the records are identical"


def test_resume_from_a_checkpoint_is_bit_exact(digits, tmp_path):
    # Seeded dropout and the classic global order: the checkpoint must carry the dropout RNG
    # state, Adam's slots, the stream position and NumPy's global state for this to hold.
    spec = training.RunSpec(model="mlp", steps=25, batch_size=20, dropout=0.2, order="global")
    np.random.seed(3)
    _, full = training.run(spec, digits, checkpoint_every=10, checkpoint_dir=tmp_path)
    np.random.seed(99)  # a resumed run must not depend on the global state it starts with
    _, resumed = training.run(spec, digits, resume=tmp_path / "step_00000010.npz")
    assert resumed.start_step == 10 and resumed.steps == 15
    assert resumed.final_digest == full.final_digest
    assert np.array_equal(resumed.losses.view(np.uint32), full.losses[10:].view(np.uint32))
    assert resumed.final_digests == full.final_digests


def test_corrupt_checkpoint_and_missing_checkpoints(digits, tmp_path):
    spec = training.RunSpec(model="softmax", steps=4, batch_size=20)
    _, _ = training.run(spec, digits, checkpoint_every=2, checkpoint_dir=tmp_path)
    path = tmp_path / "step_00000002.npz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(training.CheckpointError, match="step_00000002.npz: corrupt checkpoint"):
        training.load_checkpoint(path)
    a = divergence.record(spec, tmp_path / "a.json", data=digits)
    b = divergence.record(
        training.RunSpec(model="softmax", steps=4, batch_size=20, seed=1),
        tmp_path / "b.json",
        data=digits,
    )
    with pytest.raises(RecordError, match="no checkpoints"):
        divergence.bisect(a, b, data=digits)


def test_a_replay_in_its_own_process_fails_with_its_stderr_or_is_stopped_at_its_timeout(tmp_path):
    """The child is ``python -m reprodl replay``: a missing record fails at once; a record it
    cannot finish reading (a FIFO nobody writes) hangs until the timeout stops it."""
    from types import SimpleNamespace

    from reprodl.errors import SubprocessError

    missing = SimpleNamespace(source=str(tmp_path / "missing.json"), name="run a")
    with pytest.raises(SubprocessError, match=r"replaying run a failed \(exit status 2\)"):
        divergence.replay_in_subprocess(missing, 0, 1)
    os.mkfifo(tmp_path / "hangs.json")
    hangs = SimpleNamespace(source=str(tmp_path / "hangs.json"), name="run b")
    with pytest.raises(SubprocessError, match=r"replaying run b took more than 2 s and was stop"):
        divergence.replay_in_subprocess(hangs, 0, 1, timeout=2)
