"""Data-parallel training (reprodl.distributed): replicas in one process, workers in many, and the
launcher's handling of failing, hanging and blocked workers."""

from __future__ import annotations

import json
import os
import socket
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from support import run_python, synthetic_digits

from reprodl import distributed, fingerprint
from reprodl.batches import IndexStream
from reprodl.distributed import worker
from reprodl.errors import SubprocessError, UsageError

STEPS = 10
EXAMPLES = 400

# One fresh process: 2 logical CPUs, then several runs; prints one JSON line per run.
REPLICATED = textwrap.dedent(
    f"""
    import json, sys
    sys.path.insert(0, "tests")
    from reprodl import distributed
    from support import synthetic_digits

    distributed.set_logical_cpus(2)
    split = synthetic_digits({EXAMPLES})
    runs = {{
        "1": dict(replicas=1),
        "2": dict(replicas=2),
        "2-dataset": dict(replicas=2, feed="dataset"),
        "2-dropout": dict(replicas=2, dropout=0.5, digest_every=5),
        "2-dropout-shared": dict(replicas=2, dropout=0.5, dropout_masks="shared"),
    }}
    out = {{}}
    for name, kw in runs.items():
        r = distributed.train_replicated(split, steps={STEPS}, batch_size=100, seed=0, **kw)
        out[name] = {{
            "losses": r.losses.tolist(), "fingerprint": r.fingerprint,
            "replicas": r.replicas, "first_split": r.first_split,
            "digests": {{str(k): d for k, d in r.digests.items()}},
            "kinds": {{v.name: v.kind for v in r.variables}},
        }}
    print(json.dumps(out))
    """
)


def _replicated_run() -> dict:
    proc = run_python("-c", REPLICATED, env={"PYTHONHASHSEED": "0"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def replicated() -> tuple[dict, dict]:
    """The same runs in two fresh processes."""
    return _replicated_run(), _replicated_run()


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _wait_gone(pids: list[int], seconds: float = 5) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


# --- fast checks ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_set_logical_cpus_rejects_bad_counts(n):
    with pytest.raises(UsageError, match="logical CPUs"):
        distributed.set_logical_cpus(n)


def test_uneven_global_batch_is_refused():
    with pytest.raises(UsageError, match="split evenly"):
        distributed.train_replicated(synthetic_digits(50), replicas=3, steps=1, batch_size=10)


def test_tf_config_names_local_workers():
    config = json.loads(distributed.tf_config([5001, 5002], 1))
    assert config == {
        "cluster": {"worker": ["127.0.0.1:5001", "127.0.0.1:5002"]},
        "task": {"type": "worker", "index": 1},
    }


def test_free_ports_are_distinct_and_bindable():
    ports = distributed.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        distributed.check_port_free(port)


def test_taken_port_is_refused_before_any_worker_starts(tmp_path):
    marker = tmp_path / "started"
    argv = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        ports = [distributed.free_ports(1)[0], taken]
        with pytest.raises(UsageError, match=f"port {taken} on 127.0.0.1 is already in use"):
            distributed.launch_workers(2, argv, timeout=30, ports=ports)
    assert not marker.exists()


def _worker_result(index: int, **changes) -> dict:
    """A worker's result as a worker writes it (trainer 'loop', 2 steps, a test count)."""
    variables = [
        {"name": "mlp/hidden_1/kernel", "shape": [784, 8], "dtype": "float32", "kind": "weight"},
        {"name": "mlp/dropout_1/seed_state", "shape": [2], "dtype": "int64", "kind": "rng"},
    ]
    digests = {
        str(step): {"mlp/hidden_1/kernel": "a" * 64, "mlp/dropout_1/seed_state": f"{index}" * 64}
        for step in (0, 2)
    }
    result = {
        "worker": index,
        "replicas": 2,
        "trainer": "loop",
        "losses": [2.25, 2.0],
        "fingerprint": "f" * 64,
        "build_seconds": 0.2,
        "first_step_seconds": 0.5,
        "seconds_per_step": 0.01,
        "variables": variables,
        "digests": digests,
        "test": {"correct": 7, "total": 10},
        "strategy_seconds": 0.1,
        "versions": {"tensorflow": "2.21.0"},
    }
    return {**result, **changes}


def _write_results(folder: Path, *results) -> Path:
    for i, result in enumerate(results):
        path = folder / f"worker_{i}.json"
        path.write_text(result if isinstance(result, str) else json.dumps(result))
    return folder / "worker_{index}.json"


def test_worker_results_are_read_back_and_make_worker_0s_record(tmp_path):
    out = _write_results(tmp_path, _worker_result(0), _worker_result(1))
    results = distributed.read_worker_results(out, 2)
    assert [r["worker"] for r in results] == [0, 1]
    record, test = distributed.workers_record(results)
    assert (test.correct, test.total) == (7, 10)
    assert record.final_digest == "f" * 64 and sorted(record.digests) == []
    assert record.losses.dtype == np.float32 and record.losses.tolist() == [2.25, 2.0]
    assert [v.kind for v in record.variables] == ["weight", "rng"]
    assert record.final_digests["mlp/dropout_1/seed_state"] == "0" * 64  # worker 0's own


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ('{"worker": 1, "losses": [', r"worker 1's result .*worker_1\.json: not valid JSON"),
        (None, r"worker 1's result .*worker_1\.json: no such file"),
        (
            _worker_result(1, digests=None),
            r"^worker 1's result: field 'digests' has the wrong type \(null None; expected obj",
        ),
        (
            {k: v for k, v in _worker_result(1).items() if k != "variables"},
            r"^worker 1's result: missing field 'variables'$",
        ),
        (_worker_result(1, fingerprint="f00d"), r"^worker 1's result: field 'fingerprint' must"),
        (_worker_result(1, losses=[2.25, "NaN"]), r"^worker 1's result: field 'losses\[1\]' has"),
        (_worker_result(1, surprise=1), r"^worker 1's result: unknown field 'surprise'$"),
        (_worker_result(0), r"^worker 1's result .*worker_1\.json says it is worker 0$"),
    ],
)
def test_a_corrupt_worker_result_names_the_worker(tmp_path, second, message):
    results = [_worker_result(0)] + ([] if second is None else [second])
    out = _write_results(tmp_path, *results)
    with pytest.raises(SubprocessError, match=message):
        distributed.read_worker_results(out, 2)


def test_workers_record_checks_its_results_and_that_the_workers_agree():
    broken = {k: v for k, v in _worker_result(1).items() if k != "trainer"}
    with pytest.raises(SubprocessError, match=r"^worker 1's result: missing field 'trainer'$"):
        distributed.workers_record([_worker_result(0), broken])
    with pytest.raises(SubprocessError, match="the workers disagree: worker 0 ended with"):
        distributed.workers_record([_worker_result(0), _worker_result(1, losses=[2.25, 2.5])])
    fit = {k: v for k, v in _worker_result(0, trainer="fit").items() if k != "digests"}
    with pytest.raises(SubprocessError, match="only trainer 'loop' with a test split"):
        distributed.workers_record([fit])


def test_run_meta_says_how_the_global_batch_was_split():
    from reprodl.training import RunSpec

    spec = RunSpec(model="mlp", steps=4, batch_size=100, dropout=0.5).resolved()
    meta = distributed.run_meta(spec, replicas=2, workers=2)
    assert meta == {
        **spec.to_dict(),
        "replicas": 2,
        "workers": 2,
        "feed": "values",
        "dropout_masks": "per_replica",
    }
    assert distributed.run_meta(spec, replicas=2)["workers"] == 1


def test_save_for_workers_writes_what_a_worker_loads(tmp_path):
    from reprodl.data import Mnist

    train, test = synthetic_digits(30), synthetic_digits(20, seed=1)
    mnist = Mnist(train=train, validation=test, test=test, full_train=train, source="synthetic")
    path = distributed.save_for_workers(mnist, tmp_path / "mnist.npz")
    assert path == tmp_path / "mnist.npz"
    loaded_train, loaded_test = worker._load_split(str(path))
    assert np.array_equal(loaded_train.images, train.images)
    assert np.array_equal(loaded_train.labels, train.labels)
    assert loaded_test is not None and np.array_equal(loaded_test.labels, test.labels)


# Worker 0 starts a grandchild and waits; worker 1 fails (or waits too: the timeout case).
SLEEPER = """
import json, subprocess, sys, time
child = subprocess.Popen(["sleep", "60"])
with open({pids!r}.replace("{{i}}", "{{index}}"), "w") as fh:
    json.dump([__import__("os").getpid(), child.pid], fh)
if {{index}} == 1 and {crash}:
    time.sleep(0.5)
    print("worker one gives up", file=sys.stderr)
    sys.exit(3)
time.sleep(60)
"""


def _sleepers(tmp_path: Path, crash: bool) -> tuple[list[str], list[Path]]:
    pids = str(tmp_path / "pids_{i}.json")
    code = SLEEPER.format(pids=pids, crash=crash)
    return [sys.executable, "-c", code], [tmp_path / f"pids_{i}.json" for i in range(2)]


def _started_pids(files: list[Path]) -> list[int]:
    return [pid for f in files if f.exists() for pid in json.loads(f.read_text())]


def test_crashing_worker_stops_the_others(tmp_path):
    argv, files = _sleepers(tmp_path, crash=True)
    start = time.monotonic()
    with pytest.raises(SubprocessError) as err:
        distributed.launch_workers(2, argv, timeout=60)
    assert time.monotonic() - start < 30  # not the 60 s of the sleeping worker
    message = str(err.value)
    assert "worker 1 of 2 exited with status 3" in message
    assert "worker one gives up" in message
    pids = _started_pids(files)
    assert len(pids) == 4  # both workers and their grandchildren had started
    assert _wait_gone(pids) == []


def test_hanging_workers_are_stopped_at_the_timeout(tmp_path):
    argv, files = _sleepers(tmp_path, crash=False)
    start = time.monotonic()
    with pytest.raises(SubprocessError, match=r"worker\(s\) 0, 1 of 2 did not finish within 3 s"):
        distributed.launch_workers(2, argv, timeout=3)
    assert time.monotonic() - start < 20
    pids = _started_pids(files)
    assert len(pids) == 4
    assert _wait_gone(pids) == []


def test_set_logical_cpus_after_start_is_a_settings_error():
    code = textwrap.dedent(
        """
        from reprodl import distributed, runtime
        from reprodl.errors import SettingsError
        tf = runtime.import_tensorflow()
        tf.constant(1.0) + 1.0
        try:
            distributed.set_logical_cpus(2)
        except SettingsError as exc:
            print("SettingsError:", exc)
        """
    )
    proc = run_python("-c", code, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SettingsError: TensorFlow has already initialised its devices" in proc.stdout


# --- real trainings ----------------------------------------------------------------------------


@pytest.mark.slow
def test_replicated_runs_reproduce_across_processes(replicated):
    first, second = replicated
    assert first == second
    for run in first.values():
        assert len(run["losses"]) == STEPS
        assert all(np.isfinite(run["losses"]))


@pytest.mark.slow
def test_one_and_two_replicas_differ_in_the_bits(replicated):
    runs = replicated[0]
    assert runs["1"]["replicas"] == 1 and runs["2"]["replicas"] == 2
    assert runs["1"]["fingerprint"] != runs["2"]["fingerprint"]
    assert runs["1"]["losses"] != runs["2"]["losses"]
    # ... yet they train the same model on the same batches: the losses agree closely
    np.testing.assert_allclose(runs["1"]["losses"], runs["2"]["losses"], rtol=1e-4)


@pytest.mark.slow
def test_each_replica_gets_its_slice_of_the_global_batch(replicated):
    batch = IndexStream(EXAMPLES, seed=0).next(100)
    halves = [batch[:50].tolist(), batch[50:].tolist()]
    runs = replicated[0]
    assert [list(s) for s in runs["2"]["first_split"]] == halves
    assert [list(s) for s in runs["2-dataset"]["first_split"]] == halves
    assert [list(s) for s in runs["1"]["first_split"]] == [batch.tolist()]
    # the two feeds give the replicas the same examples, so the same bits
    assert runs["2-dataset"]["fingerprint"] == runs["2"]["fingerprint"]


@pytest.mark.slow
def test_per_replica_dropout_masks_change_the_run(replicated):
    runs = replicated[0]
    assert runs["2-dropout"]["fingerprint"] != runs["2-dropout-shared"]["fingerprint"]
    assert runs["2-dropout"]["fingerprint"] != runs["2"]["fingerprint"]


@pytest.mark.slow
def test_replicated_runs_record_digests_of_replica_0(replicated):
    run = replicated[0]["2-dropout"]
    assert sorted(map(int, run["digests"])) == [0, 5, STEPS]
    assert run == replicated[1]["2-dropout"]
    assert list(run["kinds"].values()).count("rng") == 1
    weights = [n for n, k in run["kinds"].items() if k == "weight"]
    final = run["digests"][str(STEPS)]
    assert fingerprint.combine(final[n] for n in weights) == run["fingerprint"]
    (rng,) = [n for n, k in run["kinds"].items() if k == "rng"]
    assert run["digests"]["0"][rng] != final[rng]  # the dropout state advanced
    assert set(replicated[0]["2"]["digests"]) == {"0", str(STEPS)}  # digest_every=0


# A replicated step with an op that has no deterministic behaviour: an unseeded stateful random
# op (on CPU, the ops TensorFlow lists as nondeterministic on GPU run deterministically).
NONDETERMINISTIC = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, "tests")
    import keras
    import numpy as np
    from reprodl import distributed, runtime
    from reprodl.distributed import replicated
    from reprodl.errors import SettingsError
    from support import synthetic_digits

    distributed.set_logical_cpus(2)
    runtime.setup(0)
    tf = runtime.import_tensorflow()
    strategy = replicated._strategy(2)

    def noise(x):
        return x + tf.raw_ops.RandomUniform(shape=tf.shape(x), dtype=x.dtype, seed=0, seed2=0)

    def attempt():
        with strategy.scope():
            model = keras.Sequential([
                keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Lambda(noise),
                keras.layers.Dense(10),
            ])
            optimizer = keras.optimizers.Adam(1e-3)
            optimizer.build(model.trainable_variables)
        batches, _ = replicated._batches(
            strategy, synthetic_digits(100), [np.arange(100)], "values", "DATA"
        )
        step = replicated._step_function(strategy, model, optimizer, 100)
        try:
            step(next(batches)).numpy()
            return "ran"
        except tf.errors.InvalidArgumentError as exc:
            return exc.message

    def required():
        try:
            distributed.require_op_determinism()
            return "ok"
        except SettingsError as exc:
            return str(exc)

    out = {"on": attempt(), "required_on": required()}
    runtime.set_op_determinism(False)
    out.update(off=attempt(), required_off=required())
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_a_nondeterministic_op_fails_loudly_in_a_replicated_step():
    proc = run_python("-c", NONDETERMINISTIC, env={"PYTHONHASHSEED": "0"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "When determinism is enabled, random ops must have a seed specified" in out["on"]
    assert out["required_on"] == "ok"
    assert out["off"] == "ran"  # the same step without op determinism runs (unreproducibly)
    assert out["required_off"] == "op determinism is off: the replicated loop needs it on"


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory) -> Path:
    split = synthetic_digits(EXAMPLES)
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, images=split.images, labels=split.labels)
    return path


@pytest.mark.slow
def test_two_workers_agree_and_reproduce(tmp_path, mnist_like, replicated):
    launches = [
        distributed.run_workers(
            2, tmp_path / str(k), steps=STEPS, batch_size=100, seed=0, data=mnist_like
        )
        for k in range(2)
    ]
    for results in launches:
        assert [r["worker"] for r in results] == [0, 1]
        assert all(r["replicas"] == 2 for r in results)
        assert results[0]["fingerprint"] == results[1]["fingerprint"]
        assert results[0]["losses"] == results[1]["losses"]
        assert all(r["strategy_seconds"] >= 0 and r["seconds_per_step"] > 0 for r in results)
        assert all(r["build_seconds"] > 0 for r in results)  # chapter 12 prints it
    assert launches[0][0]["fingerprint"] == launches[1][0]["fingerprint"]
    assert launches[0][0]["losses"] == launches[1][0]["losses"]
    # two workers compute what two replicas in one process compute
    assert launches[0][0]["fingerprint"] == replicated[0]["2"]["fingerprint"]


@pytest.mark.slow
def test_keras_fit_under_multi_worker_strategy_still_fails(tmp_path, mnist_like):
    """The module docstring says fit fails under MWMS; this notices when Keras fixes it."""
    with pytest.raises(SubprocessError, match="PerReplica"):
        distributed.run_workers(2, tmp_path, steps=3, data=mnist_like, trainer="fit", timeout=120)


MASKS = textwrap.dedent(
    """
    import json
    import numpy as np
    from reprodl import distributed, models, runtime

    distributed.set_logical_cpus(2)
    tf = runtime.import_tensorflow()
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices("CPU")]
    )
    out = {}
    for masks in ("shared", "per_replica"):
        with strategy.scope():
            model = models.build("mlp", 0, dropout=0.5)
        seeds = distributed.seed_replicas(model, strategy) if masks == "per_replica" else None
        layer = model.get_layer("dropout_1")
        run = tf.function(lambda: strategy.run(lambda: layer(tf.ones((4, 128)), training=True)))
        steps = []
        for _ in range(2):
            steps.append([(t.numpy() > 0).astype(int).ravel().tolist()
                          for t in strategy.experimental_local_results(run())])
        out[masks] = {"seeds": seeds, "masks": steps}
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_replicas_share_dropout_masks_unless_seeded_apart():
    proc = run_python("-c", MASKS, env={"PYTHONHASHSEED": "0"}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    shared, apart = out["shared"]["masks"], out["per_replica"]["masks"]
    for step in shared:  # Keras' default: both replicas drop the same units
        assert step[0] == step[1]
    for step in apart:
        assert step[0] != step[1]
    assert [s[0] for s in apart] == [s[0] for s in shared]  # replica 0 keeps the layer's seed
    assert shared[0][0] != shared[1][0]  # the masks still change from step to step
    (layer_seeds,) = out["per_replica"]["seeds"]
    assert len(layer_seeds) == 2 and layer_seeds[0] != layer_seeds[1]
