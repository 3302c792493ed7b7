"""The battery on Keras' JAX backend (``reprodl.book.jax_battery``, ``crosscheck --backend jax``).

Its settings and their variables, the child's environment (no variable of another backend leaks
in), the committed records (what they show is what ``reprodl.env.contract`` says of the JAX
pins; with and without AVX-512, YNNPACK's kernels part the CPUs), and, in the slow lane, the
pinned JAX setting giving, on this CPU, the committed bits of a CPU of its kind (with or without
AVX-512), also when the process may use one core only.
"""

from __future__ import annotations

import argparse
import json
import shutil

import pytest
from support import ROOT

from reprodl import _proc, crosscheck
from reprodl.book import jax_battery
from reprodl.book.jax_battery import JaxSetting
from reprodl.cli import crosscheck as cli_crosscheck
from reprodl.env import contract, cpu
from reprodl.errors import UsageError

RECORDS = ROOT / "src" / "reprodl" / "results" / "cross_cpu_jax"
#: The cases each record holds: the battery's and chapter 11's LSTM.
CASES = (*crosscheck.BATTERY, crosscheck.LSTM)


def committed() -> list[dict]:
    return crosscheck.load_dir(RECORDS)


def bits(record: dict, setting: str) -> dict[str, tuple[str, str, str]]:
    return {
        r["case"]: (r["loss"], r["fingerprint"], r["logits"])
        for r in record["results"]
        if r["setting"] == setting
    }


def native(kind: str = "AVX2") -> dict:
    """The native record of a CPU with YNNPACK's ``kind`` of kernels (the Zen 3 or the Xeon)."""
    (record,) = [
        r
        for r in committed()
        if not r["emulated"] and jax_battery.ynn_kind(r["cpu"]["flags"]) == kind
    ]
    return record


def here() -> dict:
    """The native record of a CPU of this one's kind: the bits the pins give on this CPU."""
    return jax_battery.reference_record(committed(), cpu.describe().flags)


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting", [jax_battery.PINNED, *jax_battery.ALTERNATIVES], ids=lambda s: s.name
)
def test_every_setting_parses_back_from_its_name(setting):
    assert JaxSetting.parse(setting.name) == setting
    assert crosscheck.parse_setting(setting.name) == setting


@pytest.mark.parametrize("name", ["jax-n0-AVX2", "jax-AVX2", "jax-n1-avx2", "jax-n1-AVX2-fast"])
def test_a_bad_setting_name_is_a_usage_error(name):
    with pytest.raises(UsageError, match="not a JAX setting name"):
        crosscheck.parse_setting(name)


def test_the_pinned_setting_sets_the_contracts_variables():
    assert jax_battery.PINNED.env() == contract.JAX_PINNED_ENV
    assert jax_battery.PINNED.name == "jax-n1-AVX2"
    assert jax_battery.STOCK.env() == {"KERAS_BACKEND": "jax"}
    fast = JaxSetting(1, "AVX2", fast_math=True).env()["XLA_FLAGS"]
    assert "--xla_cpu_enable_fast_math=true" in fast
    off = JaxSetting(1, "AVX2", ynn=False)
    assert off.name == "jax-n1-AVX2-noynn" and JaxSetting.parse("jax-n1-AVX2-noynn-fm").fast_math
    assert jax_battery.YNN_OFF in off.env()["XLA_FLAGS"].split()
    assert jax_battery.YNN_OFF not in contract.JAX_PINNED_ENV["XLA_FLAGS"]


def test_a_child_gets_no_variable_of_another_backend_or_setting(monkeypatch):
    for name, value in {"KERAS_BACKEND": "torch", "XLA_FLAGS": "--xla_cpu_max_isa=AVX"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NPROC", "8")
    stock = crosscheck._child_env(jax_battery.STOCK)
    assert stock["KERAS_BACKEND"] == "jax"
    assert "XLA_FLAGS" not in stock and "NPROC" not in stock and "PJRT_NPROC" not in stock
    tf = crosscheck._child_env(crosscheck.PINNED)
    assert "KERAS_BACKEND" not in tf and "XLA_FLAGS" not in tf
    assert (
        crosscheck._child_env(jax_battery.PINNED)["XLA_FLAGS"]
        == (contract.JAX_PINNED_ENV["XLA_FLAGS"])
    )


def test_one_record_holds_one_backend():
    with pytest.raises(UsageError, match="one backend"):
        crosscheck.run_battery([crosscheck.PINNED, jax_battery.PINNED], CASES[:1])


def _plan_args(**overrides) -> argparse.Namespace:
    values = dict(
        settings=None, all_settings=False, cases=None, caches=None, emulate="",
        no_native=False, against=None, backend="jax",
    )  # fmt: skip
    return argparse.Namespace(**{**values, **overrides})


def test_the_cli_plans_the_jax_settings():
    plan = cli_crosscheck.plan(_plan_args())
    assert plan.settings == [jax_battery.PINNED]
    plan = cli_crosscheck.plan(_plan_args(all_settings=True))
    assert plan.settings == [jax_battery.PINNED, *jax_battery.ALTERNATIVES]
    with pytest.raises(UsageError, match="another backend"):
        cli_crosscheck.plan(_plan_args(settings="opts1-AVX2-t1"))


# --- the committed records --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["AVX2", "AVX-512"])
def test_each_native_record_holds_every_setting_and_case(kind):
    """The Zen 3's record predates the ``-noynn`` setting; the Xeon's has every one."""
    record = native(kind)
    assert record["pinned"] == jax_battery.PINNED.name
    names = {c.name for c in CASES}
    for setting in jax_battery.ALTERNATIVES:
        if kind == "AVX2" and not setting.ynn:
            continue
        assert set(bits(record, setting.name)) >= names, setting.name
    small = {c.name for c in (*crosscheck.DENSE_SMALL, crosscheck.CNN_SMALL)}
    assert set(bits(record, jax_battery.PINNED.name)) == names | small


@pytest.mark.parametrize("kind", ["AVX2", "AVX-512"])
def test_the_records_show_what_the_contract_says_of_each_jax_pin(kind):
    """The thread pool's size, the ISA cap and fast math each change some model's bits."""
    record = native(kind)
    names = {c.name for c in CASES}
    pinned = {k: v for k, v in bits(record, jax_battery.PINNED.name).items() if k in names}

    def changed(setting: JaxSetting) -> set[str]:
        other = bits(record, setting.name)
        return {case for case in pinned if other[case][1:] != pinned[case][1:]}

    threads = {n: changed(JaxSetting(n, contract.JAX_ISA)) for n in (2, 4)}
    assert {"softmax", "cnn"} <= threads[2] | threads[4]
    assert bits(record, "jax-n2-AVX2")["cnn"] != bits(record, "jax-n4-AVX2")["cnn"]
    assert changed(JaxSetting(contract.JAX_THREADS, "AVX")) == names
    assert changed(JaxSetting(contract.JAX_THREADS, contract.JAX_ISA, fast_math=True)) == names


def test_the_emulated_records_give_the_native_pinned_bits():
    """QEMU's emulator has no AVX-512: every emulated CPU gets the AVX2 CPUs' bits."""
    expected = bits(native("AVX2"), jax_battery.PINNED.name)
    emulated = [r for r in committed() if r["emulated"]]
    assert emulated, "no emulated JAX record"
    for record in emulated:
        got = bits(record, jax_battery.PINNED.name)
        assert got, crosscheck.label(record)
        assert {case: expected[case] for case in got} == got, crosscheck.label(record)


def test_under_the_pins_the_avx512_cpu_parts_from_every_avx2_cpu():
    """YNNPACK's kernels follow the CPU's instruction set, not ``--xla_cpu_max_isa``: the Xeon's
    pinned bits differ from the AVX2 CPUs' (the real Zen 3, the emulated ones) in every case
    both ran, while those agree with each other."""
    xeon, zen3 = native("AVX-512"), native("AVX2")
    assert "avx512f" in xeon["cpu"]["flags"] and "avx512f" not in zen3["cpu"]["flags"]
    pinned = jax_battery.PINNED.name
    for record in committed():
        if jax_battery.ynn_kind(record["cpu"]["flags"]) == "AVX-512":
            continue
        theirs = bits(record, pinned)
        assert theirs and all(theirs[c] == bits(zen3, pinned)[c] for c in theirs)
        for case, got in theirs.items():
            assert got[1:] != bits(xeon, pinned)[case][1:], (crosscheck.label(record), case)


def test_with_ynnpack_off_the_bits_follow_the_caches_instead():
    """``-noynn`` runs the products as Eigen contractions on oneDNN's capped sgemm: no ISA
    dependence, but Eigen's blocks follow the cache sizes, so the CNN's smallest run gives
    other bits on the emulated CPUs with 512 KiB and with 4 MiB of L2, and on the Xeon."""
    noynn = JaxSetting(contract.JAX_THREADS, contract.JAX_ISA, ynn=False).name
    results = {bits(r, noynn)["cnn-small"][1:] for r in committed() if bits(r, noynn)}
    assert len(results) == 3
    assert (
        bits(native("AVX-512"), noynn)["softmax-small"]
        == bits(crosscheck.load(RECORDS / "qemu-haswell.json"), noynn)["softmax-small"]
    )


# --- live runs --------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_pinned_jax_battery_gives_the_committed_bits_here():
    record = crosscheck.run_battery([jax_battery.PINNED], CASES)
    expected = bits(here(), jax_battery.PINNED.name)
    assert bits(record, jax_battery.PINNED.name) == {c.name: expected[c.name] for c in CASES}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset is not installed")
def test_the_pinned_bits_do_not_depend_on_the_cores_the_process_may_use():
    """Under ``taskset -c 0`` stock JAX sizes XLA's pool to one thread; the pin keeps it."""
    cases = [crosscheck.CASES["softmax"], crosscheck.CASES["cnn"]]
    command = ["taskset", "-c", "0", *jax_battery.PINNED.command([c.to_dict() for c in cases])]
    proc = _proc.run(command, env=crosscheck._child_env(jax_battery.PINNED), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"case"')]
    got = {r["case"]: (r["loss"], r["fingerprint"], r["logits"]) for r in rows}
    expected = bits(here(), jax_battery.PINNED.name)
    assert got == {c.name: expected[c.name] for c in cases}
