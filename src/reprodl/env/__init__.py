"""The machine and the process as they are: the CPU (:mod:`~reprodl.env.cpu`, from CPUID), the
versions and settings a run depends on and the environment report (:mod:`~reprodl.env.report`),
and the values the book's contract pins (:mod:`~reprodl.env.contract`).

Part of the toolkit: importing it never pins and never changes the caller's process.
"""

from reprodl.env import contract, cpu, report

__all__ = ["contract", "cpu", "report"]
