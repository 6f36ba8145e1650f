"""SIGTERM and SIGINT that reach a run, even when the exception Dagster's handler raises is lost.

During a step Dagster's signal handler raises DagsterExecutionInterruptedError wherever the
main thread happens to be (`raise_interrupts_as` in dagster/_utils/interrupts.py). Python runs
signal handlers between any two bytecodes, garbage-collection callbacks included: a signal that
lands while a weakref callback or `__del__` runs (SQLAlchemy's `_collection_gced` does, often)
raises there, and Python prints "Exception ignored in ..." and drops the exception. The run
then went on as if never signalled, and loaded the partition after AutoSys had killed the job.

So the bridge also has every signal written, by Python's C-level handler, to a wakeup pipe
(`signal.set_wakeup_fd`), which nothing can swallow, and the stages look at it where they wait
or begin: a signal seen there raises the interruption again.
"""

from __future__ import annotations

import os
import signal

WATCHED = frozenset({signal.SIGTERM, signal.SIGINT})
_pipe: tuple[int, int] | None = None
_previous = -1  # the wakeup fd someone else had set (asyncio does), given back by `unwatch`
_pending = False


def watch() -> None:
    """From now on, record every signal that has a Python handler (main thread only)."""
    global _pipe, _previous, _pending
    if _pipe is None:
        read, write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        _previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        _pipe, _pending = (read, write), False


def unwatch() -> None:
    global _pipe
    if _pipe is not None:
        signal.set_wakeup_fd(_previous)
        for fd in _pipe:
            os.close(fd)
        _pipe = None


def signalled() -> bool:
    """Has SIGTERM or SIGINT arrived since `watch`? Stays true once it has."""
    global _pending
    if _pipe is not None and not _pending:
        try:
            while chunk := os.read(_pipe[0], 512):
                _pending = _pending or any(number in WATCHED for number in chunk)
        except BlockingIOError:  # drained
            pass
    return _pending


def check() -> None:
    """Raise the interruption Dagster's handler raised, if a signal came and it was lost."""
    if signalled():
        import dagster as dg

        raise dg.DagsterExecutionInterruptedError("interrupted by a signal")
