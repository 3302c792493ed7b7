"""The machine and the process as they are: the CPU (:mod:`~reprodl.env.cpu`, from CPUID) and
the versions and settings a run depends on (:mod:`~reprodl.env.report`).

Part of the toolkit: importing it never pins and never changes the caller's process.
"""

from reprodl.env import cpu, report

__all__ = ["cpu", "report"]
