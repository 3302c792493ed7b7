"""The checkpoint format: an exact round trip, and a clear CheckpointError for every bad file or
a checkpoint that does not fit the model, optimizer or batch stream it is restored into."""

from __future__ import annotations

import numpy as np
import pytest

import reprodl
from reprodl import models
from reprodl.batches import IndexStream
from reprodl.errors import CheckpointError
from reprodl.training import checkpoints as ck
from reprodl.training.spec import make_optimizer


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A real checkpoint of the MLP after building its optimizer, and what it was taken from."""
    reprodl.setup(0)
    model = models.build("mlp", 0)
    optimizer = make_optimizer("adam", 1e-3)
    optimizer.build(model.trainable_variables)
    stream = IndexStream(50, seed=3)
    stream.next(20)
    ckpt = ck.capture_checkpoint(7, model, optimizer, stream)
    path = ck.checkpoint_path(tmp_path_factory.mktemp("ckpt"), 7)
    ck.save_checkpoint(ckpt, path)
    return ckpt, path


def test_round_trip_is_exact(saved):
    ckpt, path = saved
    assert path.name == "step_00000007.npz"
    back = ck.load_checkpoint(path)
    assert back.step == 7 and back.path == str(path)
    assert back.differences(ckpt) == []
    assert (back.stream_epoch, back.stream_pos) == (0, 20)


def test_differences_name_each_part(saved):
    ckpt, path = saved
    other = ck.load_checkpoint(path)
    name = next(iter(other.model))
    other.model[name] = other.model[name] + 1
    other.stream_pos = 21
    assert other.differences(ckpt) == [
        f"model variable {name}",
        "batch stream (position or epoch order)",
    ]


def test_restore_continues_the_stream_exactly(saved):
    ckpt, _ = saved
    model = models.build("mlp", 1)
    optimizer = make_optimizer("adam", 1e-3)
    stream = IndexStream(50, seed=3)
    ck.restore_checkpoint(ckpt, model, optimizer, stream)
    reference = IndexStream(50, seed=3)
    reference.next(20)
    assert np.array_equal(stream.next(45), reference.next(45))  # across the epoch boundary
    assert ck.capture_checkpoint(7, model, optimizer, IndexStream(50, seed=3)).model.keys() == (
        ckpt.model.keys()
    )


def test_missing_truncated_and_foreign_files(saved, tmp_path):
    _, path = saved
    with pytest.raises(CheckpointError, match="nothing.npz: no such checkpoint file"):
        ck.load_checkpoint(tmp_path / "nothing.npz")
    cut = tmp_path / "cut.npz"
    cut.write_bytes(path.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=r"cut.npz: corrupt checkpoint \(BadZipFile"):
        ck.load_checkpoint(cut)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, format=np.array("something.else"), version=np.array(1))
    with pytest.raises(CheckpointError, match="foreign.npz: not a reprodl checkpoint"):
        ck.load_checkpoint(foreign)
    newer = tmp_path / "newer.npz"
    np.savez(newer, format=np.array(ck.CHECKPOINT_FORMAT), version=np.array(99))
    with pytest.raises(CheckpointError, match="newer.npz: checkpoint version 99 unknown"):
        ck.load_checkpoint(newer)
    partial = tmp_path / "partial.npz"
    np.savez(partial, format=np.array(ck.CHECKPOINT_FORMAT), version=np.array(1))
    with pytest.raises(CheckpointError, match=r"partial.npz: corrupt checkpoint \(KeyError"):
        ck.load_checkpoint(partial)


def test_a_checkpoint_that_does_not_fit(saved):
    _, path = saved
    ckpt = ck.load_checkpoint(path)
    adam = make_optimizer("adam", 1e-3)
    with pytest.raises(CheckpointError, match=f"{path}: its variables are not those of this model"):
        ck.restore_checkpoint(ckpt, models.build("cnn", 0), adam, IndexStream(50, seed=3))
    with pytest.raises(CheckpointError, match="mlp/hidden_1/kernel has shape .784, 128., not"):
        ck.restore_checkpoint(ckpt, models.mlp(0, hidden=(64,)), adam, IndexStream(50, seed=3))
    model = models.build("mlp", 0)
    with pytest.raises(CheckpointError, match="its optimizer state does not fit this optimizer"):
        ck.restore_checkpoint(ckpt, model, make_optimizer("sgd", 0.1), IndexStream(50, seed=3))
    with pytest.raises(CheckpointError, match="covers another number of examples"):
        ck.restore_checkpoint(ckpt, model, make_optimizer("adam", 1e-3), IndexStream(60, seed=3))
