"""The pinned battery's smallest runs on emulated CPUs give the committed bits (QEMU user mode).

One class per CPU model: under ``make test`` (``--dist loadscope``) each class is a unit of work
of its own, so the two pytest workers share the emulators out instead of one worker running them
all, and no worker runs two emulators at once. Each class starts one emulator that runs the
smallest dense runs (``crosscheck.DENSE_SMALL``) and, on one model of each group the old pins
split apart (512 KiB and 4 MiB of L2), the smallest CNN run (``crosscheck.CNN_SMALL``). Each
smallest run has its full battery case's batch size, logits batch and oneDNN kernels, and this
CPU gives the committed bits for both (``test_crosscheck.py`` checks the two); an emulated CPU
must give the same committed bits.

Needs ``qemu-x86_64`` (``make test`` installs Debian's ``qemu-user`` when it can); without it
each class is skipped with one line, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os

import pytest
from test_crosscheck import pinned_bits, small_bits

from reprodl import crosscheck

SMALL_DENSE = crosscheck.DENSE_SMALL
SMALL_CNN = crosscheck.CNN_SMALL


def _require_qemu() -> None:
    if crosscheck.qemu_path() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("qemu-x86_64 is missing under CI: install Debian's qemu-user")
        pytest.skip(
            "qemu-x86_64 not installed: emulated CPUs not checked (apt-get install qemu-user)"
        )


class _Emulated:
    """The smallest dense runs (and, with ``with_cnn``, the smallest CNN run) on ``model``."""

    model: str
    with_cnn = False

    @pytest.mark.slow
    def test_pinned_battery_gives_the_committed_bits(self):
        _require_qemu()
        cases = [*SMALL_DENSE, SMALL_CNN] if self.with_cnn else list(SMALL_DENSE)
        record = crosscheck.run_battery([crosscheck.PINNED], cases, emulate=self.model)
        assert record["emulated"] == self.model
        got = pinned_bits(record)
        expected = small_bits()
        assert got == {c.name: expected[c.name] for c in cases}, crosscheck.label(record)


class TestEPYCMilan(_Emulated):
    model, with_cnn = "EPYC-Milan", True


class TestHaswell(_Emulated):
    model, with_cnn = "Haswell", True


class TestSkylakeServer(_Emulated):
    model = "Skylake-Server"


class TestIcelakeServer(_Emulated):
    model = "Icelake-Server"


class TestEPYCRome(_Emulated):
    model = "EPYC-Rome"


def test_every_default_emulated_model_has_its_class():
    classes = {cls.model for cls in _Emulated.__subclasses__()}
    assert classes == set(crosscheck.DEFAULT_EMULATED)
