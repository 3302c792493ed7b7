"""``reprodl._proc``, the package's one child-process runner: results, stderr tails, timeouts that
stop a whole process group (grandchildren included), and supervision of several children that
stops the others at the first failure. Every child is a tiny ``python -c``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import processes_gone

from reprodl import _proc
from reprodl.errors import SubprocessError

PY = sys.executable

#: A child that starts a grandchild (``sleep 60``), writes both pids to ``argv[1]``, says so on
#: stderr and sleeps; with ``argv[2] == "stubborn"`` it ignores SIGTERM.
PARENT_OF_SLEEPER = """
import json, signal, subprocess, sys, time
if sys.argv[2] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "60"])
with open(sys.argv[1] + ".tmp", "w") as fh:
    json.dump([__import__("os").getpid(), child.pid], fh)
__import__("os").replace(sys.argv[1] + ".tmp", sys.argv[1])  # complete once it is there
print("started", file=sys.stderr, flush=True)
time.sleep(60)
"""


# --- one child -----------------------------------------------------------------------------------


def test_a_child_that_succeeds_gives_its_output():
    code = "import sys; print('out', sys.argv[1]); print('err', file=sys.stderr)"
    result = _proc.run([PY, "-c", code, "x"], env={**os.environ, "A": "1"}, timeout=30)
    assert result.ok and result.returncode == 0 and not result.timed_out
    assert (result.stdout, result.stderr) == ("out x\n", "err\n")
    assert result.argv == (PY, "-c", code, "x")
    assert 0 < result.seconds < 30
    assert result.check() is result


def test_the_child_gets_the_environment_and_folder_it_is_given(tmp_path):
    code = "import os; print(os.environ['REPRODL_PROC_TEST'], os.getcwd())"
    env = {**os.environ, "REPRODL_PROC_TEST": "yes"}
    result = _proc.run([PY, "-c", code], env=env, cwd=tmp_path, timeout=30)
    assert result.stdout.split() == ["yes", str(tmp_path)]


def test_a_failure_is_reported_with_the_end_of_its_stderr():
    code = "import sys\nfor i in range(30): print('line', i, file=sys.stderr)\nsys.exit(3)"
    result = _proc.run([PY, "-c", code], timeout=30)
    assert (result.ok, result.returncode, result.status) == (False, 3, "exited with status 3")
    assert result.tail(2) == "line 28\nline 29"
    with pytest.raises(SubprocessError) as info:
        result.check("the snippet")
    message = str(info.value)
    assert message.startswith("the snippet exited with status 3; the end of its stderr:\nline 10")
    assert message.endswith("line 29") and "line 9\n" not in message


def test_a_child_killed_by_a_signal_says_which():
    code = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    result = _proc.run([PY, "-c", code], timeout=30)
    assert result.returncode == -11 and result.status == "was killed by SIGSEGV"


def test_a_program_that_cannot_start_is_a_subprocess_error(tmp_path):
    with pytest.raises(SubprocessError, match="cannot run /no/such/program: No such file"):
        _proc.run(["/no/such/program"], timeout=30)


def test_output_sent_to_files_is_kept_and_the_stderr_tail_read_back(tmp_path):
    code = "import sys; print('to the log'); print('x' * 100000, 'end', file=sys.stderr)"
    out, err = tmp_path / "run.stdout", tmp_path / "run.stderr"
    result = _proc.run([PY, "-c", code], timeout=30, stdout=out, stderr=err)
    assert out.read_text() == "to the log\n" and result.stdout == ""
    assert len(err.read_bytes()) > _proc.TAIL_BYTES
    assert len(result.stderr) == _proc.TAIL_BYTES and result.stderr.endswith(" end\n")


def test_stderr_tail_from_text_bytes_or_a_file(tmp_path):
    assert _proc.stderr_tail("a\n\n  \nb\nc  \n", lines=2) == "b\nc"
    assert _proc.stderr_tail(b"x\n") == "x"
    assert _proc.stderr_tail(None) == "(no stderr)"
    assert _proc.stderr_tail("a\nb\n", prefix="  | ") == "  | a\n  | b"
    assert _proc.stderr_tail("", prefix="  | ") == "  (no stderr)"
    log = tmp_path / "err.log"
    log.write_bytes(b"first\n" + b"y" * 70000 + b"\nlast\n")
    assert _proc.stderr_tail(log, lines=5).splitlines()[-1] == "last"
    assert "first" not in _proc.stderr_tail(log, lines=5)  # only the last 64 KiB are read
    assert _proc.stderr_tail(tmp_path / "missing.log") == "(no stderr)"


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_a_timeout_stops_the_whole_process_group(tmp_path, mode):
    """SIGTERM to the group; SIGKILL after the grace period for what ignores it."""
    pids = tmp_path / "pids.json"
    start = time.monotonic()
    result = _proc.run([PY, "-c", PARENT_OF_SLEEPER, str(pids), mode], timeout=2, grace=0.5)
    assert time.monotonic() - start < 15
    assert result.timed_out and result.returncode is None and not result.ok
    assert result.status == "took more than 2 s and was stopped"
    assert result.tail() == "started"
    started = json.loads(pids.read_text())
    assert len(started) == 2 and processes_gone(started)


def test_a_finished_child_leaves_no_grandchild_behind(tmp_path):
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '60'])\n"
        "open(sys.argv[1], 'w').write(str(child.pid))\n"
    )
    start = time.monotonic()
    result = _proc.run([PY, "-c", code, str(tmp_path / "pid")], timeout=30)
    assert result.ok and time.monotonic() - start < 15  # the grandchild holds no pipe open
    assert processes_gone([int((tmp_path / "pid").read_text())])


# --- several children ----------------------------------------------------------------------------


def _start_all(codes: list[str], tmp_path: Path) -> list[subprocess.Popen[bytes]]:
    """Child ``i`` runs ``codes[i]`` with ``argv[1:] == [tmp_path/pids_{i}.json, "polite"]``."""
    return [
        _proc.start([PY, "-c", code, str(tmp_path / f"pids_{i}.json"), "polite"])
        for i, code in enumerate(codes)
    ]


def test_supervise_waits_for_every_child_that_succeeds(tmp_path):
    procs = _start_all(["import time; time.sleep(0.3)", "pass"], tmp_path)
    ended = _proc.supervise(procs, timeout=30)
    assert ended.ok and ended.returncodes == (0, 0) and (ended.failed, ended.hung) == (None, ())
    assert ended.seconds[1] <= ended.seconds[0] < 15


def test_supervise_stops_the_others_when_one_fails(tmp_path):
    fail = (  # once the other one has started its grandchild
        "import os, sys, time\n"
        "while not os.path.exists(sys.argv[1].replace('pids_1', 'pids_0')): time.sleep(0.05)\n"
        "sys.exit(4)"
    )
    procs = _start_all([PARENT_OF_SLEEPER, fail], tmp_path)
    start = time.monotonic()
    ended = _proc.supervise(procs, timeout=60, grace=0.5)
    assert time.monotonic() - start < 15  # not the 60 s of the sleeping one
    assert ended.failed == 1 and ended.hung == () and not ended.ok
    assert ended.returncodes[1] == 4 and ended.returncodes[0] < 0  # stopped by a signal
    started = json.loads((tmp_path / "pids_0.json").read_text())
    assert len(started) == 2 and processes_gone(started)


def test_supervise_stops_every_child_at_the_timeout(tmp_path):
    procs = _start_all([PARENT_OF_SLEEPER, PARENT_OF_SLEEPER], tmp_path)
    ended = _proc.supervise(procs, timeout=2, grace=0.5)
    assert ended.hung == (0, 1) and ended.failed is None
    assert all(1.5 < s < 15 for s in ended.seconds)
    started = [p for i in range(2) for p in json.loads((tmp_path / f"pids_{i}.json").read_text())]
    assert len(started) == 4 and processes_gone(started)


def test_proc_pins_nothing_and_loads_no_numpy():
    code = (
        "import sys, reprodl._proc\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'tensorflow') "
        "or m == 'reprodl.runtime'))"
    )
    assert _proc.run([PY, "-c", code], timeout=60).check().stdout == "[]\n"
