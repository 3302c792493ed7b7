"""What each run of a check changes: the plain runs nothing, each ``--vary`` perturbation one
thing (:class:`Variation`), and what to suggest pinning when the result depends on it.

Nothing here pins the process or loads NumPy (the CPU's instruction sets are read lazily).
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reprodl.errors import UsageError

#: What ``--vary`` can change, one extra run each.
PERTURBATIONS = ("threads", "hash-seed", "isa", "order")

_THREADS = ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")
_INTEROP = ("TF_NUM_INTEROP_THREADS",)
_HASH_SEED = "PYTHONHASHSEED"
_ISA = "ONEDNN_MAX_CPU_ISA"
#: Keras on JAX (``KERAS_BACKEND=jax`` in the caller's environment): XLA:CPU's thread pool, and
#: its instruction-set cap, a flag in ``XLA_FLAGS`` (``reprodl.env.contract``, chapter 13).
_JAX_THREADS = ("PJRT_NPROC",)
_XLA_FLAGS = "XLA_FLAGS"
_XLA_ISA = re.compile(r"--xla_cpu_max_isa=(\S+)")
#: oneDNN's instruction-set names (:data:`reprodl.env.cpu.ISA_ORDER`) as XLA spells them.
_XLA_ISA_NAMES = {"SSE41": "SSE4_2", "AVX": "AVX", "AVX2": "AVX2", "AVX512_CORE": "AVX512"}

#: Per perturbation: what the result then depends on, and how to pin it (``{pin}``: the value).
_ADVICE = {
    "threads": (
        "the intra-op thread count",
        "pin TF_NUM_INTRAOP_THREADS in your script before TensorFlow loads "
        '(os.environ["TF_NUM_INTRAOP_THREADS"] = "{pin}"); the run also changed OMP_NUM_THREADS, '
        "which TensorFlow's pip package ignores: pin it too if your script uses an OpenMP library",
    ),
    "order": (
        "the inter-op thread count (the order independent ops run in)",
        "pin TF_NUM_INTEROP_THREADS in your script before TensorFlow loads "
        '(os.environ["TF_NUM_INTEROP_THREADS"] = "{pin}")',
    ),
    "isa": (
        "the instruction set oneDNN computes with",
        "pin ONEDNN_MAX_CPU_ISA in your script before TensorFlow loads "
        '(os.environ["ONEDNN_MAX_CPU_ISA"] = "{pin}")',
    ),
    "jax-threads": (
        "the size of XLA's CPU thread pool",
        'pin PJRT_NPROC in your script before JAX loads (os.environ["PJRT_NPROC"] = "{pin}")',
    ),
    "jax-isa": (
        "the instruction set XLA generates code for",
        "add --xla_cpu_max_isa={pin} to XLA_FLAGS in your script before JAX loads; for other "
        "CPUs also --xla_cpu_experimental_ynn_fusion_type= (YNNPACK's kernels follow the CPU, "
        "not the cap, and no run on one CPU shows it) and ONEDNN_MAX_CPU_ISA",
    ),
    "hash-seed": (
        "the hash seed (the iteration order of sets and dicts of strings)",
        "sort what you iterate over, or set PYTHONHASHSEED before Python starts (e.g. "
        "PYTHONHASHSEED={pin} python ...; a script cannot set it for itself)",
    ),
}


# --- what each run changes -------------------------------------------------------------------


@dataclass(frozen=True)
class Variation:
    """What one run changes in the caller's environment: nothing (a plain run) or one thing."""

    name: str = "plain"
    changes: tuple[tuple[str, str], ...] = ()  # (variable, value) for this run
    before: tuple[str | None, ...] = ()  # the plain runs' values of those variables
    pin: str = ""  # the value to suggest pinning when the result depends on it
    advice_key: str = ""  # which advice fits (default: the perturbation's name)

    @property
    def plain(self) -> bool:
        """Whether this is a plain run (the caller's environment unchanged)."""
        return not self.changes

    @property
    def label(self) -> str:
        """``plain``, or the change: ``threads: TF_NUM_INTRAOP_THREADS=2 OMP_NUM_THREADS=2``."""
        if self.plain:
            return "plain"
        return f"{self.name}: " + " ".join(f"{k}={v}" for k, v in self.changes)

    @property
    def description(self) -> str:
        """The label and what the plain runs had instead."""
        if self.plain:
            return "plain"
        was = ", ".join("unset" if v is None else v for v in self.before)
        return f"{self.label}; plain runs: {was}"

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with this run's change applied."""
        return {**base, **dict(self.changes)}

    def advice(self) -> str:
        """What the result depends on, and how to pin it (for a perturbed run that differs)."""
        what, how = _ADVICE[self.advice_key or self.name]
        return f"the result depends on {what}: {how.format(pin=self.pin)}"


def _cores() -> int:
    """How many CPUs this process may run on (TensorFlow's default thread counts)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _best_isa() -> str | None:
    """The best oneDNN instruction set of this CPU (None: not x86-64, or below SSE4.1)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    from reprodl import cpu

    return cpu.describe().best_isa


def _count_variation(name: str, names: tuple[str, ...], env: Mapping[str, str]) -> Variation:
    """A thread count 1 <-> 2; unset (TensorFlow's default: one per core) -> 1, or 2 on one core."""
    current = env.get(names[0])
    try:
        count = int(current) if current is not None else _cores()
    except ValueError:
        count = _cores()
    new = "2" if count == 1 else "1"
    before = tuple(env.get(n) for n in names)
    return Variation(name, tuple((n, new) for n in names), before, current or new)


def _hash_seed_variation(env: Mapping[str, str]) -> Variation | str:
    current = env.get(_HASH_SEED)
    if current is None or current == "random":
        return (
            "hash-seed: PYTHONHASHSEED is unset, so every run, the plain ones too, "
            "already has a hash seed of its own"
        )
    try:
        seed = int(current)
    except ValueError:
        return f"hash-seed: PYTHONHASHSEED={current} is not a number"
    return Variation("hash-seed", ((_HASH_SEED, str((seed + 1) % 2**32)),), (current,), current)


def _isa_variation(env: Mapping[str, str]) -> Variation | str:
    from reprodl.cpu import ISA_ORDER

    best = _best_isa()
    if best is None:
        return (
            f"isa: this CPU ({platform.machine()}) has no x86-64 instruction sets "
            "for ONEDNN_MAX_CPU_ISA to choose from"
        )
    cap = env.get(_ISA)
    top = ISA_ORDER.index(best)
    used = min(ISA_ORDER.index(cap.upper()), top) if cap and cap.upper() in ISA_ORDER else top
    if ISA_ORDER[used] == "AVX2":
        new = "AVX512_CORE" if top > used else "AVX"
    elif used < top:
        new = ISA_ORDER[used + 1]
    elif used > 0:
        new = ISA_ORDER[used - 1]
    else:
        return "isa: this CPU has no other instruction set for oneDNN than SSE41"
    lower = ISA_ORDER[min(used, ISA_ORDER.index(new))]  # the portable one of the two
    return Variation("isa", ((_ISA, new),), (cap,), lower)


def _jax_threads_variation(env: Mapping[str, str]) -> Variation:
    """XLA's thread pool 1 <-> 2; unset (one thread per core) -> 1, or 2 on one core."""
    plain = _count_variation("threads", _JAX_THREADS, env)
    return Variation(plain.name, plain.changes, plain.before, plain.pin, "jax-threads")


def _jax_isa_variation(env: Mapping[str, str]) -> Variation | str:
    """XLA's instruction-set cap: AVX2 <-> AVX (unset counts as the CPU's best)."""
    best = _best_isa()
    if best is None:
        return f"isa: this CPU ({platform.machine()}) has no x86-64 instruction sets to cap"
    flags = env.get(_XLA_FLAGS, "")
    found = _XLA_ISA.findall(flags)
    used = found[-1].upper() if found else _XLA_ISA_NAMES[best]
    new = "AVX" if used in ("AVX2", "AVX512") else "AVX2"
    if new == "AVX2" and best in ("SSE41", "AVX"):
        return "isa: this CPU has no AVX2 for XLA to generate code for"
    changed = (_XLA_FLAGS, f"{flags} --xla_cpu_max_isa={new}".strip())
    portable = "AVX" if "AVX" in (used, new) else used
    return Variation("isa", (changed,), (env.get(_XLA_FLAGS),), portable, "jax-isa")


def variation(name: str, env: Mapping[str, str]) -> Variation | str:
    """The extra run for perturbation ``name`` given the plain runs' environment ``env``, or a
    note saying why there is none (e.g. ``PYTHONHASHSEED`` unset already varies the hash seed).
    Where ``env`` has ``KERAS_BACKEND=jax``, ``threads`` and ``isa`` change JAX's settings."""
    jax = env.get("KERAS_BACKEND") == "jax"
    if name == "threads" and jax:
        return _jax_threads_variation(env)
    if name == "isa" and jax:
        return _jax_isa_variation(env)
    if name == "threads":
        return _count_variation(name, _THREADS, env)
    if name == "order":
        return _count_variation(name, _INTEROP, env)
    if name == "hash-seed":
        return _hash_seed_variation(env)
    if name == "isa":
        return _isa_variation(env)
    raise UsageError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")


def plan_runs(
    runs: int, vary: Sequence[str], env: Mapping[str, str]
) -> tuple[list[Variation], list[str]]:
    """The runs of a check: ``runs`` plain ones, then one per perturbation in ``vary`` (each
    named once); and the notes for the perturbations that get no run, saying why."""
    plan, notes = [Variation()] * runs, []
    for name in dict.fromkeys(vary):
        extra = variation(name, env)
        if isinstance(extra, str):
            notes.append(extra)
        else:
            plan.append(extra)
    return plan, notes
