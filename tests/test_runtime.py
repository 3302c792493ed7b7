"""The runtime pins: determinism across processes, immunity to ambient settings, and warnings.

Each run is a separate Python process, as a reader's second run would be.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support import run_python

from reprodl import runtime

AMBIENT = {
    "TF_NUM_INTRAOP_THREADS": "4",
    "OMP_NUM_THREADS": "4",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "TF_ENABLE_ONEDNN_OPTS": "0",
}
TRAIN = ("-m", "reprodl", "train", "--model", "mlp", "--steps", "60")


def fingerprint_of(result) -> str:
    assert result.returncode == 0, result.stderr
    match = re.search(r"^fingerprint ([0-9a-f]{64})$", result.stdout, re.M)
    assert match, result.stdout
    return match.group(1)


@pytest.fixture(scope="module")
def plain_seed0() -> str:
    return fingerprint_of(run_python(*TRAIN, "--seed", "0"))


@pytest.mark.slow
def test_same_seed_same_bits_in_two_processes(plain_seed0):
    assert fingerprint_of(run_python(*TRAIN, "--seed", "0")) == plain_seed0


@pytest.mark.slow
def test_other_seed_other_bits(plain_seed0):
    assert fingerprint_of(run_python(*TRAIN, "--seed", "1")) != plain_seed0


@pytest.mark.slow
def test_ambient_thread_and_isa_settings_do_not_change_the_bits(plain_seed0):
    assert fingerprint_of(run_python(*TRAIN, "--seed", "0", env=AMBIENT)) == plain_seed0


SCRIPT_UNPINNED = """
import reprodl.runtime as rt
rt.PINNED_ENV["ONEDNN_MAX_CPU_ISA"] = "SSE41"   # what an unpinned run would use
rt.INTRA_OP_THREADS = 4
from reprodl.cli import main
main(["train", "--model", "mlp", "--steps", "60", "--seed", "0"])
"""


@pytest.mark.slow
def test_those_settings_would_change_the_bits_without_the_pins(plain_seed0):
    """The control for the test above: the ambient values do matter when not overridden."""
    assert fingerprint_of(run_python("-c", SCRIPT_UNPINNED)) != plain_seed0


@pytest.mark.slow
def test_op_determinism_switch_changes_the_bits(plain_seed0):
    result = run_python(*TRAIN, "--seed", "0", "--no-op-determinism")
    assert "op determinism off" in result.stdout
    assert fingerprint_of(result) != plain_seed0


@pytest.mark.slow
def test_warns_when_hash_seed_unset():
    code = "import reprodl; reprodl.setup(0)"
    result = run_python("-c", code, unset=("PYTHONHASHSEED",))
    assert result.returncode == 0, result.stderr
    assert "ReproducibilityWarning: PYTHONHASHSEED is not set" in result.stderr
    quiet = run_python("-c", code, env={"PYTHONHASHSEED": "0"})
    assert "ReproducibilityWarning" not in quiet.stderr


@pytest.mark.slow
def test_warns_when_tensorflow_already_initialised():
    code = (
        "import tensorflow as tf\n"
        "tf.config.threading.set_intra_op_parallelism_threads(3)\n"
        "tf.constant(1.0) + 1\n"
        "import reprodl; reprodl.setup(0)\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr
    assert "already initialised with 3 intra-op threads, not 1" in result.stderr


@pytest.mark.slow
def test_warns_when_numpy_imported_first():
    result = run_python(
        "-c",
        "import numpy; import reprodl; reprodl.setup(0)",
        env={"OPENBLAS_CORETYPE": "Sandybridge"},
    )
    assert result.returncode == 0, result.stderr
    assert "was set after NumPy was imported" in result.stderr
    assert "runs the Sandybridge kernels, not Haswell" in result.stderr


def test_setup_rejects_bad_seed():
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed"):
            runtime.setup(bad)


def test_environment_report_describes_machine_and_pins():
    runtime.setup(0)
    report = runtime.environment_report()
    for key in ("python", "cpu", "cpu_flags", "numpy", "tensorflow", "keras", "settings"):
        assert key in report
    assert report["settings"]["tf_intra_op_threads"] == runtime.INTRA_OP_THREADS
    assert report["settings"]["op_determinism"] is True
    line = runtime.environment_line()
    assert "TensorFlow 2." in line and "op determinism on" in line
    # The line names this CPU (nbval's sanitizer masks that part alone) and what oneDNN runs.
    from reprodl import cpu

    info = cpu.describe()
    assert f"| CPU {info.model_name} ({info.best_isa}, L2 " in line
    assert f"oneDNN ops on, ISA {info.effective_isa(runtime.ONEDNN_ISA)} (cap AVX2)" in line
    assert "1 intra-op thread(s), 2 inter-op" in line
    cfg = (Path(__file__).parent / "sanitize.cfg").read_text().splitlines()
    at = next(i for i, text in enumerate(cfg) if text.startswith(r"regex: \| CPU"))
    pattern, replacement = cfg[at].split(": ", 1)[1], cfg[at + 1].split(": ", 1)[1]
    sanitized = re.sub(pattern, replacement, line)
    assert info.model_name not in sanitized and "ISA AVX2" in sanitized


def test_numpy_simd_problems_name_an_old_numpy_that_keeps_its_avx512_loops():
    from reprodl.runtime import numpy_simd_problems

    avx512 = {"AVX512F": True, "AVX512_SKX": True, "X86_V4": False}
    (old,) = numpy_simd_problems("2.0.2", avx512)
    assert old.startswith("NumPy 2.0.2 predates the CPU-feature groups") and "AVX512_SKX" in old
    assert numpy_simd_problems("1.26.4", {"AVX512F": False}) == []  # an AVX2 machine: fine
    assert numpy_simd_problems("2.4.6", avx512) == []  # the groups are disabled: nothing above
    (late,) = numpy_simd_problems("2.4.6", {"X86_V4": True})
    assert late.startswith("NumPy dispatches to X86_V4 loops: NumPy was imported before reprodl")


def test_the_book_environment_is_the_one_requirements_pin():
    from support import ROOT

    from reprodl.runtime import BOOK_ENVIRONMENT

    pins = dict(
        line.strip().split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for package in ("numpy", "tensorflow", "keras"):
        assert pins[package] == BOOK_ENVIRONMENT[package], package


def test_setup_prints_one_block_only_where_the_environment_differs(monkeypatch):
    from reprodl import runtime

    assert runtime.differences_from_book() == []  # the pinned environment of the tests
    monkeypatch.setitem(runtime.BOOK_ENVIRONMENT, "numpy", "9.9.9")
    differences = runtime.differences_from_book()
    assert differences == [f"numpy {runtime.versions()['numpy']}, not 9.9.9"]
    block = runtime.book_environment_block(differences).splitlines()
    assert block[0].startswith("This environment differs from the one the book's outputs come")
    assert block[1] == f"  - numpy {runtime.versions()['numpy']}, not 9.9.9"
    assert block[2].startswith("So the last bits")


def test_setup_warns_on_caches_no_record_verified(monkeypatch):
    import dataclasses
    import warnings

    from reprodl import cpu

    verified = runtime.verified_cache_geometries()
    assert (32 * 1024, 512 * 1024) in verified and (48 * 1024, 2048 * 1024) in verified
    here = cpu.describe()
    for (l1d, l2), warned in (((32 * 1024, 512 * 1024), False), ((64 * 1024, 8192 * 1024), True)):
        fake = dataclasses.replace(here, l1d=l1d, l2=l2)
        monkeypatch.setattr(cpu, "describe", lambda fake=fake: fake)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runtime._check_isa()
        messages = [str(w.message) for w in caught if "caches" in str(w.message)]
        assert bool(messages) == warned, messages
    assert "L1d 64 KiB, L2 8 MiB" in messages[0] and "crosscheck" in messages[0]


@pytest.mark.slow
def test_the_private_op_determinism_switch_reads_and_turns_it_off():
    code = (
        "import reprodl; reprodl.setup(0)\n"
        "from reprodl import _tf\n"
        "on = _tf.is_op_determinism_enabled()\n"
        "_tf.disable_op_determinism()\n"
        "print(on, _tf.is_op_determinism_enabled())\n"
    )
    result = run_python("-c", code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[-1] == "True False"
