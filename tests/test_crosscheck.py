"""The cross-CPU contract: the pinned battery gives the committed bits on this CPU; the records.

A CPU that breaks the contract is a red test here, not a surprise in a chapter. The emulated CPUs
are checked in ``test_crosscheck_emulated.py`` (one test class per CPU model, so that the two
pytest workers share them out).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
from support import ROOT, run_python

from reprodl import cpu, crosscheck

RECORDS = ROOT / "src" / "reprodl" / "results" / "cross_cpu"


def committed() -> list[dict]:
    return crosscheck.load_dir(RECORDS)


def committed_bits(cases) -> dict[str, tuple[str, str, str]]:
    """The committed pinned bits of ``cases`` (names), from every record that has them (they
    must agree)."""
    found: dict[str, tuple[str, str, str]] = {}
    for record in committed():
        for case, bits in pinned_bits(record).items():
            if case in cases:
                assert found.setdefault(case, bits) == bits, (case, crosscheck.label(record))
    return found


def small_bits() -> dict[str, tuple[str, str, str]]:
    """The committed pinned bits of the smallest runs."""
    return committed_bits({c.name for c in (*crosscheck.DENSE_SMALL, crosscheck.CNN_SMALL)})


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
    rows = [
        a
        for a in crosscheck.agreement(recs)
        if a.setting == crosscheck.PINNED.name and a.case in crosscheck.CASES
    ]
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
    problem = r"the record: .*results\[0\]\.fingerprint"
    with pytest.raises(crosscheck.CrossCheckError, match=problem):
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


def test_the_pinned_verdict_leaves_out_the_cases_outside_the_contract():
    """The committed records: Keras' own Orthogonal (lstm-keras-init) differs between the real
    Zen 3 and the real Xeon, shown but not counted; a contract case that differs is counted."""
    recs = committed()
    rows = {(a.setting, a.case): a for a in crosscheck.agreement(recs)}
    assert not rows[crosscheck.PINNED.name, crosscheck.LSTM_KERAS_INIT.name].exact
    lines, exact = crosscheck.verdict(recs)
    assert exact and lines[-1] == f"pinned setting {crosscheck.PINNED.name}: exact on every CPU"
    assert "not counted in the verdict (outside the contract): lstm-keras-init" in lines
    broken = copy.deepcopy(recs)
    row = next(r for r in broken[0]["results"] if r["setting"] == crosscheck.PINNED.name)
    row["fingerprint"] = "0" * 64
    lines, exact = crosscheck.verdict(broken)
    assert not exact and lines[-1].endswith("DIFFERS between CPUs")


def test_setting_names_round_trip():
    for s in (crosscheck.PINNED, *crosscheck.ALTERNATIVES):
        assert crosscheck.Setting.parse(s.name) == s
    with pytest.raises(ValueError, match="not a setting name"):
        crosscheck.Setting.parse("fast")


def test_cache_geometries_parse_name_and_label_their_records():
    g = crosscheck.Geometry.parse("48/2048")
    assert g == crosscheck.Geometry(48, 2048) and crosscheck.Geometry.parse(g.name) == g
    assert g.describe() == "L1d 48 KiB, L2 2 MiB"
    assert g.env() == {"REPRODL_QEMU_L1D_KIB": "48", "REPRODL_QEMU_L2_KIB": "2048"}
    for bad in ("48", "48/", "0/512", "48/2048/1", "big/small"):
        with pytest.raises(crosscheck.UsageError, match="not a cache geometry"):
            crosscheck.Geometry.parse(bad)
    rec = copy.deepcopy(committed()[0])
    rec.update(emulated="Icelake-Server", geometry=g.to_dict())
    crosscheck.validate(rec)
    assert crosscheck.label(rec) == "Icelake-Server (emulated, L1d 48 KiB, L2 2 MiB)"
    assert crosscheck.slug(rec) == "qemu-icelake-server-l1d-48k-l2-2048k"
    rec["geometry"] = {"l1d_kib": 48}
    with pytest.raises(crosscheck.CrossCheckError, match="geometry"):
        crosscheck.validate(rec)
    sweep = crosscheck.SWEEP_GEOMETRIES
    assert {x.l1d_kib for x in sweep} == {32, 48}
    assert {x.l2_kib for x in sweep} == {256, 512, 1024, 1280, 2048, 4096}


def test_a_cache_geometry_needs_an_emulated_cpu():
    with pytest.raises(crosscheck.UsageError, match="needs an emulated CPU"):
        crosscheck.run_setting(crosscheck.PINNED, geometry=crosscheck.Geometry(48, 2048))


def test_cpuid_describes_this_cpu():
    info = cpu.describe()
    assert info.source == "cpuid"
    assert info.best_isa in cpu.ISA_ORDER
    assert info.effective_isa("AVX2") == "AVX2"  # the contract needs an AVX2 machine
    assert info.l2 and info.l2 >= 256 * 1024


@pytest.fixture(scope="module")
def native_run() -> tuple[dict[str, tuple[str, str, str]], dict[str, frozenset[str]]]:
    """The battery and the smallest runs, once, in one process on this CPU with
    ``ONEDNN_VERBOSE=1``: their pinned bits and the oneDNN kernels each case ran."""
    cases = [*crosscheck.BATTERY, *crosscheck.DENSE_SMALL, crosscheck.CNN_SMALL]
    results, kernels = crosscheck.onednn_kernels(cases)
    return pinned_bits({"results": results}), kernels


@pytest.mark.slow
def test_pinned_battery_natively_gives_the_committed_bits(native_run):
    bits, _ = native_run
    expected = pinned_bits(committed()[0])
    assert {c: bits[c] for c in crosscheck.CASES} == {c: expected[c] for c in crosscheck.CASES}


@pytest.mark.slow
def test_the_smallest_runs_give_the_committed_bits_here(native_run):
    """The emulated CPUs run the smallest runs and compare them with these committed bits."""
    bits, _ = native_run
    expected = small_bits()
    assert expected, "no committed record has the smallest runs"
    assert {c: bits[c] for c in expected} == expected


@pytest.mark.slow
def test_the_smallest_runs_run_every_kernel_of_the_full_ones(native_run):
    """What makes an emulated check of a smallest run a check of the book's trainings: the same
    oneDNN kernels (primitive, implementation, propagation) as its full battery case, here."""
    _, kernels = native_run
    assert any(k.startswith("convolution,") for k in kernels["cnn"]), sorted(kernels["cnn"])
    for full, small in crosscheck.SMALL_OF.items():
        assert kernels[full], full
        assert kernels[small] == kernels[full], {
            "case": full,
            "only full": sorted(kernels[full] - kernels[small]),
            "only small": sorted(kernels[small] - kernels[full]),
        }


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
    result = run_python("-m", "reprodl", "crosscheck", "--cases", "gru")
    assert result.returncode == 2 and "unknown case 'gru'" in result.stderr
    result = run_python("-m", "reprodl", "crosscheck", "--caches", "48/2048")
    assert result.returncode == 2 and "--caches needs --emulate" in result.stderr
    result = run_python("-m", "reprodl", "crosscheck", "--emulate", "Haswell", "--caches", "48")
    assert result.returncode == 2 and "not a cache geometry: '48'" in result.stderr


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
