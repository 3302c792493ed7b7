"""Models are seeded explicitly; the training loop is deterministic in-process and learns."""

import numpy as np
import pytest
from support import synthetic_digits

import reprodl
from reprodl import fingerprint, models, training


@pytest.fixture(autouse=True)
def _setup():
    reprodl.setup(0)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_same_seed_same_initial_weights_other_seed_other(name):
    a = fingerprint.weights_digest(models.build(name, seed=1))
    assert fingerprint.weights_digest(models.build(name, seed=1)) == a
    assert fingerprint.weights_digest(models.build(name, seed=2)) != a


def test_softmax_regression_starts_at_zero():
    model = models.build("softmax")
    assert all(not np.any(w) for w in model.get_weights())


def test_deep_cnn_architecture():
    model = models.build("cnn")
    shapes = [tuple(w.shape) for w in model.get_weights()]
    assert shapes == [
        (5, 5, 1, 32),
        (32,),
        (5, 5, 32, 64),
        (64,),
        (3136, 1024),
        (1024,),
        (1024, 10),
        (10,),
    ]


def test_unknown_model():
    with pytest.raises(ValueError, match="unknown model"):
        models.build("resnet")


synthetic = synthetic_digits


def run(order_seed, model_seed=0, steps=30, digest_every=10):
    model = models.build("mlp", seed=model_seed, dropout=0.2)
    record = training.train(
        model,
        synthetic(),
        steps=steps,
        batch_size=20,
        optimizer=training.make_optimizer("sgd", 0.1),
        order_seed=order_seed,
        digest_every=digest_every,
    )
    return model, record


def test_training_is_bit_identical_in_process_and_records_steps():
    _, a = run(order_seed=5)
    _, b = run(order_seed=5)
    assert a.final_digest == b.final_digest
    assert np.array_equal(a.losses.view(np.uint32), b.losses.view(np.uint32))
    assert sorted(a.digests) == [10, 20, 30] and a.digests == b.digests
    assert a.losses.dtype == np.float32 and a.steps == 30


def test_batch_order_changes_the_bits():
    _, a = run(order_seed=5)
    _, c = run(order_seed=6)
    assert a.final_digest != c.final_digest


def test_training_learns_and_evaluation_counts_exactly():
    model, record = run(order_seed=1, steps=100, digest_every=0)
    assert record.losses[-10:].mean() < record.losses[:10].mean()
    result = training.evaluate(model, synthetic(100, seed=9), batch_size=32)
    assert result.total == 100 and result.correct > 50
    assert str(result) == f"{result.correct}.00% ({result.correct}/100)"


def test_format_float_round_trips_float32():
    for x in [0.1, 1 / 3, 2.5e-8, 123.456]:
        text = fingerprint.format_float(x)
        assert np.float32(text) == np.float32(x)


def test_dropout_seed_equal_to_seed_does_not_reuse_an_initializer_seed():
    """Keras draws statelessly: equal seeds would make the first mask a function of the weights."""
    initializer_seeds = set(models.layer_seeds(7, 5))
    assert not initializer_seeds & set(models.dropout_seeds(7, 3))
    cnn = models.build("cnn", seed=7, dropout_seed=7)
    assert cnn.get_layer("dropout").seed not in initializer_seeds


def test_deep_cnn_classic_init_is_the_tutorials():
    classic = models.deep_cnn(seed=0, init="classic")
    glorot = models.deep_cnn(seed=0)
    for name in ("conv_1", "conv_2", "dense_1024", "logits"):
        kernel = classic.get_layer(name).kernel.numpy()
        assert np.abs(kernel).max() <= 0.2 and 0.085 < kernel.std() < 0.09  # truncated at 2 std
        assert np.all(classic.get_layer(name).bias.numpy() == np.float32(0.1))
        assert not np.any(glorot.get_layer(name).bias.numpy())
    assert glorot.get_layer("dense_1024").kernel.numpy().std() < 0.025


def test_what_a_run_returns_is_plain_exact_data():
    import numpy as np

    from reprodl.training.results import Evaluation, TrainingRecord

    assert str(Evaluation(9812, 10000)) == "98.12% (9812/10000)"
    assert Evaluation(1, 4).accuracy == 0.25
    record = TrainingRecord(np.float32([2.0, 1.5, 1.25]), seconds=3.0, first_step_seconds=1.0)
    assert (record.steps, record.final_loss, record.steps_per_second) == (3, 1.25, 1.0)
    assert np.isnan(TrainingRecord(np.float32([1.0])).steps_per_second)
