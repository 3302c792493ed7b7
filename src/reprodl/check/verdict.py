"""The verdict of a check: each run compared with run 1 (its record step by step, its output
file line by line), the first difference, and its likely cause with advice.

Records are compared by :func:`reprodl.record.compare.compare`, imported when needed: nothing here
pins the process or loads NumPy at import time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reprodl.errors import RecordError

if TYPE_CHECKING:
    from reprodl.check.plan import Variation
    from reprodl.record.compare import Comparison
    from reprodl.record.runrecord import RunRecord

#: How many characters of a differing output line the report shows.
LINE_LIMIT = 200


@dataclass
class Run:
    """One finished run: what it changed and what it wrote (a record, an output file, or both)."""

    index: int
    total: int
    variation: Variation
    record: RunRecord | None
    output: bytes | None
    seconds: float

    @property
    def name(self) -> str:
        """How errors and progress lines call it: ``run 2/3 (threads: TF_...=2 ...)``."""
        return f"run {self.index}/{self.total} ({self.variation.label})"

    @property
    def short(self) -> str:
        """How the verdict calls it: ``run 2 (threads)``."""
        return f"run {self.index} ({self.variation.name})"


# --- comparing the runs ----------------------------------------------------------------------


@dataclass(frozen=True)
class OutputDiff:
    """The first line where two output files differ (``None``: that file has ended)."""

    name: str
    line: int
    a: bytes | None
    b: bytes | None

    @staticmethod
    def between(name: str, a: bytes, b: bytes) -> OutputDiff | None:
        """Where ``a`` and ``b`` first differ, line by line; None if they are the same bytes."""
        if a == b:
            return None
        la, lb = a.splitlines(keepends=True), b.splitlines(keepends=True)
        for i, (x, y) in enumerate(zip(la, lb, strict=False)):
            if x != y:
                return OutputDiff(name, i + 1, x, y)
        n = min(len(la), len(lb))
        return OutputDiff(
            name, n + 1, la[n] if n < len(la) else None, lb[n] if n < len(lb) else None
        )

    def lines(self, a_name: str, b_name: str) -> list[str]:
        """The report: the file, the line number, and that line in each run."""
        return [
            f"{self.name}, line {self.line}:",
            f"  {a_name}: {_shown(self.a)}",
            f"  {b_name}: {_shown(self.b)}",
        ]


def _shown(line: bytes | None) -> str:
    """A line of an output file for the report: decoded, cut at :data:`LINE_LIMIT` characters."""
    if line is None:
        return "(end of file)"
    text = line.decode("utf-8", errors="backslashreplace")
    ending = "" if text.endswith(("\n", "\r")) else " (no newline at the end)"
    text = text.rstrip("\r\n")
    if len(text) > LINE_LIMIT:
        text = text[:LINE_LIMIT] + "..."
    return repr(text)[1:-1] + ending


@dataclass
class Outcome:
    """One run compared with run 1: its records, its output file, or both."""

    run: Run
    comparison: Comparison | None = None
    incomparable: str | None = None  # why the records cannot be compared step by step
    output_diff: OutputDiff | None = None

    @property
    def identical(self) -> bool:
        """Everything compared agrees bit for bit."""
        records_same = self.comparison is None or self.comparison.identical
        return records_same and self.incomparable is None and self.output_diff is None

    def difference(self) -> str:
        """``identical to run 1`` or where this run first differs from it."""
        if self.incomparable is not None:
            return f"recorded another kind of training than run 1 ({self.incomparable})"
        c = self.comparison
        if c is not None and not c.identical:
            return f"differs from run 1 {_position(c)}"
        if self.output_diff is not None:
            return f"differs from run 1 at line {self.output_diff.line} of {self.output_diff.name}"
        return "identical to run 1"

    def report(self, first: Run) -> list[str]:
        """The detailed report of a difference (the records', then the output file's)."""
        out: list[str] = []
        c = self.comparison
        if c is not None and not c.identical:
            out += c.lines()
        if self.output_diff is not None:
            out += self.output_diff.lines(first.short, self.run.short)
        return out


def _position(c: Comparison) -> str:
    """Where a comparison first differs: a step and variable, or the loss of a step."""
    digest, loss = c.first_digest_step, c.first_loss_step
    if digest is not None and (loss is None or digest < loss):
        return f"at step {digest}, variable {c.first_variable}"
    text = f"at step {loss} (the loss)"
    if digest is not None:
        text += f"; the recorded state from step {digest} on, first variable {c.first_variable}"
    return text


def _compare(first: Run, other: Run, output: str | None) -> Outcome:
    """Compare ``other`` with ``first``: the records if they wrote them, the outputs likewise."""
    from reprodl.record.compare import compare

    outcome = Outcome(other)
    if first.record is not None and other.record is not None:
        try:
            outcome.comparison = compare(first.record, other.record)
        except RecordError as exc:
            outcome.incomparable = str(exc).partition("cannot be compared: ")[2] or str(exc)
    if output is not None and first.output is not None and other.output is not None:
        outcome.output_diff = OutputDiff.between(output, first.output, other.output)
    return outcome


# --- the verdict -----------------------------------------------------------------------------


@dataclass
class CheckResult:
    """The runs, each compared with run 1, and the perturbations that got no run (and why)."""

    command: list[str]
    runs: list[Run]
    outcomes: list[Outcome]
    notes: list[str] = field(default_factory=list)
    output: str | None = None
    hash_seed_unset: bool = False

    @property
    def identical(self) -> bool:
        """Every run agrees with run 1, bit for bit."""
        return all(o.identical for o in self.outcomes)

    @property
    def exit_status(self) -> int:
        """0 identical, 1 diverged (the CLI's convention)."""
        return 0 if self.identical else 1

    def _summary(self) -> str:
        plain = sum(r.variation.plain for r in self.runs)
        names = [f"{plain} plain"] + [r.variation.name for r in self.runs if not r.variation.plain]
        return f"{len(self.runs)} runs ({', '.join(names)})"

    def _headline(self, culprit: Outcome | None) -> str:
        if culprit is None:
            return f"identical: {self._summary()}, {_evidence(self.runs[0], self.output)}"
        return f"diverged: {culprit.run.short} {culprit.difference()}"

    def _run_lines(self) -> list[str]:
        first = self.runs[0]
        out = [f"run 1 ({first.variation.description})"]
        for o in self.outcomes:
            out.append(f"run {o.run.index} ({o.run.variation.description}): {o.difference()}")
        out += [f"not run: {note}" for note in self.notes]
        return out

    def lines(self) -> list[str]:
        """The verdict: a headline, one line per run, the likely cause and the first report."""
        differing = [o for o in self.outcomes if not o.identical]
        plain = [o for o in differing if o.run.variation.plain]
        perturbed = [o for o in differing if not o.run.variation.plain]
        culprit = (plain or perturbed or [None])[0]
        out = [self._headline(culprit), *self._run_lines()]
        if culprit is not None:
            out += _cause_lines(self, plain, perturbed)
            report = culprit.report(self.runs[0])
            out += ["", *report] if report else []
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _evidence(first: Run, output: str | None) -> str:
    """What the runs agree on (as run 1 shows it): steps and fingerprint, and the output file's
    size and hash."""
    from reprodl.record import fingerprint

    parts: list[str] = []
    if first.record is not None:
        short = fingerprint.short(first.record.final_digest)
        parts.append(f"{first.record.steps} steps, fingerprint {short}")
    if first.output is not None:
        digest = fingerprint.short(hashlib.sha256(first.output).hexdigest())
        parts.append(f"output {output} ({len(first.output)} bytes, sha256 {digest})")
    return ", ".join(parts)


def _cause_lines(result: CheckResult, plain: list[Outcome], perturbed: list[Outcome]) -> list[str]:
    """The likely cause: of the plain runs' difference, else of each perturbed run's."""
    if plain:
        out = [
            "cause: the plain runs differ, so the command is not deterministic by itself:",
            *(f"  - {reason}" for reason in _plain_reasons(plain[0])),
        ]
        if result.hash_seed_unset:
            out.append(
                "  - or the hash seed: PYTHONHASHSEED is unset, so each run had its own "
                "(set it, e.g. PYTHONHASHSEED=0, to rule that out)"
            )
        if any(not o.run.variation.plain for o in result.outcomes):
            out.append("the perturbed runs tell nothing until the plain runs agree")
        return out
    return [f"cause: {o.run.variation.advice()}" for o in perturbed]


def _plain_reasons(o: Outcome) -> list[str]:
    """Likely causes of a difference between two plain runs, from what differs where."""
    if o.incomparable is not None:
        return [
            f"the runs recorded different trainings ({o.incomparable}): something the command "
            "decides at run time (e.g. early stopping) varies between runs"
        ]
    c = o.comparison
    if c is None or c.identical:  # only the output files differ
        return [
            "a seed that is not fixed, an unseeded data order or a nondeterministic op; add "
            "reprodl.keras.RecordRun() to the callbacks of fit to see at which step and in "
            "which variable"
        ]
    kinds = {v["name"]: v["kind"] for v in c.a.variables}
    rng = [n for n in c.differing_variables if kinds.get(n) == "rng"]
    weights = [n for n in c.differing_variables if kinds.get(n) == "weight"]
    reasons = []
    at_start = c.first_digest_step == 0
    if at_start and weights:
        reasons.append(
            f"the initial weights differ (step 0, {weights[0]}): an initialiser or the global "
            "seed is not fixed (call keras.utils.set_random_seed(SEED) before building the "
            "model, or give each initialiser a seed)"
        )
    if rng:
        reasons.append(
            f"a random generator's state differs (step {c.first_digest_step}, {rng[0]}): it is "
            "seeded differently in each run (give the layer a seed, e.g. Dropout(rate, "
            "seed=...), or call keras.utils.set_random_seed(SEED))"
        )
    if not reasons:
        reasons.append(
            f"the runs start alike and drift apart {_position(c)}: an unseeded data order "
            "(shuffling without a seed), random draws without a seed (dropout, augmentation), or "
            "a nondeterministic op (call tf.config.experimental.enable_op_determinism())"
        )
    return reasons
