"""``python -m reprodl check``: repeated and perturbed runs of a user's command, the verdict and its
cause, and the errors for runs that fail, hang or write nothing usable.

The fast tests run ``tests/check_scripts/fake_train.py``, which writes made-up run records whose
contents depend on what its arguments say (an environment variable, the hash seed, os.urandom);
the slow one runs a real Keras training with :class:`reprodl.keras.RecordRun`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pytest
from support import processes_gone, run_python

from reprodl import check, fingerprint, records
from reprodl.check import Variation, plan
from reprodl.check.run import _with_output
from reprodl.cli import main
from reprodl.errors import RecordError, SubprocessError, UsageError

SCRIPTS = Path(__file__).resolve().parent / "check_scripts"
FAKE = [sys.executable, str(SCRIPTS / "fake_train.py")]

#: The plain runs' environment in most tests: the book's pins, a fixed hash seed.
PINNED = {
    "TF_NUM_INTRAOP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "PYTHONHASHSEED": "0",
}

THREADS_ADVICE = (
    "cause: the result depends on the intra-op thread count: pin TF_NUM_INTRAOP_THREADS in your "
    'script before TensorFlow loads (os.environ["TF_NUM_INTRAOP_THREADS"] = "1"); the run also '
    "changed OMP_NUM_THREADS, which TensorFlow's pip package ignores: pin it too if your script "
    "uses an OpenMP library"
)
SEED_NOT_FIXED = "cause: the plain runs differ, so the command is not deterministic by itself:"


@pytest.fixture
def env() -> dict[str, str]:
    """This environment with the pins of :data:`PINNED` (the tests' conftest sets them too)."""
    return {**os.environ, **PINNED}


@pytest.fixture
def avx512(monkeypatch):
    """Pretend the CPU's best instruction set is AVX512_CORE (the isa run's cap depends on it)."""
    monkeypatch.setattr(plan, "_best_isa", lambda: "AVX512_CORE")


def _check(*modes: str, env, **kwargs) -> check.CheckResult:
    return check.run([*FAKE, *modes], env=env, **kwargs)


def _short_fingerprint(path: Path) -> str:
    return fingerprint.short(records.load(path).final_digest)


# --- identical ----------------------------------------------------------------------------------


def test_a_steady_command_is_identical_under_every_perturbation(env, avx512, tmp_path):
    progress: list[str] = []
    result = _check(
        "steady", env=env, vary=check.PERTURBATIONS, keep=tmp_path, progress=progress.append
    )
    assert result.identical and result.exit_status == 0
    assert result.lines() == [
        "identical: 6 runs (2 plain, threads, hash-seed, isa, order), 12 steps, fingerprint "
        + _short_fingerprint(tmp_path / "run-1.json"),
        "run 1 (plain)",
        "run 2 (plain): identical to run 1",
        "run 3 (threads: TF_NUM_INTRAOP_THREADS=2 OMP_NUM_THREADS=2; plain runs: 1, 1): "
        "identical to run 1",
        "run 4 (hash-seed: PYTHONHASHSEED=1; plain runs: 0): identical to run 1",
        "run 5 (isa: ONEDNN_MAX_CPU_ISA=AVX512_CORE; plain runs: AVX2): identical to run 1",
        "run 6 (order: TF_NUM_INTEROP_THREADS=1; plain runs: 2): identical to run 1",
    ]
    assert [re.sub(r"\d+\.\d s$", "T s", line) for line in progress] == [
        "run 1/6 (plain): T s",
        "run 2/6 (plain): T s",
        "run 3/6 (threads: TF_NUM_INTRAOP_THREADS=2 OMP_NUM_THREADS=2): T s",
        "run 4/6 (hash-seed: PYTHONHASHSEED=1): T s",
        "run 5/6 (isa: ONEDNN_MAX_CPU_ISA=AVX512_CORE): T s",
        "run 6/6 (order: TF_NUM_INTEROP_THREADS=1): T s",
    ]
    # --keep keeps each run's record and logs; each run had a record path of its own
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(
        f"run-{k}.{ext}" for k in range(1, 7) for ext in ("json", "stdout", "stderr")
    )


def test_a_command_that_pins_the_setting_itself_is_identical(env):
    """The script overrides the perturbation (os.environ[...] = ... first): robust to it."""
    result = _check(
        "pin=TF_NUM_INTRAOP_THREADS=1", "env=TF_NUM_INTRAOP_THREADS", env=env, vary=["threads"]
    )
    assert result.identical
    # without the pin, the same command depends on the thread count
    assert not _check("env=TF_NUM_INTRAOP_THREADS", env=env, vary=["threads"]).identical


def test_more_plain_runs_and_the_record_interval(env, tmp_path):
    result = _check("steady", env=env, runs=3, every=3, keep=tmp_path)
    assert result.lines()[0].startswith("identical: 3 runs (3 plain), 12 steps, fingerprint ")
    assert sorted(records.load(tmp_path / "run-3.json").digests) == [0, 3, 6, 9, 12]


def test_the_temporary_folder_is_removed(env, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert _check("steady", env=env).identical
    with pytest.raises(SubprocessError):
        _check("fail", env=env)
    assert list(tmp_path.iterdir()) == []


# --- a perturbed run differs: the result depends on it ------------------------------------------


@pytest.mark.parametrize(
    ("mode", "vary", "headline", "cause"),
    [
        (
            "env=TF_NUM_INTRAOP_THREADS",
            "threads",
            "diverged: run 3 (threads) differs from run 1 at step 8, variable net/dense/bias",
            THREADS_ADVICE,
        ),
        (
            "env=TF_NUM_INTEROP_THREADS",
            "order",
            "diverged: run 3 (order) differs from run 1 at step 8, variable net/dense/bias",
            "cause: the result depends on the inter-op thread count (the order independent ops "
            "run in): pin TF_NUM_INTEROP_THREADS in your script before TensorFlow loads "
            '(os.environ["TF_NUM_INTEROP_THREADS"] = "2")',
        ),
        (
            "env=ONEDNN_MAX_CPU_ISA",
            "isa",
            "diverged: run 3 (isa) differs from run 1 at step 8, variable net/dense/bias",
            "cause: the result depends on the instruction set oneDNN computes with: pin "
            "ONEDNN_MAX_CPU_ISA in your script before TensorFlow loads "
            '(os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2")',
        ),
        (
            "hash",
            "hash-seed",
            "diverged: run 3 (hash-seed) differs from run 1 at step 1 (the loss)",
            "cause: the result depends on the hash seed (the iteration order of sets and dicts "
            "of strings): sort what you iterate over, or set PYTHONHASHSEED before Python starts "
            "(e.g. PYTHONHASHSEED=0 python ...; a script cannot set it for itself)",
        ),
    ],
)
def test_a_perturbed_run_that_differs_names_what_to_pin(env, avx512, mode, vary, headline, cause):
    result = _check(mode, env=env, vary=[vary])
    assert result.exit_status == 1
    lines = result.lines()
    assert lines[0] == headline
    assert lines[2] == "run 2 (plain): identical to run 1"
    where = headline.partition(f"run 3 ({vary}) ")[2]
    assert lines[3].startswith(f"run 3 ({vary}: ") and lines[3].endswith(f"): {where}")
    assert lines[4:7] == [cause, "", "A: run 1 (plain)"]
    assert lines[7] == f"B: run 3 ({vary})"
    assert lines[-1].startswith("verdict: the runs diverge; first difference at step ")


def test_the_report_is_the_compare_report_of_the_two_runs(env):
    lines = _check("env=TF_NUM_INTRAOP_THREADS", env=env, vary=["threads"]).lines()
    report = lines[lines.index("") + 1 :]
    assert report[2] == "model net, 12 steps; state digests at steps 0, 4, 8, 12"
    assert "losses: identical at all 12 steps" in report
    assert (
        "weights: identical at step 4, differ at step 8 (first changed after one of steps 5..8)"
        in report
    )
    assert "  first differing variable: net/dense/bias" in report


def test_a_run_with_another_number_of_steps_diverges(env):
    result = _check("early-stop=TF_NUM_INTRAOP_THREADS", env=env, vary=["threads"])
    assert result.exit_status == 1
    assert result.lines() == [
        "diverged: run 3 (threads) recorded another kind of training than run 1 (different "
        "numbers of steps (12 and 10))",
        "run 1 (plain)",
        "run 2 (plain): identical to run 1",
        "run 3 (threads: TF_NUM_INTRAOP_THREADS=2 OMP_NUM_THREADS=2; plain runs: 1, 1): recorded "
        "another kind of training than run 1 (different numbers of steps (12 and 10))",
        THREADS_ADVICE,
    ]


# --- the plain runs differ: nondeterminism inside the command -----------------------------------


def test_unseeded_initial_weights(env):
    result = _check("urandom-init", env=env, vary=["threads"])
    assert result.exit_status == 1
    lines = result.lines()
    assert (
        lines[0]
        == "diverged: run 2 (plain) differs from run 1 at step 0, variable net/dense/kernel"
    )
    assert lines[4:8] == [
        SEED_NOT_FIXED,
        "  - the initial weights differ (step 0, net/dense/kernel): an initialiser or the global "
        "seed is not fixed (call keras.utils.set_random_seed(SEED) before building the model, "
        "or give each initialiser a seed)",
        "the perturbed runs tell nothing until the plain runs agree",
        "",
    ]
    assert lines[8:10] == ["A: run 1 (plain)", "B: run 2 (plain)"]
    assert "weights: differ already at step 0 (before training)" in lines


def test_an_unseeded_random_generator(env):
    lines = _check("urandom-rng", env=env).lines()
    assert lines[0] == (
        "diverged: run 2 (plain) differs from run 1 at step 0, variable "
        "net/dropout/seed_generator_state"
    )
    assert lines[3:5] == [
        SEED_NOT_FIXED,
        "  - a random generator's state differs (step 0, net/dropout/seed_generator_state): it "
        "is seeded differently in each run (give the layer a seed, e.g. Dropout(rate, "
        "seed=...), or call keras.utils.set_random_seed(SEED))",
    ]


def test_runs_that_drift_apart_later(env):
    lines = _check("urandom-order", env=env).lines()
    where = (
        "at step 6 (the loss); the recorded state from step 8 on, first variable net/logits/kernel"
    )
    assert lines[0] == f"diverged: run 2 (plain) differs from run 1 {where}"
    assert lines[3:5] == [
        SEED_NOT_FIXED,
        f"  - the runs start alike and drift apart {where}: an unseeded data order (shuffling "
        "without a seed), random draws without a seed (dropout, augmentation), or a "
        "nondeterministic op (call tf.config.experimental.enable_op_determinism())",
    ]


def test_an_unset_hash_seed_is_named_and_not_varied(env):
    del env["PYTHONHASHSEED"]
    result = _check("urandom-init", env=env, vary=["hash-seed"])
    lines = result.lines()
    assert [r.variation.name for r in result.runs] == ["plain", "plain"]
    assert lines[1:7] == [
        "run 1 (plain)",
        "run 2 (plain): differs from run 1 at step 0, variable net/dense/kernel",
        "not run: hash-seed: PYTHONHASHSEED is unset, so every run, the plain ones too, already "
        "has a hash seed of its own",
        SEED_NOT_FIXED,
        lines[5],
        "  - or the hash seed: PYTHONHASHSEED is unset, so each run had its own (set it, e.g. "
        "PYTHONHASHSEED=0, to rule that out)",
    ]


# --- --output: commands without the callback ----------------------------------------------------


def test_output_files_that_agree(env, tmp_path):
    cmd = ["steady", "--no-record", "--output", "out.txt"]
    result = _check(*cmd, env=env, output="out.txt", keep=tmp_path)
    data = (tmp_path / "run-1-out.txt").read_bytes()
    assert data == (tmp_path / "run-2-out.txt").read_bytes()
    sha = hashlib.sha256(data).hexdigest()[:16]
    assert result.lines() == [
        f"identical: 2 runs (2 plain), output out.txt ({len(data)} bytes, sha256 {sha})",
        "run 1 (plain)",
        "run 2 (plain): identical to run 1",
    ]
    assert not (tmp_path / "out.txt").exists()  # each run wrote to its own path


def test_output_files_that_differ_show_the_first_differing_line(env, tmp_path):
    cmd = ["urandom-init", "--no-record", "--output", "out.txt"]
    result = _check(*cmd, env=env, output="out.txt", keep=tmp_path)
    a, b = (
        (tmp_path / f"run-{k}-out.txt").read_text().splitlines()[2] for k in (1, 2)
    )  # line 3: the fingerprint
    assert a != b
    assert result.exit_status == 1
    assert result.lines() == [
        "diverged: run 2 (plain) differs from run 1 at line 3 of out.txt",
        "run 1 (plain)",
        "run 2 (plain): differs from run 1 at line 3 of out.txt",
        SEED_NOT_FIXED,
        "  - a seed that is not fixed, an unseeded data order or a nondeterministic op; add "
        "reprodl.keras.RecordRun() to the callbacks of fit to see at which step and in which "
        "variable",
        "",
        "out.txt, line 3:",
        f"  run 1 (plain): {a}",
        f"  run 2 (plain): {b}",
    ]


def test_records_and_output_are_both_compared(env):
    result = _check("env=TF_NUM_INTRAOP_THREADS", "--output", "o.txt", env=env, output="o.txt")
    assert result.lines()[0].startswith("identical: 2 runs (2 plain), 12 steps, fingerprint ")
    assert ", output o.txt (" in result.lines()[0]
    result = _check(
        "env=TF_NUM_INTRAOP_THREADS", "--output", "o.txt", env=env, output="o.txt", vary=["threads"]
    )
    # the record says where; the output file differs too (its 'env' line and fingerprint)
    assert result.lines()[0] == (
        "diverged: run 3 (threads) differs from run 1 at step 8, variable net/dense/bias"
    )
    assert result.lines()[-3] == "o.txt, line 3:"
    assert result.lines()[-1].startswith("  run 3 (threads): fingerprint ")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["p", "--output", "m.txt"], ["p", "--output", "/r/1-m.txt"]),
        (["p", "--output=m.txt", "-v"], ["p", "--output=/r/1-m.txt", "-v"]),
        (["p", "-o", "m.txt", "m.txt"], ["p", "-o", "/r/1-m.txt", "/r/1-m.txt"]),
        (["p", "--save=m.txt"], ["p", "--save=/r/1-m.txt"]),
    ],
)
def test_the_output_path_is_substituted_wherever_the_command_names_it(command, expected):
    assert _with_output(command, "m.txt", "/r/1-m.txt") == expected


@pytest.mark.parametrize("command", [["p", "--output", "m.txt.bak"], ["p", "--out=x/m.txt"], ["p"]])
def test_a_command_that_does_not_name_the_output_is_left_as_it_is(command):
    assert _with_output(command, "m.txt", "/r/1-m.txt") is None  # a fixed name


def _writes(text: str, status: int = 0) -> list[str]:
    """A command that writes ``text`` to ``m.txt`` in its working directory, a fixed name that
    its arguments do not give (``{entropy}`` in ``text``: 8 random hex digits)."""
    code = "import os, sys; "
    code += f"open('m.txt', 'w').write({text!r}.format(entropy=os.urandom(4).hex())); "
    return [sys.executable, "-c", code + f"sys.exit({status})"]


def test_a_fixed_output_name_is_collected_run_by_run_and_a_file_there_is_kept(
    env, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.txt").write_text("the user's own file\n")
    result = check.run(_writes("loss 0.5\n"), env=env, output="m.txt", keep=tmp_path / "k")
    assert result.identical and result.lines()[0].startswith("identical: 2 runs (2 plain), ")
    assert (tmp_path / "k" / "run-1-m.txt").read_text() == "loss 0.5\n"
    assert (tmp_path / "k" / "run-2-m.txt").read_text() == "loss 0.5\n"
    assert (tmp_path / "m.txt").read_text() == "the user's own file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k", "m.txt"]
    differ = check.run(_writes("fingerprint {entropy}\n"), env=env, output="m.txt")
    assert differ.lines()[0] == "diverged: run 2 (plain) differs from run 1 at line 1 of m.txt"
    assert (tmp_path / "m.txt").read_text() == "the user's own file\n"


def test_a_failed_run_with_a_fixed_output_name_leaves_the_users_file(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.txt").write_text("mine\n")
    with pytest.raises(SubprocessError, match=r"run 1/2 \(plain\) failed with exit status 3"):
        check.run(_writes("half\n", status=3), env=env, output="m.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.txt"]
    assert (tmp_path / "m.txt").read_text() == "mine\n"
    with pytest.raises(SubprocessError, match="wrote neither a run record nor m.txt"):
        check.run([sys.executable, "-c", "pass"], env=env, output="m.txt")
    assert (tmp_path / "m.txt").read_text() == "mine\n"


def test_a_file_set_aside_by_a_stopped_check_is_never_overwritten(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    aside = tmp_path / f"m.txt{check.SET_ASIDE}"
    aside.write_text("from a check that was killed\n")
    with pytest.raises(UsageError, match="an earlier check set m.txt aside there"):
        check.run(_writes("x\n"), env=env, output="m.txt")
    assert aside.read_text() == "from a check that was killed\n"
    assert not (tmp_path / "m.txt").exists()


# --- runs that cannot be checked ----------------------------------------------------------------


def test_a_failing_run_is_named_with_its_stderr(env):
    with pytest.raises(SubprocessError) as info:
        _check("fail", env=env)
    assert str(info.value) == (
        "run 1/2 (plain) failed with exit status 1. The last lines of its stderr:\n"
        "  | Traceback (most recent call last):\n"
        "  | ValueError: the data folder is empty"
    )


def test_a_run_killed_by_a_signal_says_which(env):
    with pytest.raises(SubprocessError) as info:
        _check("segfault", env=env)
    assert str(info.value).startswith("run 1/2 (plain) was killed by SIGSEGV. The last lines ")


def test_a_perturbed_run_that_fails_is_named(env, tmp_path):
    with pytest.raises(SubprocessError) as info:
        _check("steady", "fail-if=TF_NUM_INTEROP_THREADS=1", env=env, vary=["order"], keep=tmp_path)
    assert str(info.value).startswith(
        "run 3/3 (order: TF_NUM_INTEROP_THREADS=1) failed with exit status 1. The last lines of "
        f"its stderr (all of it: {tmp_path / 'run-3.stderr'}):\n  | Traceback"
    )


@pytest.mark.parametrize("mode", ["hang", "stubborn"])
def test_a_run_past_its_timeout_is_stopped_with_its_children(env, tmp_path, monkeypatch, mode):
    """SIGTERM to the whole process group; SIGKILL after the grace period if ignored."""
    monkeypatch.setattr(sys.modules["reprodl.check.run"], "KILL_GRACE", 0.5)
    env["FAKE_PIDS"] = str(tmp_path / "pids")
    start = time.monotonic()
    with pytest.raises(SubprocessError) as info:
        _check(mode, env=env, timeout=3)
    assert time.monotonic() - start < 20
    assert str(info.value) == (
        "run 1/2 (plain) did not finish within 3 s; it was stopped, with every process it "
        "started. The last lines of its stderr:\n  | training..."
    )
    pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 2 and processes_gone(pids)


def test_a_finished_run_leaves_no_process_behind(env, tmp_path):
    """A command that exits while a child it started still runs: the child is stopped too."""
    script = tmp_path / "leave_child.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(child.pid))\n"
    )
    with pytest.raises(SubprocessError, match="wrote no run record"):
        check.run([sys.executable, str(script)], env=env)
    assert processes_gone([int((tmp_path / "pid").read_text())])


def test_a_corrupt_record_is_named(env):
    with pytest.raises(RecordError) as info:
        _check("steady", "corrupt", env=env)
    assert re.match(
        r"run 1/2 \(plain\) wrote a run record that cannot be read: \S+/run-1\.json: not valid "
        r"JSON, the file ends too early",
        str(info.value),
    )


def test_an_interrupted_record_is_refused(env):
    with pytest.raises(SubprocessError) as info:
        _check("interrupted", env=env)
    assert str(info.value) == (
        "run 1/2 (plain) exited normally, but its record says the training was interrupted "
        "(SIGTERM): the record covers only part of it"
    )


def test_no_record_says_how_to_get_one(env):
    with pytest.raises(SubprocessError) as info:
        _check("steady", "--no-record", env=env)
    assert str(info.value) == (
        "run 1/2 (plain) wrote no run record to $REPRODL_RECORD: add reprodl.keras.RecordRun() "
        "to the callbacks of fit, or name the file your command writes with --output FILE"
    )
    with pytest.raises(SubprocessError) as info:  # named, but the command does not write it
        _check("steady", "--no-record", "ignored", "m.txt", env=env, output="m.txt")
    assert str(info.value).startswith("run 1/2 (plain) wrote neither a run record nor m.txt: ")


def test_a_later_run_must_write_what_the_first_wrote(env):
    with pytest.raises(SubprocessError) as info:
        _check("steady", "fail-if=TF_NUM_INTRAOP_THREADS=2", env=env, vary=["threads"])
    assert str(info.value).startswith("run 3/3 (threads: ")  # it failed: named
    cmd = [*FAKE, "steady"]
    with pytest.raises(SubprocessError) as info:
        check.run(
            ["/bin/sh", "-c", 'test "$TF_NUM_INTRAOP_THREADS" = 2 || exec "$@"', "sh", *cmd],
            env=env,
            vary=["threads"],
        )
    assert str(info.value) == (
        "run 3/3 (threads: TF_NUM_INTRAOP_THREADS=2 OMP_NUM_THREADS=2) wrote no run record "
        "(run 1 did)"
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ([], "no command to check: give it after --"),
        (["no-such-command-reprodl"], "command not found: no-such-command-reprodl"),
        (["./no/such/script.py"], "command not found: ./no/such/script.py"),
    ],
)
def test_a_command_that_cannot_run_is_a_usage_error(env, command, message):
    with pytest.raises(UsageError) as info:
        check.run(command, env=env)
    assert str(info.value) == message


# --- the perturbations --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "plain", "cores", "changes", "pin"),
    [
        ("threads", {"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"}, 2, "2", "1"),
        ("threads", {"TF_NUM_INTRAOP_THREADS": "2"}, 2, "1", "2"),
        ("threads", {"TF_NUM_INTRAOP_THREADS": "8"}, 2, "1", "8"),
        ("threads", {}, 2, "1", "1"),  # unset: one per core, here 2
        ("threads", {}, 1, "2", "2"),
        ("order", {"TF_NUM_INTEROP_THREADS": "2"}, 2, "1", "2"),
        ("order", {"TF_NUM_INTEROP_THREADS": "1"}, 2, "2", "1"),
        ("order", {}, 4, "1", "1"),
    ],
)
def test_thread_counts_switch_between_one_and_two(monkeypatch, name, plain, cores, changes, pin):
    monkeypatch.setattr(plan, "_cores", lambda: cores)
    v = check.variation(name, plain)
    names = (
        ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS")
        if name == "threads"
        else ("TF_NUM_INTEROP_THREADS",)
    )
    assert v.changes == tuple((n, changes) for n in names)
    assert v.before == tuple(plain.get(n) for n in names)
    assert v.pin == pin and v.environment(plain) == {**plain, **dict.fromkeys(names, changes)}


@pytest.mark.parametrize(
    ("best", "cap", "new", "pin"),
    [
        ("AVX512_CORE", "AVX2", "AVX512_CORE", "AVX2"),
        ("AVX2", "AVX2", "AVX", "AVX"),
        ("AVX512_CORE", None, "AVX2", "AVX2"),
        ("AVX512_CORE", "avx512_core", "AVX2", "AVX2"),
        ("AVX2", "AVX512_CORE", "AVX", "AVX"),  # a cap above the CPU: AVX2 in use
        ("AVX2", "AVX", "AVX2", "AVX"),
        ("AVX", None, "SSE41", "SSE41"),
        ("AVX", "SSE41", "AVX", "SSE41"),
    ],
)
def test_the_isa_cap_moves_to_a_neighbour(monkeypatch, best, cap, new, pin):
    monkeypatch.setattr(plan, "_best_isa", lambda: best)
    plain = {} if cap is None else {"ONEDNN_MAX_CPU_ISA": cap}
    v = check.variation("isa", plain)
    assert (v.changes, v.before, v.pin) == ((("ONEDNN_MAX_CPU_ISA", new),), (cap,), pin)


def test_an_isa_that_cannot_vary_is_a_note(monkeypatch):
    monkeypatch.setattr(plan, "_best_isa", lambda: None)
    assert check.variation("isa", {}).startswith("isa: this CPU (")
    monkeypatch.setattr(plan, "_best_isa", lambda: "SSE41")
    assert check.variation("isa", {}) == (
        "isa: this CPU has no other instruction set for oneDNN than SSE41"
    )


@pytest.mark.parametrize(
    ("flags", "new", "pin"),
    [
        (None, "--xla_cpu_max_isa=AVX", "AVX"),  # unset: the CPU's best, AVX2 here
        ("--xla_cpu_max_isa=AVX2", "--xla_cpu_max_isa=AVX2 --xla_cpu_max_isa=AVX", "AVX"),
        ("--xla_cpu_max_isa=AVX", "--xla_cpu_max_isa=AVX --xla_cpu_max_isa=AVX2", "AVX"),
    ],
)
def test_under_jax_the_isa_run_caps_xla(monkeypatch, flags, new, pin):
    """With ``KERAS_BACKEND=jax`` the isa run changes XLA's cap (the last flag wins)."""
    monkeypatch.setattr(plan, "_best_isa", lambda: "AVX2")
    env = {"KERAS_BACKEND": "jax", **({} if flags is None else {"XLA_FLAGS": flags})}
    v = check.variation("isa", env)
    assert (v.changes, v.before, v.pin) == ((("XLA_FLAGS", new),), (flags,), pin)
    assert "XLA generates code for" in v.advice() and f"--xla_cpu_max_isa={pin}" in v.advice()


def test_under_jax_the_threads_run_sizes_xlas_pool():
    v = check.variation("threads", {"KERAS_BACKEND": "jax", "PJRT_NPROC": "1"})
    assert v.changes == (("PJRT_NPROC", "2"),) and v.pin == "1"
    assert "XLA's CPU thread pool" in v.advice() and 'os.environ["PJRT_NPROC"]' in v.advice()
    tf = check.variation("threads", {"PJRT_NPROC": "1"})  # TensorFlow's runs: its variables
    assert [name for name, _ in tf.changes] == ["TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"]


def test_the_hash_seed_moves_on_unless_unset():
    assert check.variation("hash-seed", {"PYTHONHASHSEED": "0"}).changes == (
        ("PYTHONHASHSEED", "1"),
    )
    assert check.variation("hash-seed", {"PYTHONHASHSEED": "4294967295"}).changes == (
        ("PYTHONHASHSEED", "0"),
    )
    for plain in ({}, {"PYTHONHASHSEED": "random"}):
        assert check.variation("hash-seed", plain).startswith("hash-seed: PYTHONHASHSEED is unset")
    with pytest.raises(UsageError, match="unknown perturbation 'speed'"):
        check.variation("speed", {})


def test_a_plain_run_changes_nothing():
    plain = Variation()
    assert plain.plain and plain.label == plain.description == "plain"
    assert plain.environment({"A": "1"}) == {"A": "1"}


# --- the command line ---------------------------------------------------------------------------


def test_the_cli_prints_the_verdict_and_progress(monkeypatch, capsys):
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    argv = ["check", "--vary", "threads", "--", *FAKE, "env=TF_NUM_INTRAOP_THREADS"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == (
        "diverged: run 3 (threads) differs from run 1 at step 8, variable net/dense/bias"
    )
    assert THREADS_ADVICE in out.splitlines()
    assert re.fullmatch(
        r"run 1/3 \(plain\): \d+\.\d s\n"
        r"run 2/3 \(plain\): \d+\.\d s\n"
        r"run 3/3 \(threads: TF_NUM_INTRAOP_THREADS=2 OMP_NUM_THREADS=2\): \d+\.\d s\n",
        err,
    )
    assert main(["check", "--runs", "3", "--", *FAKE, "steady"]) == 0
    assert capsys.readouterr().out.startswith("identical: 3 runs (3 plain), 12 steps")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check"], "python -m reprodl check: error: no command to run: put it after --, e.g. "
         "check -- python train.py"),
        (["check", "--"], "python -m reprodl check: error: no command to run: put it after --, "
         "e.g. check -- python train.py"),
        (["check", "--runs", "1", "--", "x"], "python -m reprodl check: error: argument --runs: "
         "expected at least 2 runs to compare, got '1'"),
        (["check", "--vary", "threads,speed", "--", "x"], "python -m reprodl check: error: "
         "argument --vary: expected threads, hash-seed, isa, order (or a comma list), got 'speed'"),
        (["check", "--vary", "isa", "--vary", "threads,isa", "--", "x"],
         "python -m reprodl check: error: --vary isa is given twice"),
        (["check", "--", "no-such-command-reprodl", "--flag"],
         "python -m reprodl check: error: command not found: no-such-command-reprodl"),
        (["check", "--timeout", "0", "--", "x"], "python -m reprodl check: error: argument "
         "--timeout: expected a positive number, got '0'"),
    ],
)  # fmt: skip
def test_cli_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit, match="^2$"):
        main(argv)
    assert capsys.readouterr().err.splitlines()[-1] == message


def test_cli_errors_are_one_line_and_status_2(capsys):
    assert main(["check", "--", *FAKE, "fail"]) == 2
    assert capsys.readouterr() == (
        "",
        "error: run 1/2 (plain) failed with exit status 1. The last lines of its stderr:\n"
        "  | Traceback (most recent call last):\n"
        "  | ValueError: the data folder is empty\n",
    )


def test_the_command_after_dashes_keeps_its_own_options(capsys):
    """Options after -- belong to the command (here --runs and --debug are the script's modes)."""
    argv = ["check", "--", *FAKE, "steady", "--runs", "5", "--debug"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("identical: 2 runs (2 plain), 12 steps")


def test_in_a_fresh_process_the_command_gets_the_callers_environment(tmp_path):
    """``python -m reprodl`` pins its own process on import; the command must not inherit that."""
    keep = tmp_path / "runs"
    result = run_python(
        "-m", "reprodl", "check", "--keep", str(keep), "--output", "o.txt", "--",
        *FAKE, "env=TF_NUM_INTRAOP_THREADS", "env=ONEDNN_MAX_CPU_ISA", "--output", "o.txt",
        unset=("TF_NUM_INTRAOP_THREADS", "ONEDNN_MAX_CPU_ISA"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("identical: 2 runs (2 plain), 12 steps, fingerprint ")
    lines = (keep / "run-2-o.txt").read_text().splitlines()
    assert lines[3:] == ["env TF_NUM_INTRAOP_THREADS=None", "env ONEDNN_MAX_CPU_ISA=None"]
    assert records.load(keep / "run-2.json").steps == 12  # REPRODL_RECORD: a path per run


# --- end to end: a real Keras training ----------------------------------------------------------

KERAS_SCRIPT = """\
import os, sys
import numpy as np
import keras
import tensorflow as tf
from reprodl.keras import RecordRun

FIXED = sys.argv[1] == "fixed"
if FIXED:
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 20)).astype("float32")
y = (x[:, 0] > 0).astype("int64")
model = keras.Sequential([
    keras.Input((20,)),
    keras.layers.Dense(16, activation="relu"),
    keras.layers.Dropout(0.3, seed=1 if FIXED else None),
    keras.layers.Dense(2),
])
model.compile(
    optimizer=keras.optimizers.SGD(0.1),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
)
model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[RecordRun()])
"""


@pytest.mark.slow
def test_a_keras_script_with_unseeded_dropout_diverges_and_the_fixed_one_does_not(tmp_path):
    pytest.importorskip("reprodl.keras")
    script = tmp_path / "train.py"
    script.write_text(KERAS_SCRIPT)
    broken = run_python("-m", "reprodl", "check", "--", sys.executable, str(script), "broken")
    assert broken.returncode == 1, broken.stderr
    lines = broken.stdout.splitlines()
    assert re.fullmatch(
        r"diverged: run 2 \(plain\) differs from run 1 at step 0, variable \S+", lines[0]
    )
    assert lines[3] == SEED_NOT_FIXED
    assert any(line.startswith("  - the initial weights differ (step 0, ") for line in lines)
    assert any(
        line.startswith("  - a random generator's state differs (step 0, ")
        and "seed_generator" in line
        for line in lines
    )
    fixed = run_python(
        "-m", "reprodl", "check", "--vary", "hash-seed", "--", sys.executable, str(script), "fixed"
    )
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert re.fullmatch(
        r"identical: 3 runs \(2 plain, hash-seed\), 8 steps, fingerprint [0-9a-f]{16}",
        fixed.stdout.splitlines()[0],
    )


@pytest.mark.slow
def test_a_script_written_as_keras_examples_are_checked_by_its_fixed_output(tmp_path):
    """keras.io's style: a Sequential without keras.Input, fit on arrays, history.json written
    under its fixed name; with RecordRun the lazily built model is recorded from step 0, and
    check compares both the records and each run's history.json."""
    pytest.importorskip("reprodl.keras")
    script = str(SCRIPTS / "keras_example.py")
    args = ["-m", "reprodl", "check", "--output", "history.json", "--keep", str(tmp_path / "k")]
    result = run_python(*args, "--", sys.executable, script, "--record", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(
        r"identical: 2 runs \(2 plain\), 15 steps, fingerprint [0-9a-f]{16}, "
        r"output history\.json \(\d+ bytes, sha256 [0-9a-f]{16}\)",
        result.stdout.splitlines()[0],
    )
    history = json.loads((tmp_path / "k" / "run-2-history.json").read_text())
    assert set(history) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert not (tmp_path / "history.json").exists()
    record = records.load(tmp_path / "k" / "run-1.json")
    assert record.steps == 15 and sorted(record.digests) == [0, 10, 15]
    assert any(name.endswith("conv2d/kernel") for name in record.variable_names)


def test_record_once_returns_the_one_run_and_keeps_it(env, tmp_path):
    rec = check.record_once([*FAKE, "steady"], tmp_path / "one", env=env)
    assert rec.steps == 12 and (tmp_path / "one" / "run-1.json").is_file()
    again = check.record_once([*FAKE, "steady"], tmp_path / "two", env=env)
    assert again.final_digest == rec.final_digest


def test_record_once_without_a_record_or_with_a_failure_is_an_error(env, tmp_path):
    with pytest.raises(SubprocessError, match="wrote no run record: add reprodl.keras.RecordRun"):
        check.record_once([*FAKE, "steady", "--no-record"], tmp_path, env=env)
    with pytest.raises(SubprocessError, match="failed with exit status 1"):
        check.record_once([*FAKE, "fail"], tmp_path, env=env)
    with pytest.raises(UsageError, match="no command"):
        check.record_once([], tmp_path, env=env)


def test_check_and_the_recorder_agree_on_their_environment_variables():
    from reprodl import keras as recorder  # check must not import it: it loads NumPy unpinned

    assert (check.RECORD_VARIABLE, check.EVERY_VARIABLE) == (recorder.ENV_PATH, recorder.ENV_EVERY)
