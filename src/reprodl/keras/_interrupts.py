"""What ends a ``fit`` early, and the partial record it leaves.

Keras 3.15 ``fit`` calls no callback when an exception or ``KeyboardInterrupt`` escapes it, so a
recording in a ``fit`` (:class:`Interrupts`) sees the end itself: SIGINT and SIGTERM through
handlers installed for the length of each ``fit`` (main thread only), which write the record and
then hand the signal on; the process's exit (``atexit``); the context-manager form and the next
``fit`` (the recorder calls :meth:`Interrupts.interrupt`). A signal that comes while the
recorder's own code runs (:meth:`Interrupts.guard`) waits until that code is done.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

_SIGNALS = ("SIGINT", "SIGTERM")
_REASON_LIMIT = 200

#: The fits in progress: what the exit handler ends if the process ends first.
_IN_FIT: set[Interrupts] = set()
_EXIT_HANDLER: list[bool] = []


def reason_of(exc: BaseException) -> str:
    """An exception as a short one-line reason for ``meta.interrupted``."""
    text = str(exc).strip().splitlines()
    found = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return found if len(found) <= _REASON_LIMIT else found[: _REASON_LIMIT - 3] + "..."


def _last_exception_reason() -> str | None:
    exc = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    return reason_of(exc) if isinstance(exc, BaseException) else None


def _at_exit() -> None:
    """Write the records of fits the process did not finish (an uncaught exception)."""
    why = _last_exception_reason() or "the process exited during fit"
    for fit in list(_IN_FIT):
        fit.interrupt(why)


class Interrupts:
    """One recorder's ``fit`` in progress and what may end it.

    ``write_partial(reason)`` writes the partial record and says whether it is whole (nothing was
    cut back, so recording could go on); ``resume()`` reopens the recording when a signal's own
    handler returned and the ``fit`` goes on.
    """

    def __init__(self, write_partial: Callable[[str], bool], resume: Callable[[], None]) -> None:
        self._write_partial = write_partial
        self._resume = resume
        self.in_fit = False
        self._busy = False
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def begin(self) -> None:
        """A fit starts: handle the signals and the process's exit until :meth:`end`."""
        self.in_fit = True
        _IN_FIT.add(self)
        if not _EXIT_HANDLER:
            atexit.register(_at_exit)
            _EXIT_HANDLER.append(True)
        self._install_signal_handlers()

    def end(self) -> None:
        """The fit is over (or its recording is): the previous signal handlers are back."""
        self.in_fit = False
        _IN_FIT.discard(self)
        self._restore_signal_handlers()

    def interrupt(self, why: str) -> bool:
        """End the fit in progress with its partial record; True if the record was not cut
        back. Outside a fit, nothing to do (False)."""
        if not self.in_fit:
            return False
        busy, self._busy = self._busy, True  # a second signal meanwhile waits for the write
        try:
            return self._write_partial(why)
        finally:
            self.end()
            self._busy = busy

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Marks the recorder's own code: a signal that comes meanwhile is handled at its end."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
            pending, self._pending = self._pending, None
            if pending is not None:
                self._on_signal(pending, None)

    def _install_signal_handlers(self) -> None:
        """Handle SIGINT and SIGTERM during fit (main thread only): write, then pass it on."""
        if threading.current_thread() is not threading.main_thread():
            return
        for name in _SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN or previous == self._on_signal:
                continue
            try:
                signal.signal(signum, self._on_signal)
            except (OSError, ValueError):
                continue
            self._previous[signum] = previous

    def _restore_signal_handlers(self) -> None:
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._busy:  # inside the recorder's own code: finish it first (see guard)
            self._pending = signum
            return
        previous = self._previous.get(signum, signal.getsignal(signum))
        if previous is None or previous == self._on_signal:  # none known: Python's own
            previous = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        whole = self.interrupt(signal.Signals(signum).name)
        if callable(previous):
            previous(signum, frame)  # Python's SIGINT handler raises KeyboardInterrupt
            if whole:  # the handler returned: the run goes on (or stops as fit does normally)
                self._resume()
                self.begin()
        elif previous is not signal.SIG_IGN:  # the default action: end the process as it would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
