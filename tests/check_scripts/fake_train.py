"""A stand-in for a training command, for tests/test_check.py: it writes a made-up run record to
$REPRODL_RECORD (as reprodl.keras.RecordRun would) and, with ``--output FILE``, a text file, whose
contents depend on what the MODEs say. No TensorFlow: each run takes a fraction of a second.

usage: fake_train.py MODE [MODE ...] [--output FILE] [--no-record]

  steady         nothing varies: the same record every time
  env=VAR        the weights from step 8 on depend on $VAR (as on a thread count or an ISA)
  hash           the losses depend on the hash seed (the hash of a str)
  urandom-init   the initial weights come from os.urandom (an unseeded initialiser)
  urandom-rng    a random generator's state comes from os.urandom (an unseeded Dropout)
  urandom-order  the weights from step 5 on depend on os.urandom (an unseeded shuffle)
  early-stop=VAR 10 steps instead of 12 when $VAR is 2 (a stopping rule that depends on it)
  pin=VAR=VALUE  set VAR=VALUE in os.environ first, as a script that pins a setting itself does
  fail           write a traceback-like stderr and exit 1
  segfault       kill itself with SIGSEGV
  fail-if=VAR=V  fail when $VAR is V
  hang           start a child process, write both pids to $FAKE_PIDS, then sleep
  stubborn       hang, ignoring SIGTERM (so only SIGKILL stops it)
  corrupt        write a truncated record
  interrupted    write a record that says the training was interrupted
"""

import os
import signal
import subprocess
import sys
import time


def hang(stubborn: bool) -> None:
    """Sleep far past any test's timeout, with a child process in the same process group."""
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["FAKE_PIDS"], "w") as fh:
        fh.write(f"{os.getpid()} {child.pid}\n")
    print("training...", file=sys.stderr, flush=True)
    time.sleep(600)


def entropy() -> int:
    """A number from os.urandom, 1 to 2**22: exact in float32 arrays and added to the losses, so
    two runs differ unless they draw the same number (a chance of 2**-22)."""
    return (int.from_bytes(os.urandom(3), "big") >> 2) + 1


def main(argv: list[str]) -> int:
    output = None
    if "--output" in argv:
        i = argv.index("--output")
        output = argv[i + 1]
        del argv[i : i + 2]
    record = "--no-record" not in argv
    modes = [a for a in argv if a != "--no-record"]
    for mode in modes:
        if mode.startswith("pin="):
            name, _, value = mode[4:].partition("=")
            os.environ[name] = value
    if "segfault" in modes:
        os.kill(os.getpid(), signal.SIGSEGV)
    if "hang" in modes or "stubborn" in modes:
        hang("stubborn" in modes)
    failing = [m[8:].partition("=") for m in modes if m.startswith("fail-if=")]
    if "fail" in modes or any(os.environ.get(name) == value for name, _, value in failing):
        print("Traceback (most recent call last):", file=sys.stderr)
        print("ValueError: the data folder is empty", file=sys.stderr)
        return 1

    import numpy as np

    from reprodl import fingerprint, records

    stop = [m[11:] for m in modes if m.startswith("early-stop=")]
    steps = 10 if any(os.environ.get(name) == "2" for name in stop) else 12
    every = int(os.environ.get("REPRODL_RECORD_EVERY", "4"))
    # offsets[name] = (first step, value): that variable's state is moved by value from there on
    offsets = {}
    losses = np.linspace(2.3, 0.3, steps, dtype=np.float32)
    for mode in modes:
        if mode.startswith("env="):
            value = os.environ.get(mode[4:], "")
            offsets["net/dense/bias"] = (8, int.from_bytes(value.encode()[:8] or b"\0", "big"))
        elif mode == "hash":
            losses = losses + np.float32((hash("reprodl") & 0xFF) / 256)
        elif mode == "urandom-init":
            offsets["net/dense/kernel"] = (0, entropy())
        elif mode == "urandom-rng":
            offsets["net/dropout/seed_generator_state"] = (0, entropy())
        elif mode == "urandom-order":
            drawn = entropy()
            offsets["net/logits/kernel"] = (5, drawn)
            losses = losses.copy()
            losses[5:] += np.float32(drawn)
    variables = [
        ("net/dense/kernel", [3, 2], "float32", "weight"),
        ("net/dense/bias", [2], "float32", "weight"),
        ("net/dropout/seed_generator_state", [2], "int64", "rng"),
        ("net/logits/kernel", [2, 2], "float32", "weight"),
    ]
    digests = {}
    for step in sorted({*range(0, steps + 1, every), steps}):
        digests[step] = {}
        for name, shape, dtype, _ in variables:
            first, moved = offsets.get(name, (steps + 1, 0))
            value = step + (moved if step >= first else 0)
            digests[step][name] = fingerprint.array_digest(np.full(shape, value, dtype=dtype))
    weights = [name for name, *_, kind in variables if kind == "weight"]
    meta = {
        "model": "net",
        "seed": None,
        "batch_size": None,
        "steps": steps,
        "run": None,
        "command": sys.argv,
        "settings": {},
        "versions": {},
        "digest_every": every,
        "checkpoints": None,
        "source": "keras",
        "loss": "step",
        "interrupted": "SIGTERM" if "interrupted" in modes else None,
    }
    rec = records.RunRecord(
        meta=meta,
        variables=[{"name": n, "shape": s, "dtype": d, "kind": k} for n, s, d, k in variables],
        losses=losses,
        digests=digests,
        final_digest=fingerprint.combine(digests[steps][n] for n in weights),
    )
    path = os.environ["REPRODL_RECORD"]
    if record:
        records.save(rec, path)
    if "corrupt" in modes:
        with open(path, "r+") as fh:
            fh.truncate(300)
    if output is not None:
        with open(output, "w") as fh:
            fh.write("fake training\n")
            fh.write(f"final loss {float(losses[-1])!r}\n")
            fh.write(f"fingerprint {rec.final_digest}\n")
            for mode in modes:
                if mode.startswith("env="):
                    fh.write(f"env {mode[4:]}={os.environ.get(mode[4:])}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
