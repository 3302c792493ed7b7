"""The contract across cache sizes: committed records of the cache-geometry emulator.

``tools/cache_qemu/build.sh`` builds QEMU's user-mode emulator with a patch that makes every
CPUID cache leaf report the L1d and L2 sizes given in ``REPRODL_QEMU_L1D_KIB`` and
``REPRODL_QEMU_L2_KIB``. ``python -m reprodl crosscheck --emulate Icelake-Server --caches sweep
--cases softmax-small,mlp-small,mlp-fit-small,cnn-small,lstm --out
src/reprodl/results/cross_cpu_caches`` ran the smallest runs of the battery (the book's kernels,
``test_crosscheck.py``) and chapter 11's LSTM at every geometry of ``crosscheck.SWEEP_GEOMETRIES``;
those records must give the committed native bits, each at the geometry it states (the CPUID the
child read). When the emulator is built here, one geometry, the one that changed the LSTM's bits
before ``reprodl.initializers.Orthogonal`` (48 KiB L1d, 2 MiB L2, a Sapphire Rapids core's), is
run again; when it is not, that test is skipped with one line. The same LSTM with Keras' own
``Orthogonal`` (``lstm-keras-init``, at two geometries) shows the dependence that was removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ROOT
from test_crosscheck import committed, committed_bits, pinned_bits

from reprodl import crosscheck

CACHE_RECORDS = ROOT / "src" / "reprodl" / "results" / "cross_cpu_caches"
SWEPT = ("softmax-small", "mlp-small", "mlp-fit-small", "cnn-small", "lstm")
RERUN = crosscheck.Geometry(48, 2048)


def native_bits() -> dict[str, tuple[str, str, str]]:
    """The committed bits of the swept cases on real CPUs."""
    return committed_bits(set(SWEPT))


def cache_records() -> list[dict]:
    return crosscheck.load_dir(CACHE_RECORDS)


def test_the_committed_sweep_covers_every_geometry_at_the_cpuid_it_states():
    records = cache_records()
    seen = set()
    for record in records:
        g = crosscheck.Geometry(**record["geometry"])
        assert record["cpu"]["l1d"] == g.l1d_kib * 1024, crosscheck.label(record)
        assert record["cpu"]["l2"] == g.l2_kib * 1024, crosscheck.label(record)
        seen.add((record["emulated"], g))
    assert {g for _, g in seen} >= set(crosscheck.SWEEP_GEOMETRIES)


def test_every_geometry_gives_the_committed_native_bits():
    expected = native_bits()
    assert set(expected) == set(SWEPT)
    for record in cache_records():
        got = pinned_bits(record)
        assert set(got) >= set(SWEPT), crosscheck.label(record)
        assert {case: got[case] for case in SWEPT} == expected, crosscheck.label(record)


def test_keras_orthogonal_is_what_depended_on_the_l1_size():
    """The evidence for ``reprodl.initializers``: the LSTM built with Keras' own ``Orthogonal``
    gives other bits on the real CPU with 48 KiB of L1d (the Xeon) than on the real one with
    32 KiB (the Zen 3), and the emulator gives each real CPU's bits at its L1d size."""
    case = crosscheck.LSTM_KERAS_INIT.name

    def by_l1d(records: list[dict], kib) -> dict[int, set]:
        found: dict[int, set] = {}
        for record in records:
            if case in pinned_bits(record):
                found.setdefault(kib(record), set()).add(pinned_bits(record)[case])
        return found

    real = by_l1d([r for r in committed() if not r["emulated"]], lambda r: r["cpu"]["l1d"] // 1024)
    assert set(real) == {32, 48} and all(len(bits) == 1 for bits in real.values())
    assert real[32] != real[48]
    assert by_l1d(cache_records(), lambda r: r["geometry"]["l1d_kib"]) == real


@pytest.mark.slow
def test_the_emulator_built_here_gives_them_again(tmp_path: Path):
    qemu = crosscheck.cache_qemu_path()
    if qemu is None:
        pytest.skip("cache-geometry emulator not built: bash tools/cache_qemu/build.sh")
    cases = [crosscheck.LSTM]  # the case a geometry was seen to change (the slowest one, too)
    record = crosscheck.run_battery(
        [crosscheck.PINNED], cases, emulate="Icelake-Server", geometry=RERUN
    )
    assert record["cpu"]["l1d"] == RERUN.l1d_kib * 1024
    expected = native_bits()
    assert pinned_bits(record) == {c.name: expected[c.name] for c in cases}
