"""The cross-CPU contract: the pinned battery gives the committed bits here and on emulated CPUs.

A CPU that breaks the contract is a red test here, not a surprise in a chapter. The emulated part
needs QEMU's user-mode emulator (``make test`` installs Debian's ``qemu-user`` when it can); without
it that part is skipped with one line, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import copy
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import ROOT, run_python

from reprodl import cpu, crosscheck

RECORDS = ROOT / "src" / "reprodl" / "results" / "cross_cpu"
#: The CPUs the test emulates (the dense cases ~1 min a CPU under QEMU, two at a time).
EMULATED = ("Haswell", "Skylake-Server", "Icelake-Server", "EPYC-Rome", "EPYC-Milan")
#: One model of each group the old pins split apart (512 KiB and 4 MiB of L2) also trains the
#: CNN, in its smallest form (crosscheck.CNN_SMALL): under QEMU one step of the battery's ``cnn``
#: case (batch 100) took 170 s on an Intel Xeon host, and its 1,000-image logits some 20 minutes.
CNN_EMULATED = ("EPYC-Milan", "Haswell")


def committed() -> list[dict]:
    return crosscheck.load_dir(RECORDS)


def pinned_bits(record: dict) -> dict[str, tuple[str, str, str]]:
    return {
        r["case"]: (r["loss"], r["fingerprint"], r["logits"])
        for r in record["results"]
        if r["setting"] == crosscheck.PINNED.name
    }


def test_committed_records_agree_on_the_pinned_setting():
    recs = committed()
    cpus = {crosscheck.label(r) for r in recs}
    assert len(cpus) >= 6, cpus  # this machine's kind and at least five emulated models
    rows = [a for a in crosscheck.agreement(recs) if a.setting == crosscheck.PINNED.name]
    assert {a.case for a in rows} == set(crosscheck.CASES)
    for a in rows:
        assert a.exact, crosscheck.format_agreement([a])
        assert len(a.groups[0][1]) == len(recs)


def test_committed_records_show_why_the_old_pins_were_dropped():
    """With oneDNN's ops off and 2 threads (the old pins) the CPUs split into groups."""
    rows = {(a.setting, a.case): a for a in crosscheck.agreement(committed())}
    assert not rows["opts0-AVX2-t2", "mlp"].exact


def test_record_validation_names_the_problem(tmp_path: Path):
    good = committed()[0]
    crosscheck.validate(good)
    bad = copy.deepcopy(good)
    bad["results"][0]["fingerprint"] = "xyz"
    with pytest.raises(crosscheck.CrossCheckError, match=r"results/0/fingerprint"):
        crosscheck.validate(bad)
    twice = copy.deepcopy(good)
    twice["results"].append(dict(twice["results"][0]))
    with pytest.raises(crosscheck.CrossCheckError, match="twice"):
        crosscheck.validate(twice)
    truncated = tmp_path / "cut.json"
    truncated.write_text(json.dumps(good)[:200])
    with pytest.raises(crosscheck.CrossCheckError, match="cut.json"):
        crosscheck.load(truncated)
    with pytest.raises(crosscheck.CrossCheckError, match="no crosscheck records"):
        crosscheck.load_dir(tmp_path / "empty")


def test_agreement_groups_cpus_by_bits():
    base = committed()[0]
    other = copy.deepcopy(base)
    other["emulated"] = "Made-Up"
    other["results"][0]["fingerprint"] = "0" * 64
    rows = crosscheck.agreement([base, other])
    first = next(
        a
        for a in rows
        if (a.setting, a.case) == (other["results"][0]["setting"], other["results"][0]["case"])
    )
    assert not first.exact and len(first.groups) == 2
    assert "2 results on 2 CPUs" in crosscheck.format_agreement([first])[0]


def test_setting_names_round_trip():
    for s in (crosscheck.PINNED, *crosscheck.ALTERNATIVES):
        assert crosscheck.Setting.parse(s.name) == s
    with pytest.raises(ValueError, match="not a setting name"):
        crosscheck.Setting.parse("fast")


def test_cpuid_describes_this_cpu():
    info = cpu.describe()
    assert info.source == "cpuid"
    assert info.best_isa in cpu.ISA_ORDER
    assert info.effective_isa("AVX2") == "AVX2"  # the contract needs an AVX2 machine
    assert info.l2 and info.l2 >= 256 * 1024


@pytest.mark.slow
def test_pinned_battery_natively_gives_the_committed_bits():
    record = crosscheck.run_battery([crosscheck.PINNED])
    expected = pinned_bits(committed()[0])
    assert pinned_bits(record) == expected


@pytest.mark.slow
def test_pinned_battery_on_emulated_cpus_gives_the_committed_bits():
    """The dense cases on all five models give the committed bits; the smallest CNN run, on one
    model of each group the old pins split apart, gives this machine's bits (whose full ``cnn``
    case gives the committed ones, above). One emulator per CPU runs all of its cases."""
    if crosscheck.qemu_path() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("qemu-x86_64 is missing under CI: install Debian's qemu-user")
        pytest.skip(
            "qemu-x86_64 not installed: emulated CPUs not checked (apt-get install qemu-user)"
        )
    expected = pinned_bits(committed()[0])
    dense = [c for c in crosscheck.BATTERY if c.model != "cnn"]
    small = crosscheck.CNN_SMALL
    native = pinned_bits(crosscheck.run_battery([crosscheck.PINNED], [small]))
    # One emulator per CPU, two at a time, the two with the CNN first.
    order = [*CNN_EMULATED, *(m for m in EMULATED if m not in CNN_EMULATED)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [
            pool.submit(
                crosscheck.emulate_many,
                [m],
                [crosscheck.PINNED],
                [*dense, small] if m in CNN_EMULATED else dense,
                jobs=1,
            )
            for m in order
        ]
        results = [run.result() for run in runs]
    recs = [rec for done, _ in results for rec in done]
    failed = {m: e for _, errors in results for m, e in errors.items()}
    assert not failed, failed
    with_cnn = [r for r in recs if r["emulated"] in CNN_EMULATED]
    assert {r["emulated"] for r in recs} == set(EMULATED)
    for rec in recs:
        got = pinned_bits(rec)
        assert {c: got[c] for c in got if c != small.name} == {
            c: expected[c] for c in got if c != small.name
        }, crosscheck.label(rec)
    for rec in with_cnn:
        assert pinned_bits(rec)[small.name] == native[small.name], crosscheck.label(rec)


@pytest.mark.slow
def test_the_smallest_cnn_run_runs_every_kernel_of_the_full_one():
    """What makes the emulated CNN check a check of the book's CNN: the same oneDNN kernels
    (primitive, implementation, propagation) as the battery's ``cnn`` case, here."""
    full = crosscheck.onednn_kernels(crosscheck.CASES["cnn"])
    small = crosscheck.onednn_kernels(crosscheck.CNN_SMALL)
    assert any(k.startswith("convolution,") for k in full), sorted(full)
    assert small == full, {"only full": sorted(full - small), "only small": sorted(small - full)}


@pytest.mark.slow
def test_cli_crosscheck_against_committed_records():
    result = run_python(
        "-m", "reprodl", "crosscheck", "--cases", "softmax", "--against", str(RECORDS)
    )
    assert result.returncode == 0, result.stderr
    assert "softmax  exact on all" in result.stdout
    assert f"pinned setting {crosscheck.PINNED.name}: exact on every CPU" in result.stdout


def test_cli_crosscheck_usage_errors():
    result = run_python("-m", "reprodl", "crosscheck", "--settings", "fast")
    assert result.returncode == 2 and "not a setting name" in result.stderr
    result = run_python("-m", "reprodl", "crosscheck", "--cases", "lstm")
    assert result.returncode == 2 and "unknown case 'lstm'" in result.stderr


def _under_qemu(model: str, code: str):
    if crosscheck.qemu_path() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("qemu-x86_64 is missing under CI: install Debian's qemu-user")
        pytest.skip("qemu-x86_64 not installed (apt-get install qemu-user)")
    import subprocess
    import sys

    return subprocess.run(
        [crosscheck.qemu_path(), "-cpu", model, sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cpuid_sees_the_emulated_cpu():
    code = "from reprodl import cpu; c = cpu.describe(); print(c.model_name, c.l2, c.best_isa)"
    result = _under_qemu("EPYC-Milan", code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == f"AMD EPYC-Milan Processor {512 * 1024} AVX2"


def test_setup_warns_on_a_cpu_without_avx2():
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "from reprodl import runtime; runtime._check_isa()"
    )
    result = _under_qemu("SandyBridge", code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "has no AVX2 (best: AVX)" in result.stderr
    assert "will not give the book's bits" in result.stderr
    quiet = _under_qemu("Haswell", code)
    assert "ReproducibilityWarning" not in quiet.stderr


def test_a_failing_emulator_gives_a_clear_error_and_loses_nothing():
    if crosscheck.qemu_path() is None:
        pytest.skip("qemu-x86_64 not installed (apt-get install qemu-user)")
    done, failed = crosscheck.emulate_many(
        ["No-Such-CPU"], [crosscheck.PINNED], [crosscheck.CASES["softmax"]]
    )
    assert done == [] and list(failed) == ["No-Such-CPU"]
    assert "opts1-AVX2-t1 under qemu -cpu No-Such-CPU failed" in str(failed["No-Such-CPU"])
