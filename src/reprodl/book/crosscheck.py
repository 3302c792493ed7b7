"""Cross-CPU check: a fixed battery of short trainings, run on this CPU and on emulated ones.

Each run happens in a fresh interpreter with one *setting* of the process-wide pins that decide
the bits (``TF_ENABLE_ONEDNN_OPTS``, the oneDNN ISA cap, the intra-op thread count), natively or
under ``qemu-x86_64 -cpu MODEL`` (QEMU's user-mode emulator: the whole process then sees the
emulated CPU's CPUID, its instruction sets and cache sizes, and computes as that CPU would).
A run prints one JSON line per case; :func:`run_battery` collects them into a versioned record
(:data:`FORMAT`) with the CPU's description, and :func:`agreement` tells, per setting and case,
which CPUs gave the same bits. ``python -m reprodl crosscheck`` is the command-line face.
"""

from __future__ import annotations

from reprodl import runtime as _runtime  # noqa: F401  (pins the process before NumPy loads)

# isort: split
import datetime
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reprodl import _formats, _proc, runtime, schemas
from reprodl.book import jax_battery
from reprodl.env import cpu, report
from reprodl.errors import CrossCheckError, UsageError

FORMAT = "reprodl.crosscheck"
VERSION = 1

#: QEMU CPU models the check emulates by default: two AMD generations with 512 KiB L2 (Zen 2,
#: Zen 3) and three Intel server models (QEMU reports 4 MiB L2 for them; its TCG has no AVX-512).
DEFAULT_EMULATED = ("Haswell", "Skylake-Server", "Icelake-Server", "EPYC-Rome", "EPYC-Milan")


@dataclass(frozen=True)
class Setting:
    """One combination of the pins that decide a training's bits."""

    onednn_opts: str
    isa: str
    threads: int

    backend = "tensorflow"

    @property
    def name(self) -> str:
        return f"opts{self.onednn_opts}-{self.isa}-t{self.threads}"

    @classmethod
    def parse(cls, name: str) -> Setting:
        m = re.fullmatch(r"opts([01])-([A-Z0-9_]+)-t(\d+)", name)
        if not m:
            raise UsageError(f"not a setting name: {name!r} (like opts1-AVX2-t2)")
        return cls(m.group(1), m.group(2), int(m.group(3)))

    def env(self) -> dict[str, str]:
        """Variables beyond the pins: none (the child repins from its arguments)."""
        return {}

    def command(self, cases: Sequence[Mapping[str, Any]]) -> list[str]:
        """The interpreter command that runs ``cases`` (as :meth:`Case.to_dict` gives them)."""
        return [sys.executable, "-c", _CHILD, self.onednn_opts, self.isa, str(self.threads),
                json.dumps(list(cases))]  # fmt: skip


#: The setting of :mod:`reprodl.runtime` (what the stored outputs are computed with).
PINNED = Setting(runtime.ONEDNN_OPTS, runtime.ONEDNN_ISA, runtime.INTRA_OP_THREADS)

#: The alternatives measured against it: oneDNN opts off/on x AVX2/AVX cap x 1/2 threads.
ALTERNATIVES = tuple(
    Setting(opts, isa, threads)
    for opts in ("0", "1")
    for isa in ("AVX2", "AVX")
    for threads in (1, 2)
    if Setting(opts, isa, threads) != PINNED
)

#: A setting of either backend: TensorFlow's (:class:`Setting`) or JAX's
#: (:class:`reprodl.book.jax_battery.JaxSetting`).
AnySetting = Setting | jax_battery.JaxSetting

#: The contract's setting of each backend.
PINNED_OF = {"tensorflow": PINNED, jax_battery.BACKEND: jax_battery.PINNED}
PINNED_NAMES = frozenset(s.name for s in PINNED_OF.values())


def parse_setting(name: str) -> AnySetting:
    """A setting by name: ``opts1-AVX2-t1`` (TensorFlow) or ``jax-n1-AVX2`` (JAX)."""
    return jax_battery.JaxSetting.parse(name) if name.startswith("jax-") else Setting.parse(name)


def settings_of(backend: str, *, alternatives: bool = False) -> list[AnySetting]:
    """``backend``'s pinned setting, then, with ``alternatives``, the ones measured against it."""
    if backend not in PINNED_OF:
        raise UsageError(f"unknown backend {backend!r}; choose one of {', '.join(PINNED_OF)}")
    others = {"tensorflow": ALTERNATIVES, jax_battery.BACKEND: jax_battery.ALTERNATIVES}[backend]
    return [PINNED_OF[backend], *(others if alternatives else ())]


@dataclass(frozen=True)
class Case:
    """A short training of one of the book's models, with the model's own defaults."""

    name: str
    model: str
    steps: int
    keras_fit: bool = False
    batch_size: int | None = None  # None: the model's default
    logits_images: int = 1000  # the test images whose logits are digested

    def to_dict(self) -> dict[str, Any]:
        """The case as the child and the record see it (the defaults left out)."""
        out: dict[str, Any] = {
            "name": self.name, "model": self.model, "steps": self.steps, "keras_fit": self.keras_fit
        }  # fmt: skip
        if self.batch_size is not None:
            out["batch_size"] = self.batch_size
        if self.logits_images != 1000:
            out["logits_images"] = self.logits_images
        return out


#: The battery: every kind of kernel the book trains with (dense, convolution, dropout, SGD,
#: Adam with a cosine schedule, the package's loop and Keras ``fit``) plus inference on a
#: 1,000-image batch, kept short because emulation is slow.
BATTERY = (
    Case("softmax", "softmax", 100),
    Case("mlp", "mlp", 40),
    Case("mlp-fit", "mlp", 20, keras_fit=True),
    Case("cnn", "cnn", 3),
)
CASES = {c.name: c for c in BATTERY}

#: The smallest CNN run that still runs every oneDNN kernel the book's CNN trainings run: the
#: same implementations, by ``ONEDNN_VERBOSE``, as the ``cnn`` case on this CPU (at batch 4 a
#: convolution takes another one; ``tests/test_crosscheck.py`` checks batch 8). It is for
#: emulated CPUs, where one step of ``cnn`` at batch 100 takes minutes; its bits are compared
#: with this machine's, not with a committed record.
CNN_SMALL = Case("cnn-small", "cnn", 2, batch_size=8, logits_images=8)

#: The smallest dense runs, for emulated CPUs, like :data:`CNN_SMALL`: the battery's dense cases
#: with their batch size and their 1,000-image logits (the shapes that pick oneDNN's kernels) but
#: a few steps, so that an emulated CPU spends its time on every kernel once rather than on
#: repeating them. ``tests/test_crosscheck.py`` checks that each runs every oneDNN kernel of its
#: full case and that this CPU gives the committed bits for them.
DENSE_SMALL = (
    Case("softmax-small", "softmax", 3),
    Case("mlp-small", "mlp", 3),
    Case("mlp-fit-small", "mlp", 2, keras_fit=True),
)

#: Each battery case and the smallest run that runs the same kernels.
SMALL_OF = dict(zip(CASES, (*(c.name for c in DENSE_SMALL), CNN_SMALL.name), strict=True))

#: Chapter 11's recurrent model (``models.row_lstm``, Keras ``fit``, Adam 2e-3, batch 100): not
#: one of the battery's cases (the committed records predate it); the cache sweep runs it.
LSTM = Case("lstm", "lstm", 3, keras_fit=True, logits_images=100)

#: The same LSTM with Keras' own ``Orthogonal`` recurrent initializer (``tf.linalg.qr``, Eigen),
#: whose values depend on the L1 data cache size: the evidence for ``reprodl.initializers``.
LSTM_KERAS_INIT = Case("lstm-keras-init", "lstm", 3, keras_fit=True, logits_images=100)

#: Every case a run may name: the battery, the smallest CNN run and the LSTM.
ALL_CASES = {c.name: c for c in (*BATTERY, *DENSE_SMALL, CNN_SMALL, LSTM, LSTM_KERAS_INIT)}
#: Cases that show a dependence the contract avoids, not what it promises: the pinned verdict
#: leaves them out (their rows are still shown). Keras' own ``Orthogonal`` gives other bits at
#: 48 KiB of L1d than at 32 KiB (the real Xeon and Zen 3 records), which the book's LSTM avoids.
OUTSIDE_CONTRACT = frozenset({LSTM_KERAS_INIT.name})

#: The variables of the cache-geometry emulator (``tools/cache_qemu``): the L1d and L2 sizes in
#: KiB that every CPUID cache leaf of the emulated CPU reports.
GEOMETRY_ENV = ("REPRODL_QEMU_L1D_KIB", "REPRODL_QEMU_L2_KIB")


@dataclass(frozen=True)
class Geometry:
    """A per-core cache geometry presented by the cache-geometry emulator."""

    l1d_kib: int
    l2_kib: int

    @property
    def name(self) -> str:
        return f"{self.l1d_kib}/{self.l2_kib}"

    def describe(self) -> str:
        return f"L1d {cpu.short_size(self.l1d_kib * 1024)}, L2 {cpu.short_size(self.l2_kib * 1024)}"

    def env(self) -> dict[str, str]:
        return dict(zip(GEOMETRY_ENV, (str(self.l1d_kib), str(self.l2_kib)), strict=True))

    def to_dict(self) -> dict[str, int]:
        return {"l1d_kib": self.l1d_kib, "l2_kib": self.l2_kib}

    @classmethod
    def parse(cls, text: str) -> Geometry:
        m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
        if not m or not 0 < int(m.group(1)) <= 255 or not 0 < int(m.group(2)) <= 65535:
            raise UsageError(f"not a cache geometry: {text!r} (L1d/L2 in KiB, like 48/2048)")
        return cls(int(m.group(1)), int(m.group(2)))


#: The geometries of readers' machines the sweep covers: L1d 32 and 48 KiB, L2 256 KiB (Intel
#: client to Skylake), 512 KiB (Zen 2/3), 1.25 MiB (Ice Lake/Tiger Lake), 2 MiB (Raptor Lake,
#: Sapphire Rapids) and 4 MiB; and Zen 5's 48 KiB with 1 MiB.
SWEEP_GEOMETRIES = (
    *(Geometry(l1d, l2) for l1d in (32, 48) for l2 in (256, 512, 1280, 2048, 4096)),
    Geometry(48, 1024),  # Zen 5
)

_CHILD = r"""
import ctypes, json, sys, time
flush_c_stdout = ctypes.CDLL(None).fflush  # oneDNN's verbose lines come before a case's result
import reprodl.runtime as rt

opts, isa, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
rt.repin(onednn_opts=opts, onednn_isa=isa, intra_op_threads=threads)
rt.setup(0)

import keras
import numpy as np
import tensorflow as tf
from reprodl import data, training
from reprodl.env import cpu
from reprodl.record import fingerprint

print(json.dumps({"cpu": cpu.describe().to_dict()}), flush=True)
mnist = data.load_mnist()
train = data.Split(mnist.train.images[:10000], mnist.train.labels[:10000])
for spec in json.loads(sys.argv[4]):
    start = time.perf_counter()
    keras.utils.set_random_seed(0)
    test_x = tf.constant(data.to_float(mnist.test.images[:spec.get("logits_images", 1000)]))
    if spec["model"] != "lstm":
        run = training.RunSpec(spec["model"], steps=spec["steps"], intra_op_threads=threads,
                               batch_size=spec.get("batch_size"))
    if spec["model"] == "lstm":
        from reprodl import models
        model = models.row_lstm(0, keras_orthogonal=spec["name"] == "lstm-keras-init")
        model.compile(keras.optimizers.Adam(2e-3),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        n = spec["steps"] * 100
        history = model.fit(data.to_float(train.images[:n]), train.labels[:n], batch_size=100,
                            epochs=1, shuffle=False, verbose=0)
        loss = float(history.history["loss"][-1])
        digest = fingerprint.weights_digest(model)
    elif spec["keras_fit"]:
        model, optimizer, _ = training.build(run, len(train))
        run = run.resolved()
        n = run.steps * run.batch_size
        history = training.fit_quietly(model, data.Split(train.images[:n], train.labels[:n]),
                                       epochs=1, batch_size=run.batch_size, optimizer=optimizer,
                                       shuffle=False, printer=None)
        loss = float(history.history["loss"][-1])
        digest = fingerprint.weights_digest(model)
    else:
        model, record = training.run(run, train)
        loss, digest = float(record.final_loss), record.final_digest
    logits = model(test_x, training=False).numpy()
    flush_c_stdout(None)
    print(json.dumps({
        "case": spec["name"], "loss": fingerprint.format_float(loss), "fingerprint": digest,
        "logits": fingerprint.array_digest(logits),
        "seconds": round(time.perf_counter() - start, 2),
    }), flush=True)
"""


def qemu_path() -> str | None:
    """The QEMU user-mode emulator for x86-64, if installed."""
    return shutil.which("qemu-x86_64")


def cache_qemu_path() -> str | None:
    """The cache-geometry emulator built by ``tools/cache_qemu/build.sh``, if built:
    ``$REPRODL_CACHE_QEMU``, else the newest build in the user's cache folder."""
    if os.environ.get("REPRODL_CACHE_QEMU"):
        path = Path(os.environ["REPRODL_CACHE_QEMU"])
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reprodl"
    built = sorted(base.glob("cache-qemu-*/qemu-x86_64"), key=lambda p: p.stat().st_mtime)
    return str(built[-1]) if built else None


def _child_command(setting: AnySetting, cases: Sequence[Case]) -> list[str]:
    """The interpreter command that runs ``cases`` under ``setting`` (the battery's child)."""
    return setting.command([c.to_dict() for c in cases])


#: Variables this process may hold that would choose another backend or other JAX settings for
#: a child: each setting sets the ones it needs.
_BACKEND_ENV = ("KERAS_BACKEND", "PJRT_NPROC", "NPROC", "XLA_FLAGS")


def _child_env(setting: AnySetting | None = None) -> dict[str, str]:
    """A battery child's environment: this one with the pins and ``setting``'s variables, no
    other backend's, and no cache geometry (only :func:`run_setting` sets one, for the
    cache-geometry emulator)."""
    env = {**os.environ, **runtime.REPRODUCIBLE_ENV}
    for name in (*GEOMETRY_ENV, *_BACKEND_ENV):
        env.pop(name, None)
    return {**env, **(setting.env() if setting else {})}


def run_setting(
    setting: AnySetting,
    cases: Sequence[Case] = BATTERY,
    *,
    emulate: str | None = None,
    geometry: Geometry | None = None,
    timeout: float = 1800,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``cases`` in one fresh interpreter under ``setting``; return (cpu, results).

    ``emulate`` names a QEMU CPU model; the interpreter then runs under ``qemu-x86_64``, or,
    with a ``geometry``, under the cache-geometry emulator presenting those cache sizes.
    The interpreter runs in a process group of its own (:mod:`reprodl._proc`), stopped as a
    whole after ``timeout`` seconds. Raises :class:`CrossCheckError` with the child's last stderr
    lines when it fails, and when it times out.
    """
    command = _child_command(setting, cases)
    env = _child_env(setting)
    if geometry and not emulate:
        raise UsageError("a cache geometry needs an emulated CPU model")
    if emulate:
        qemu = cache_qemu_path() if geometry else qemu_path()
        if qemu is None:
            raise CrossCheckError(
                "the cache-geometry emulator is not built (bash tools/cache_qemu/build.sh)"
                if geometry
                else "qemu-x86_64 is not installed (Debian: apt-get install qemu-user)"
            )
        command = [qemu, "-cpu", emulate, *command]
        env.update(geometry.env() if geometry else {})
    where = f"under qemu -cpu {emulate}" if emulate else "natively"
    if geometry:
        where += f" ({geometry.describe()})"
    proc = _proc.run(command, env=env, timeout=timeout)
    if proc.timed_out:
        raise CrossCheckError(f"{setting.name} {where} took more than {timeout:.0f} s")
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines or len(lines) != len(cases) + 1:
        tail = "\n".join(
            line for line in proc.stderr.splitlines()[-8:] if "TCG doesn't support" not in line
        )
        raise CrossCheckError(
            f"{setting.name} {where} failed (exit {proc.returncode}):\n{tail or proc.stdout[-500:]}"
        )
    info = lines[0]["cpu"]
    results = [{"setting": setting.name, **line} for line in lines[1:]]
    return info, results


def onednn_kernels(
    cases: Sequence[Case], setting: Setting | None = None, *, timeout: float = 1800
) -> tuple[list[dict[str, Any]], dict[str, frozenset[str]]]:
    """Run ``cases`` in one fresh interpreter on this CPU under ``setting`` (default: the pins)
    with ``ONEDNN_VERBOSE=1``: their results (as :func:`run_setting` gives them) and the oneDNN
    kernels each ran, as ``primitive,implementation,propagation``. A run that fails or takes
    more than ``timeout`` seconds raises :class:`CrossCheckError`."""
    setting = setting or PINNED
    command = _child_command(setting, cases)
    env = {**_child_env(setting), "ONEDNN_VERBOSE": "1"}
    proc = _proc.run(command, env=env, timeout=timeout)
    names = ", ".join(c.name for c in cases)
    if proc.timed_out:
        raise CrossCheckError(f"{names} with ONEDNN_VERBOSE=1 took more than {timeout:.0f} s")
    if proc.returncode != 0:
        raise CrossCheckError(f"{names} with ONEDNN_VERBOSE=1 failed:\n{proc.stderr[-2000:]}")
    results: list[dict[str, Any]] = []
    kernels: dict[str, frozenset[str]] = {}
    found: set[str] = set()
    for line in proc.stdout.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and len(fields) > 7 and "exec" in fields:
            at = fields.index("exec")  # exec,cpu,primitive,implementation,propagation,...
            found.add(",".join(fields[at + 2 : at + 5]))
        elif line.startswith("{") and '"case"' in line:  # a case ends with its result line
            row = json.loads(line)
            results.append({"setting": setting.name, **row})
            kernels[row["case"]] = frozenset(found)
            found = set()
    if [r["case"] for r in results] != [c.name for c in cases]:
        raise CrossCheckError(
            f"ONEDNN_VERBOSE=1 run printed no result for some case:\n{proc.stdout[-500:]}"
        )
    return results, kernels


def run_battery(
    settings: Sequence[AnySetting],
    cases: Sequence[Case] = BATTERY,
    *,
    emulate: str | None = None,
    geometry: Geometry | None = None,
    timeout: float = 1800,
    progress=None,
) -> dict[str, Any]:
    """Run the battery under every setting on one CPU (native, or ``emulate``, with its caches
    replaced by ``geometry``); a record. The settings are of one backend."""
    backends = {s.backend for s in settings}
    if len(backends) != 1:
        raise UsageError("one record holds the settings of one backend")
    cpu_info: dict[str, Any] | None = None
    results: list[dict[str, Any]] = []
    for setting in settings:
        info, rows = run_setting(
            setting, cases, emulate=emulate, geometry=geometry, timeout=timeout
        )
        cpu_info = cpu_info or info
        results += rows
        if progress:
            for row in rows:
                progress(cpu_info, row)
    host = cpu.describe()
    versions = report.installed_versions()
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_info,
        "emulated": emulate,
        "geometry": geometry.to_dict() if geometry else None,
        "host_cpu": None if not emulate else host.to_dict(),
        "versions": versions,
        "pinned": PINNED_OF[backends.pop()].name,
        "cases": [c.to_dict() for c in cases],
        "results": results,
    }


# --- records ---------------------------------------------------------------------------------

#: The structure of a crosscheck record (meaning is checked in code), shipped with the package as
#: ``reprodl/schemas/crosscheck.schema.json``.
SCHEMA: dict[str, Any] = schemas.load("crosscheck")
#: The file format (header, versions read, schema): :mod:`reprodl._formats`.
FILE_FORMAT = _formats.Format(
    FORMAT, "crosscheck record", VERSION, (VERSION,), "crosscheck", error=CrossCheckError
)


def label(record: Mapping[str, Any]) -> str:
    """A short name for the CPU of ``record``: the QEMU model, or the native CPU's model."""
    c = record["cpu"]
    if record.get("geometry"):
        g = Geometry(**record["geometry"])
        return f"{record['emulated']} (emulated, {g.describe()})"
    if record.get("emulated"):
        return f"{record['emulated']} (emulated)"
    return f"{c['model_name']} (family {c['family']} model {c['model']})"


def slug(record: Mapping[str, Any]) -> str:
    """A file name for ``record``: ``qemu-epyc-milan`` or ``native-amd-epyc-f25-m17``."""
    if record.get("geometry"):
        g = record["geometry"]
        base = f"qemu-{record['emulated']}-l1d-{g['l1d_kib']}k-l2-{g['l2_kib']}k"
    elif record.get("emulated"):
        base = f"qemu-{record['emulated']}"
    else:
        c = record["cpu"]
        base = f"native-{c['model_name']}-f{c['family']}-m{c['model']}"
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")


def save(record: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Validate ``record`` and write it atomically as JSON (keys sorted)."""
    return _formats.save(path, dict(record), validate, sort_keys=True)


def validate(record: Any, where: str = "the record") -> None:
    """Raise :class:`CrossCheckError` (``WHERE: what is wrong``) unless ``record`` is a
    well-formed crosscheck record: its header, its structure, each case once per setting."""
    FILE_FORMAT.check_header(record, where)
    FILE_FORMAT.check_structure(record, where)
    seen = set()
    for row in record["results"]:
        key = (row["setting"], row["case"])
        if key in seen:
            raise CrossCheckError(f"{where}: it has {key[1]} under {key[0]} twice")
        seen.add(key)


def merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``new`` plus the results of ``old`` it lacks (same CPU, versions and pins, else an error)."""
    for key in ("emulated", "geometry", "versions", "pinned"):
        if old.get(key) != new.get(key):
            raise CrossCheckError(f"cannot merge records with different {key}")
    if dict(old["cpu"]) != dict(new["cpu"]):
        raise CrossCheckError("cannot merge records of different CPUs")
    keys = {(r["setting"], r["case"]) for r in new["results"]}
    kept = [r for r in old["results"] if (r["setting"], r["case"]) not in keys]
    cases = {c["name"]: c for c in [*old.get("cases", []), *new.get("cases", [])]}
    return {**new, "results": [*kept, *new["results"]], "cases": list(cases.values())}


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate one record; :class:`CrossCheckError` for a corrupt or foreign file."""

    def reads(payload: Any, where: str) -> dict[str, Any]:
        validate(payload, where)
        return payload

    return _formats.load(path, FILE_FORMAT, reads)


def load_dir(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every record (``*.json``) in ``folder``, sorted by file name."""
    paths = sorted(Path(folder).glob("*.json"))
    if not paths:
        raise CrossCheckError(f"no crosscheck records (*.json) in {folder}")
    return [load(p) for p in paths]


# --- agreement -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """For one setting and case: the groups of CPUs that gave the same bits (largest first)."""

    setting: str
    case: str
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # (fingerprint, CPU labels)

    @property
    def exact(self) -> bool:
        return len(self.groups) == 1


def agreement(recs: Iterable[Mapping[str, Any]]) -> list[Agreement]:
    """Group the CPUs of ``recs`` by the bits (weights and test logits) of each setting and case."""
    table: dict[tuple[str, str], dict[str, list[str]]] = {}
    for rec in recs:
        who = label(rec)
        for row in rec["results"]:
            bits = f"{row['fingerprint']}/{row['logits']}"
            table.setdefault((row["setting"], row["case"]), {}).setdefault(bits, []).append(who)
    out = []
    for (setting, case), groups in sorted(table.items(), key=lambda kv: _order(kv[0])):
        ranked = sorted(groups.items(), key=lambda g: (-len(g[1]), g[0]))
        out.append(Agreement(setting, case, tuple((fp, tuple(cpus)) for fp, cpus in ranked)))
    return out


def _order(key: tuple[str, str]) -> tuple[int, str, int]:
    setting, case = key
    pinned_first = 0 if setting in PINNED_NAMES else 1
    case_index = list(CASES).index(case) if case in CASES else len(CASES)
    return pinned_first, setting, case_index


def format_agreement(rows: Sequence[Agreement]) -> list[str]:
    """One line per setting and case: exact on all CPUs, or the groups that differ."""
    lines = []
    for a in rows:
        n = sum(len(cpus) for _, cpus in a.groups)
        head = f"{a.setting:<15} {a.case:<8}"
        if a.exact and n == 1:
            lines.append(f"{head} run on 1 CPU only     ({short_bits(a.groups[0][0])})")
        elif a.exact:
            lines.append(f"{head} exact on all {n} CPUs  ({short_bits(a.groups[0][0])})")
        else:
            parts = "  |  ".join(
                f"{short_bits(bits)}: {', '.join(cpus)}" for bits, cpus in a.groups
            )
            lines.append(f"{head} {len(a.groups)} results on {n} CPUs: {parts}")
    return lines


def short_bits(bits: str) -> str:
    """The key of an :class:`Agreement` group (weights and logits digests) as ``w:1234abcd
    l:5678ef01``."""
    weights, _, logits = bits.partition("/")
    return f"w:{weights[:8]} l:{logits[:8]}"


def emulate_many(
    models: Sequence[str],
    settings: Sequence[AnySetting],
    cases: Sequence[Case] = BATTERY,
    *,
    jobs: int = 2,
    timeout: float = 1800,
    geometries: Sequence[Geometry | None] = (None,),
) -> tuple[list[dict[str, Any]], dict[str, CrossCheckError]]:
    """:func:`run_battery` under each QEMU model (and each cache geometry: ``None`` is the
    model's own), ``jobs`` emulators at a time (bits do not depend on load, only the time does).
    Returns the records of the runs that finished and the error of each that did not, by
    ``MODEL`` or ``MODEL L1D/L2``: one failing emulator loses nothing of the others."""
    done: list[dict[str, Any]] = []
    failed: dict[str, CrossCheckError] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {
            f"{m} {g.name}" if g else m: pool.submit(
                run_battery, settings, cases, emulate=m, geometry=g, timeout=timeout
            )
            for m in models
            for g in geometries
        }
        for model, future in futures.items():
            try:
                done.append(future.result())
            except CrossCheckError as exc:
                failed[model] = exc
    return done, failed


def record_lines(record: Mapping[str, Any]) -> list[str]:
    """One CPU's record as printed: its label and cache sizes, then one line per setting and
    case."""
    c = record["cpu"]
    sizes = f"L1d {cpu.short_size(c.get('l1d'))}, L2 {cpu.short_size(c.get('l2'))}"
    lines = [f"== {label(record)}: CPUID {sizes}"]
    for row in record["results"]:
        lines.append(
            f"{row['setting']:<15} {row['case']:<8} loss {row['loss']:<11} "
            f"fingerprint {row['fingerprint'][:16]} logits {row['logits'][:16]}"
        )
    return lines


def save_into(record: Mapping[str, Any], folder: str | os.PathLike[str]) -> Path:
    """Save ``record`` into ``folder`` under its CPU's name (:func:`slug`); an earlier record of
    the same CPU there keeps what it measured that this one lacks (:func:`merge`)."""
    path = Path(folder) / f"{slug(record)}.json"
    if path.exists():
        record = merge(load(path), record)
    return save(record, path)


def verdict(recs: Sequence[Mapping[str, Any]]) -> tuple[list[str], bool]:
    """The agreement table of ``recs`` and each pinned setting's verdict (lines to print, blank
    lines between), and whether the pinned settings are exact on every CPU."""
    rows = agreement(recs)
    lines, pinned_ok = ["", *format_agreement(rows), ""], True
    shown = sorted({a.case for a in rows} & OUTSIDE_CONTRACT)
    if shown:
        lines[-1:-1] = [f"not counted in the verdict (outside the contract): {', '.join(shown)}"]
    for name in sorted({a.setting for a in rows} & PINNED_NAMES):
        exact = all(a.exact for a in rows if a.setting == name and a.case not in OUTSIDE_CONTRACT)
        said = "exact on every CPU" if exact else "DIFFERS between CPUs"
        lines.append(f"pinned setting {name}: {said}")
        pinned_ok = pinned_ok and exact
    return lines, pinned_ok
