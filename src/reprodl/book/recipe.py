"""The plain-Keras recipe of chapter 11 and the ways to break it, one at a time.

The recipe is ``examples/train_keras.py`` (shipped in the package, so a chapter opened outside the
repository finds it): reproducible Keras training on MNIST without any ``reprodl`` import. A
*variant* is the recipe with a few lines changed; :func:`source` applies variants in order and
:func:`diff` shows exactly what they change, so the book never hides an edit. Each edit must match
the recipe exactly once, or :class:`~reprodl.errors.UsageError` says which one did not.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reprodl.errors import UsageError

if TYPE_CHECKING:
    from reprodl.check import CheckResult
    from reprodl.record.runrecord import RunRecord

__all__ = [
    "SCRIPT",
    "VARIANTS",
    "Variant",
    "check",
    "command",
    "diff",
    "names",
    "record",
    "source",
    "write",
]

#: The recipe's file name (in ``reprodl/examples/``; ``examples/`` of the repository links to it).
SCRIPT = "train_keras.py"

_FIT = (
    "    history = model.fit(batches, epochs=args.epochs, shuffle=False, verbose=0)"
    "  # shuffled above"
)
_SEED = "    keras.utils.set_random_seed(SEED)  # Python's random, NumPy, TensorFlow, Keras"
_BATCHES = (
    "    batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=4).batch(100)\n"
)
_EPOCH_LOOP = (
    "    for _ in range(args.epochs):  # one fit per epoch, as many training scripts do\n"
    "{reseed}"
    "        history = model.fit(x, y, batch_size=100, shuffle=True, verbose=0)  # shuffled by fit"
)
_OPTS = 'os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"  # TensorFlow\'s oneDNN kernels, chosen as below'
_EIGEN = 'os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # TensorFlow\'s Eigen kernels instead'
_THREADS = (
    'os.environ["TF_NUM_INTRAOP_THREADS"] = "1"'
    "  # how an op splits its sums changes their rounding\n"
)


@dataclass(frozen=True)
class Variant:
    """A change to the recipe: what it does in a line, and its edits ``(old, new)``, in order."""

    name: str
    summary: str
    edits: tuple[tuple[str, str], ...]


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "recorded",
            "records the run with reprodl.keras.RecordRun (to $REPRODL_RECORD, when set)",
            (
                (
                    "import tensorflow as tf  # noqa: E402\n",
                    "import tensorflow as tf  # noqa: E402\n"
                    "from reprodl.keras import RecordRun  # noqa: E402  (changes nothing else)\n",
                ),
                (
                    "SEED = 0\n",
                    "SEED = 0\nRECORD = RecordRun()  # one recorder for the whole run\n",
                ),
                ("verbose=0)  # shuffled", "verbose=0, callbacks=[RECORD])  # shuffled"),
            ),
        ),
        Variant(
            "unseeded-dropout",
            "the Dropout layer without a seed of its own",
            (("keras.layers.Dropout(0.2, seed=2),", "keras.layers.Dropout(0.2),"),),
        ),
        Variant(
            "one-more-draw",
            "one unrelated draw from Python's random before the model is built",
            (
                ("import argparse\n", "import argparse\nimport random\n"),
                (_SEED, _SEED + "\n    random.random()  # e.g. a library that shuffles a list"),
            ),
        ),
        Variant(
            "reseed-each-epoch",
            "one fit(shuffle=True) per epoch, the global seed set again before each",
            (
                (_BATCHES, ""),
                (
                    _FIT,
                    _EPOCH_LOOP.format(
                        reseed="        keras.utils.set_random_seed(SEED)  # 'to be safe'\n"
                    ),
                ),
            ),
        ),
        Variant(
            "shuffle-each-epoch",
            "one fit(shuffle=True) per epoch, the global seed set once",
            ((_BATCHES, ""), (_FIT, _EPOCH_LOOP.format(reseed=""))),
        ),
        Variant(
            "eigen-threads",
            "TensorFlow's Eigen kernels (oneDNN's ops off) and the thread count left to the caller",
            ((_OPTS, _EIGEN), (_THREADS, "")),
        ),
        Variant(
            "broken",
            "the exercise: no global seed, unseeded initialisers, Eigen kernels, threads unpinned",
            (
                (_SEED + "\n", ""),
                (", kernel_initializer=keras.initializers.GlorotUniform(1)", ""),
                (", kernel_initializer=keras.initializers.GlorotUniform(3)", ""),
                (_OPTS, _EIGEN),
                (_THREADS, ""),
            ),
        ),
    )
}


def _recipe() -> str:
    return resources.files("reprodl").joinpath("examples", SCRIPT).read_text(encoding="utf-8")


def source(*variants: str) -> str:
    """The recipe's text with ``variants`` (names in :data:`VARIANTS`) applied in order."""
    text = _recipe()
    for name in variants:
        if name not in VARIANTS:
            raise UsageError(f"no recipe variant {name!r}; there are {', '.join(VARIANTS)}")
        for old, new in VARIANTS[name].edits:
            if text.count(old) != 1:
                raise UsageError(f"variant {name!r}: {old.strip()!r} is not in the script once")
            text = text.replace(old, new)
    return text


def diff(*variants: str) -> str:
    """The lines ``variants`` change in the recipe, as a unified diff without context."""
    lines = difflib.unified_diff(
        _recipe().splitlines(), source(*variants).splitlines(), lineterm="", n=0
    )
    return "\n".join(line for line in lines if not line.startswith(("---", "+++", "@@")))


def write(folder: str | os.PathLike[str], *variants: str, name: str | None = None) -> Path:
    """Write the recipe with ``variants`` applied into ``folder``; returns the script's path
    (``name``, else the variants' names joined by ``+``, else ``train_keras.py``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or ("+".join(variants) + ".py" if variants else SCRIPT))
    path.write_text(source(*variants), encoding="utf-8")
    return path


def command(
    script: str | os.PathLike[str], data_dir: str | os.PathLike[str], *args: str
) -> list[str]:
    """The command line that runs ``script`` on the MNIST files in ``data_dir``."""
    return [sys.executable, str(script), "--data", str(data_dir), *args]


def names(variants: Sequence[str]) -> str:
    """How a report names a combination of variants: ``recipe``, or ``recipe + a + b``."""
    return " + ".join(["recipe", *variants])


def check(
    folder: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *variants: str,
    args: Sequence[str] = (),
    **options: Any,
) -> CheckResult:
    """Write the recipe with ``variants`` into ``folder`` and check it with
    :func:`reprodl.check.run` (``options``: ``runs``, ``vary``, ``output``, ...; with ``output``,
    the script is told to write that file). Nothing is printed while it runs."""
    from reprodl import check as checker

    script = write(folder, *variants)
    extra = ["--output", options["output"]] if options.get("output") else []
    return checker.run(command(script, data_dir, *args, *extra), **options)


def record(
    folder: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *variants: str,
    args: Sequence[str] = (),
) -> RunRecord:
    """Run the recipe with ``variants`` and the recorder once, in a fresh process; its record.

    The script and its record are kept in ``folder``: ``NAME.py`` and ``NAME/run-1.json``.
    """
    from reprodl import check as checker

    names_ = (*variants, "recorded") if "recorded" not in variants else variants
    script = write(folder, *names_)
    rec = checker.record_once(command(script, data_dir, *args), script.with_suffix(""))
    rec.source = names(variants)  # how reports name it (not a temporary path)
    return rec
