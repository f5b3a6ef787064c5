"""Ctrl-C and SIGTERM stop a campaign cleanly: the run is marked KILLED, the state saved so far stays resumable.

:func:`install` replaces Python's default SIGINT/SIGTERM behaviour in the command's main thread. Outside a search
loop a signal raises :class:`CampaignInterrupted` at once (nothing has been written yet, or only what a resume
needs). Inside :func:`deferred` (the ask/tell loop) it only sets a flag; the loop finishes the batch in hand (the
model takes milliseconds), saves it, and :func:`check` raises between batches, so no half-logged batch is left.
The CLI exits 130 (SIGINT) or 143 (SIGTERM) and prints the resume command.
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class CampaignInterrupted(BaseException):
    """Raised to stop a campaign on a signal (a BaseException, like KeyboardInterrupt: no ``except Exception``
    in between swallows it)."""

    # a what-if study's run id, scenarios finished, scenarios in all, and its files' folder once written
    what_if: tuple[str, int, int, object] | None = None

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signum, 1)


_deferring = [False]  # one flag for the process: the handler runs in the main thread, the loop may not
_finished = [False]  # the campaign is complete: a signal during the clean-up that follows has nothing to stop
_pending: list[int] = []
_previous: dict[int, object] = {}  # the handlers install() replaced, for restore()
_previous_unraisable: list = []  # the sys.unraisablehook install() wrapped, for restore()


def _quiet_unraisable(report) -> None:
    """``sys.unraisablehook`` while installed: a :class:`CampaignInterrupted` a finaliser swallowed is noted already
    (:func:`check` raises it), so it is not printed as "Exception ignored in ..." with a traceback; anything else
    goes to the hook the process had."""
    if isinstance(report.exc_value, CampaignInterrupted):
        return
    (_previous_unraisable[0] if _previous_unraisable else sys.__unraisablehook__)(report)


def _handler(signum, frame) -> None:
    # Noted first, then raised: Python swallows an exception raised while a finaliser runs (seen when a signal
    # landed in the GC of an asyncio transport during the PyBaMM check, or in SQLAlchemy's registry clean-up), and
    # the next check() between stages raises the noted signal instead (_quiet_unraisable keeps it off stderr).
    if _finished[0]:  # Ctrl-C as the temporary server stops had printed a traceback from an atexit callback
        return
    _pending.append(signum)
    if not _deferring[0]:
        raise CampaignInterrupted(signum)


def install() -> None:
    """Route SIGINT and SIGTERM to :class:`CampaignInterrupted` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _pending.clear()
    _finished[0] = False
    if sys.unraisablehook is not _quiet_unraisable:
        _previous_unraisable[:] = [sys.unraisablehook]
        sys.unraisablehook = _quiet_unraisable
    for signum in EXIT_CODES:
        previous = signal.signal(signum, _handler)
        if previous is not _handler:
            _previous[signum] = previous


def restore() -> None:
    """Put back the handlers :func:`install` replaced (main thread only): a caller in this process (a notebook, a
    test session) that ran a campaign can be interrupted again as before. The ``snhc`` command itself keeps them to
    its exit, so a Ctrl-C in its clean-up is ignored (:func:`finished`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, handler in _previous.items():
        signal.signal(signum, handler)
    _previous.clear()
    if _previous_unraisable and sys.unraisablehook is _quiet_unraisable:
        sys.unraisablehook = _previous_unraisable.pop()
    _pending.clear()
    _finished[0] = False


def finished() -> None:
    """The campaign is complete (its run recorded): signals from now on, during the clean-up, are ignored, so the
    command ends as the finished campaign it is, without a traceback."""
    _finished[0] = True


@contextmanager
def deferred() -> Iterator[None]:
    """Within this block a signal is noted, not raised; :func:`check` raises it at a safe point."""
    previous = _deferring[0]
    _deferring[0] = True
    try:
        yield
    finally:
        _deferring[0] = previous
    check()


def check() -> None:
    """Raise :class:`CampaignInterrupted` if a signal arrived while deferred (or its raise was swallowed)."""
    if _pending:
        signum = _pending[0]
        _pending.clear()
        raise CampaignInterrupted(signum)
