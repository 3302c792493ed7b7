"""Multi-worker training: K local processes under ``MultiWorkerMirroredStrategy`` (ports,
``TF_CONFIG``, the launcher on :mod:`reprodl._proc`) and their results, checked by their schema."""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprodl import _io, _proc, schemas
from reprodl.distributed.replicated import record_of
from reprodl.errors import SubprocessError, UsageError
from reprodl.record.state import VariableInfo
from reprodl.training.results import Evaluation, TrainingRecord

if TYPE_CHECKING:
    pass


#: Seconds a stopped worker gets between SIGTERM and SIGKILL.
GRACE_SECONDS = 3.0
#: The schema of a worker's JSON result (:mod:`reprodl.schemas`).
WORKER_SCHEMA = "distributed_worker"


def workers_record(results: Sequence[Mapping[str, Any]]) -> tuple[TrainingRecord, Evaluation]:
    """Worker 0's run (its :class:`~reprodl.training.TrainingRecord` and test count) from the
    results :func:`run_workers` returns; :class:`SubprocessError` for a result that does not have
    the schema's structure, or unless every worker reached the same fingerprint, losses and
    weight digests (each worker's random generator states are its own replica's: only the
    weights must agree)."""
    for i, r in enumerate(results):
        check_worker_result(r, f"worker {i}")
    first = results[0]
    if first["trainer"] != "loop" or "test" not in first:
        raise SubprocessError(
            "worker 0's result has no digests or no test count: only trainer 'loop' with a test "
            "split in its data makes a record"
        )
    weights = [v["name"] for v in first["variables"] if v["kind"] == "weight"]

    def agreed(r: Mapping[str, Any]) -> tuple[Any, ...]:
        digests = {k: [d[n] for n in weights] for k, d in r["digests"].items()}
        return r["fingerprint"], r["losses"], digests

    for r in results[1:]:
        if agreed(r) != agreed(first):
            raise SubprocessError(
                f"the workers disagree: worker 0 ended with fingerprint {first['fingerprint']}, "
                f"worker {r['worker']} with {r['fingerprint']} (or their losses or weight "
                "digests differ): the run is not data-parallel bit for bit"
            )
    variables = [
        VariableInfo(v["name"], tuple(v["shape"]), v["dtype"], v["kind"])
        for v in first["variables"]
    ]
    digests = {int(k): v for k, v in first["digests"].items()}
    test = Evaluation(first["test"]["correct"], first["test"]["total"])
    return record_of(first["losses"], first["fingerprint"], variables, digests), test


def check_worker_result(result: Any, where: str) -> None:
    """:class:`SubprocessError` ``"WHERE's result: problem"`` unless ``result`` has the structure
    of a worker's result (schema :data:`WORKER_SCHEMA`)."""
    schemas.check(result, WORKER_SCHEMA, f"{where}'s result", error=SubprocessError)


def read_worker_results(out: str | os.PathLike[str], n: int) -> list[dict[str, Any]]:
    """The results of workers ``0 .. n-1``, read from ``out`` (``{index}``: the worker's index)
    and checked: :class:`SubprocessError` naming the worker and its file when one is missing,
    not JSON, or not a worker's result."""
    results = []
    for i in range(n):
        path = str(out).replace("{index}", str(i))
        try:
            result = _io.read_json(path, error=SubprocessError)
        except SubprocessError as exc:
            raise SubprocessError(f"worker {i}'s result {exc}") from None
        check_worker_result(result, f"worker {i}")
        if result["worker"] != i:
            raise SubprocessError(
                f"worker {i}'s result {path} says it is worker {result['worker']}"
            )
        results.append(result)
    return results


# --- many processes ------------------------------------------------------------------------


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct ports that were free a moment ago (bound to port 0, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """:class:`UsageError` when ``host:port`` cannot be bound (another process holds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"port {port} on {host} is already in use ({exc.strerror}): choose another port, "
                "or let launch_workers pick free ones (ports=None)"
            ) from None


def tf_config(ports: Sequence[int], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of local workers on ``ports``."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


@dataclass(frozen=True)
class WorkerExit:
    """How one worker ended: its index, exit status, output and wall time."""

    index: int
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _cluster_ports(n: int, ports: Sequence[int] | None) -> Sequence[int]:
    """``ports`` (checked: one per worker, each free), or ``n`` free ones."""
    if not isinstance(n, int) or n < 1:
        raise UsageError(f"n must be a positive int, got {n!r}")
    if ports is None:
        return free_ports(n)
    if len(ports) != n:
        raise UsageError(f"{n} workers need {n} ports, got {len(ports)}")
    for port in ports:
        check_port_free(port)
    return ports


def _worker_environments(
    ports: Sequence[int], env: Mapping[str, str] | None
) -> list[dict[str, str]]:
    """Each worker's environment: this one with the pins, ``env`` and its ``TF_CONFIG``."""
    base = {**os.environ, **_runtime.REPRODUCIBLE_ENV, **(env or {})}
    # gRPC would send 127.0.0.1 through an HTTP proxy named in the environment
    base["no_grpc_proxy"] = "127.0.0.1,localhost"
    return [{**base, "TF_CONFIG": tf_config(ports, i)} for i in range(len(ports))]


def _start_and_supervise(
    argv: Sequence[str],
    envs: Sequence[Mapping[str, str]],
    logs: Sequence[tuple[Any, Any]],
    timeout: float,
) -> _proc.Supervision:
    """Start one worker per environment (``{index}`` in ``argv`` replaced), stdout and stderr
    into ``logs``, and supervise them (:func:`reprodl._proc.supervise`)."""
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, (env, (out, err)) in enumerate(zip(envs, logs, strict=True)):
            worker_argv = [a.replace("{index}", str(i)) for a in argv]
            procs.append(_proc.start(worker_argv, env=env, stdout=out, stderr=err))
    except BaseException:
        _proc.stop_groups(procs, GRACE_SECONDS)  # a worker could not start: stop the others
        raise
    return _proc.supervise(procs, timeout, grace=GRACE_SECONDS)


def _raise_for_failure(
    exits: Sequence[WorkerExit], ended: _proc.Supervision, timeout: float
) -> None:
    """:class:`SubprocessError` for the worker that failed, or for those that hung."""
    n = len(exits)
    if ended.failed is not None:
        w = exits[ended.failed]
        raise SubprocessError(
            f"worker {w.index} of {n} exited with status {w.returncode}; the others were "
            f"stopped. The end of its stderr:\n{_proc.stderr_tail(w.stderr)}"
        )
    if ended.hung:
        raise SubprocessError(
            f"worker(s) {', '.join(map(str, ended.hung))} of {n} did not finish within "
            f"{timeout:g} s and were stopped. The end of worker {ended.hung[0]}'s stderr:\n"
            f"{_proc.stderr_tail(exits[ended.hung[0]].stderr)}"
        )


def launch_workers(
    n: int,
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    ports: Sequence[int] | None = None,
) -> list[WorkerExit]:
    """Run ``n`` local worker processes ``argv`` (``{index}`` in an item becomes the worker's
    index) with ``TF_CONFIG`` for a cluster on 127.0.0.1, each in its own process group.

    Waits up to ``timeout`` seconds. When a worker fails, or time runs out, every other worker is
    stopped (SIGTERM, then SIGKILL after :data:`GRACE_SECONDS`) and :class:`SubprocessError`
    names the worker, its exit status and the end of its stderr. ``ports`` (default: free ones)
    must be free: :class:`UsageError`.
    """
    envs = _worker_environments(_cluster_ports(n, ports), env)
    with contextlib.ExitStack() as files:
        logs = [
            (
                files.enter_context(tempfile.TemporaryFile()),
                files.enter_context(tempfile.TemporaryFile()),
            )
            for _ in range(n)
        ]
        ended = _start_and_supervise(argv, envs, logs, timeout)
        exits = [
            WorkerExit(i, code, _proc.read_text(out), _proc.read_text(err), seconds)
            for i, (code, seconds, (out, err)) in enumerate(
                zip(ended.returncodes, ended.seconds, logs, strict=True)
            )
        ]
    _raise_for_failure(exits, ended, timeout)
    return exits


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of a multi-worker run trains (the options of ``worker``)."""

    steps: int
    batch_size: int = 100
    seed: int = 0
    data: str | os.PathLike[str] | None = None
    dropout: float = 0.0
    trainer: str = "loop"
    learning_rate: float = 1e-3
    digest_every: int = 0


def worker_command(out: str | os.PathLike[str], spec: WorkerSpec) -> list[str]:
    """``python -m reprodl.distributed worker ...``; ``out`` should contain ``{index}``."""
    argv = [sys.executable, "-m", "reprodl.distributed", "worker", "--out", str(out)]
    argv += ["--steps", str(spec.steps), "--batch-size", str(spec.batch_size)]
    argv += ["--seed", str(spec.seed), "--dropout", str(spec.dropout), "--trainer", spec.trainer]
    argv += ["--lr", repr(float(spec.learning_rate)), "--digest-every", str(spec.digest_every)]
    if spec.data is not None:
        argv += ["--data", str(spec.data)]
    return argv


def run_workers(
    n: int, folder: str | os.PathLike[str], *, timeout: float = 300, **options: Any
) -> list[dict[str, Any]]:
    """Train under ``MultiWorkerMirroredStrategy`` with ``n`` local workers; their JSON results.

    ``options`` are the fields of :class:`WorkerSpec` (``steps`` required). ``data`` is an
    ``.npz`` with ``images`` and ``labels`` (default: MNIST's training set), and optionally
    ``test_images`` and ``test_labels`` (then each result has the test count). Each result is
    checked (:func:`read_worker_results`). ``trainer="fit"`` is Keras ``fit``, which fails
    under this strategy (chapter 12 shows it; see the module docstring).
    """
    out = Path(folder) / "worker_{index}.json"
    launch_workers(n, worker_command(out, WorkerSpec(**options)), timeout=timeout)
    return read_worker_results(out, n)
