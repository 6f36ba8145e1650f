"""SIGTERM and SIGINT that reach a run, even when the exception Dagster's handler raises is lost.

During a step Dagster's signal handler raises DagsterExecutionInterruptedError wherever the
main thread happens to be (`raise_interrupts_as` in dagster/_utils/interrupts.py). Python runs
signal handlers between any two bytecodes, garbage-collection callbacks included: a signal that
lands while a weakref callback or `__del__` runs (SQLAlchemy's `_collection_gced` does, often)
raises there, and Python prints "Exception ignored in ..." and drops the exception. The run
then went on as if never signalled, and loaded the partition after AutoSys had killed the job.

So the bridge also has every signal written, by Python's C-level handler, to a wakeup pipe
(`signal.set_wakeup_fd`), which nothing can swallow, and the stages look at it where they wait
or begin, and the load before it swaps the partition: a signal seen there raises the
interruption again. Standard library only (Dagster is imported to raise): every layer may ask.
"""

from __future__ import annotations

import os
import signal
import threading

WATCHED = frozenset({signal.SIGTERM, signal.SIGINT})
_pipe: tuple[int, int] | None = None
_previous = -1  # the wakeup fd someone else had set (asyncio does), given back by `unwatch`
_pending = False


def watch() -> None:
    """From now on, record every signal that has a Python handler. Only the main thread runs
    signal handlers (and may set the wakeup fd); elsewhere this does nothing."""
    global _pipe, _previous, _pending
    if _pipe is not None or threading.current_thread() is not threading.main_thread():
        return
    read, write = os.pipe()  # not inherited by children (PEP 446); os.pipe2 is Linux-only
    try:
        for fd in (read, write):
            os.set_blocking(fd, False)  # set_wakeup_fd wants a non-blocking fd; reads must not wait
        _previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    except BaseException:
        os.close(read)
        os.close(write)
        raise
    _pipe, _pending = (read, write), False


def unwatch() -> None:
    """Stop recording; a signal seen so far no longer counts (a later run starts clean)."""
    global _pipe, _pending
    if _pipe is not None:
        signal.set_wakeup_fd(_previous)
        for fd in _pipe:
            os.close(fd)
        _pipe, _pending = None, False


def signalled() -> bool:
    """Has SIGTERM or SIGINT arrived since `watch`? Stays true until `unwatch`; always false
    when nothing is watched."""
    global _pending
    if _pipe is None:
        return False
    if not _pending:
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
