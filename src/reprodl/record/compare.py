"""Where two run records part: the first step, the first variable, and how large the gap grows.

:func:`compare` reads two run records (:mod:`reprodl.record.runrecord`: the package's loop or the
Keras callback :class:`reprodl.keras.RecordRun` wrote them) and reports the first step whose loss
differs (bit for bit), the last recorded step where every variable still agrees, the first one where
some do not, which variable comes first, and the loss difference at every step. Losses compare by
their bits: two NaNs with the same bits are equal, a NaN against a number is a difference whose size
is undefined (NaN), and the report says which side is NaN.

Part of the toolkit: importing it never pins and never changes the caller's process.
``python -m reprodl compare A B`` prints the same report.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from reprodl.record import fingerprint, runrecord
from reprodl.record.runrecord import RunRecord

#: How many variable names a report lists before it says "...".
LIST_LIMIT = 6


def _fmt(x: float) -> str:
    from reprodl.record.fingerprint import format_float

    return format_float(x)


def difference_text(x: float) -> str:
    """A difference at full float32 precision, in scientific notation (they are often tiny)."""
    if x == 0:
        return "0"
    return np.format_float_scientific(np.float32(x), unique=True, trim="-")


def _flatten(meta: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in meta.items():
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _meta_text(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return shlex.join(value)
    return "-" if value is None else str(value)


def _names_text(names: list[str]) -> str:
    shown = ", ".join(names[:LIST_LIMIT])
    return shown + (f", ... ({len(names) - LIST_LIMIT} more)" if len(names) > LIST_LIMIT else "")


@dataclass
class Comparison:
    """What :func:`compare` found. Steps count from 1; digest step 0 is the state before it."""

    a: RunRecord
    b: RunRecord
    meta_differences: list[tuple[str, Any, Any]]
    loss_differs: np.ndarray  # bool per step: the float32 bits differ
    loss_difference: np.ndarray  # |A - B| per step, float64: 0 where equal, NaN against a NaN
    first_loss_step: int | None
    digest_steps: list[int]
    first_digest_step: int | None  # first recorded step where some variable's digest differs
    last_agreeing_step: int | None  # last recorded step before it where all agree
    differing_variables: list[str]  # at first_digest_step, in the model's order

    @property
    def identical(self) -> bool:
        """Every loss and every recorded digest agree, bit for bit."""
        return self.first_loss_step is None and self.first_digest_step is None

    @property
    def first_step(self) -> int | None:
        """The earliest step with a visible difference (a loss, or a digest after the step)."""
        found = [s for s in (self.first_loss_step, self.first_digest_step) if s is not None]
        return min(found) if found else None

    @property
    def first_variable(self) -> str | None:
        """The first variable, in the model's order, that differs at :attr:`first_digest_step`."""
        return self.differing_variables[0] if self.differing_variables else None

    def loss_gap(self, step: int) -> str:
        """``|A-B|`` of the losses of ``step`` as report text; says which side is NaN if one is."""
        d = self.loss_difference[step - 1]
        if not np.isnan(d):
            return difference_text(d)
        nan_a, nan_b = np.isnan(self.a.losses[step - 1]), np.isnan(self.b.losses[step - 1])
        if nan_a and nan_b:
            return "undefined (NaN in both, with different bits)"
        return f"undefined (NaN in {'A' if nan_a else 'B'} only)"

    def lines(self, *, meta: bool = True) -> list[str]:
        """The report: plain lines, the same every time for the same two records.

        ``meta=False`` leaves out the records' metadata (commands, paths, versions): for a page
        that must print the same text on every machine.
        """
        a, b = self.a, self.b
        out = [
            f"A: {a.name}",
            f"B: {b.name}",
            f"model {a.meta['model']}, {a.steps} steps; state digests at steps "
            f"{runrecord.steps_text(self.digest_steps)}",
        ]
        out += self._note_lines()
        if meta:
            out += self._meta_lines()
        out += self._loss_lines()
        out += self._weight_lines()
        same = a.final_digest == b.final_digest
        out.append(
            "final fingerprint: identical"
            if same
            else f"final fingerprint: A {fingerprint.short(a.final_digest)}, "
            f"B {fingerprint.short(b.final_digest)}"
        )
        if self.identical:
            out.append("verdict: identical (every loss and every recorded digest agree)")
        else:
            out.append(f"verdict: the runs diverge; first difference at step {self.first_step}")
        return out

    def _note_lines(self) -> list[str]:
        """Lines only for records that need them: partial records, losses that are not steps'."""
        out = [
            f"{label} is partial: the run was interrupted ({rec.interrupted})"
            for label, rec in (("A", self.a), ("B", self.b))
            if rec.interrupted
        ]
        if self.a.meta["loss"] == "keras logs":
            out.append(
                "losses: what Keras logged after each step (its own train_step logs the epoch's "
                "running mean), not each step's own loss"
            )
        return out

    def _meta_lines(self) -> list[str]:
        """The report's lines on the records' metadata: identical, or each difference."""
        if not self.meta_differences:
            return ["meta: identical"]
        out = ["meta differences (A | B):"]
        for key, va, vb in self.meta_differences:
            out.append(f"  {key}: {_meta_text(va)} | {_meta_text(vb)}")
        return out

    def _loss_lines(self) -> list[str]:
        """The report's lines on the losses: the first difference, how many, the largest."""
        a, b = self.a, self.b
        if self.first_loss_step is None:
            return [f"losses: identical at all {a.steps} steps"]
        s = self.first_loss_step
        out = [
            f"losses: first differ at step {s}: A {_fmt(a.losses[s - 1])}, "
            f"B {_fmt(b.losses[s - 1])}, |A-B| {self.loss_gap(s)}"
        ]
        count = f"differ at {int(self.loss_differs.sum())} of {a.steps} steps"
        size = self._loss_size_text()
        out.append(f"losses: {count}{size}; at step {a.steps}: {self.loss_gap(a.steps)}")
        return out

    def _loss_size_text(self) -> str:
        """How large the loss differences are: the largest ``|A-B|``, and how many have a NaN."""
        d = self.loss_difference
        with_nan = self.loss_differs & np.isnan(d)
        sized = self.loss_differs & ~with_nan
        if not sized.any():
            return ", each with a NaN (no |A-B| to size them)"
        worst = int(np.argmax(np.where(sized, d, -1.0))) + 1
        size = f"; largest |A-B| {difference_text(d[worst - 1])} at step {worst}"
        if with_nan.any():
            size = f" ({int(with_nan.sum())} of them with a NaN){size}"
        return size

    def _weight_lines(self) -> list[str]:
        """The report's lines on the recorded digests: where the weights first differ, and which."""
        if self.first_digest_step is None:
            return ["weights: identical at every recorded step"]
        s = self.first_digest_step
        if s == 0:
            out = ["weights: differ already at step 0 (before training)"]
        else:
            out = [
                f"weights: identical at step {self.last_agreeing_step}, differ at step {s} "
                f"(first changed after one of steps {self.last_agreeing_step + 1}..{s})"
            ]
        out.append(f"  first differing variable: {self.first_variable}")
        out.append(
            f"  differing at step {s}: {len(self.differing_variables)} of {len(self.a.variables)} "
            f"variables ({_names_text(self.differing_variables)})"
        )
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def compare(
    a: RunRecord | str | os.PathLike[str], b: RunRecord | str | os.PathLike[str]
) -> Comparison:
    """Compare two run records (objects or files) step by step, bit for bit;
    :class:`RecordError` if they cannot be compared."""
    a = a if isinstance(a, RunRecord) else runrecord.load(a)
    b = b if isinstance(b, RunRecord) else runrecord.load(b)
    runrecord.check_comparable(a, b)
    fa, fb = _flatten(a.meta), _flatten(b.meta)
    keys = list(fa) + [k for k in fb if k not in fa]
    meta_diff = [(k, fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]
    la, lb = a.losses.astype(np.float32), b.losses.astype(np.float32)
    differs = la.view(np.uint32) != lb.view(np.uint32)
    with np.errstate(invalid="ignore"):  # inf - inf; those steps have equal bits
        diff = np.abs(la.astype(np.float64) - lb.astype(np.float64))
    diff[~differs] = 0.0  # equal bits (two identical NaNs too) are no difference
    first_loss = int(np.argmax(differs)) + 1 if differs.any() else None
    steps = sorted(a.digests)
    first_digest = last_agree = None
    differing: list[str] = []
    for step in steps:
        bad = [n for n in a.variable_names if a.digests[step][n] != b.digests[step][n]]
        if bad:
            first_digest, differing = step, bad
            break
        last_agree = step
    return Comparison(
        a=a,
        b=b,
        meta_differences=meta_diff,
        loss_differs=differs,
        loss_difference=diff,
        first_loss_step=first_loss,
        digest_steps=steps,
        first_digest_step=first_digest,
        last_agreeing_step=last_agree,
        differing_variables=differing,
    )
