"""A signal whose exception Python drops (it landed in a garbage-collection callback) still
stops the stage: the wakeup pipe saw it."""

from __future__ import annotations

import os
import signal
import weakref

import dagster as dg
import pytest

from er_assets import interrupts
from er_assets.pipeline.matching_job import Patience

# The dropped exception is the point: pytest reports it as unraisable.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class Interrupted(BaseException):
    pass


@pytest.fixture
def raising_handler():
    """A handler that raises, as Dagster's does during a step; the pipe watched meanwhile."""

    def handler(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    interrupts.watch()
    try:
        yield
    finally:
        interrupts.unwatch()
        signal.signal(signal.SIGTERM, previous)


class Resource:
    pass


_REFS: list = []


def signal_inside_a_weakref_callback() -> None:
    """SIGTERM arrives while a weakref callback runs: the handler's exception is raised in the
    callback, and Python prints it as unraisable and goes on."""

    def callback(ref):
        os.kill(os.getpid(), signal.SIGTERM)
        sum(range(1000))  # bytecodes: the handler runs here, inside the callback

    resource = Resource()
    _REFS.append(weakref.ref(resource, callback))  # the weakref must outlive the resource
    del resource


def test_a_signal_lost_in_a_gc_callback_is_still_seen(raising_handler):
    assert not interrupts.signalled()
    signal_inside_a_weakref_callback()  # no exception reaches this frame: it was dropped
    assert interrupts.signalled()
    with pytest.raises(dg.DagsterExecutionInterruptedError):
        interrupts.check()


def test_a_stage_waiting_on_its_job_stops_at_its_next_wait(raising_handler):
    slept = []
    patience = Patience(600, 1, print, sleep=slept.append)
    patience.sleep(1)
    signal_inside_a_weakref_callback()
    with pytest.raises(dg.DagsterExecutionInterruptedError):
        patience.sleep(1)
    assert slept == [1]


def test_without_a_signal_nothing_is_raised_and_unwatch_restores_the_previous_fd():
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    interrupts.watch()
    interrupts.check()
    assert not interrupts.signalled()
    interrupts.unwatch()
    assert signal.set_wakeup_fd(before) == before


def test_a_signal_counts_only_for_the_run_that_watched_it():
    """The bridge's in-process callers (the demo, the tests) run stage after stage: a signal
    seen by one run must not cancel the next."""

    def handler(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        interrupts.watch()
        signal_inside_a_weakref_callback()
        assert interrupts.signalled()
        interrupts.unwatch()
        interrupts.check()  # nothing watched: nothing to raise
        interrupts.watch()
        assert not interrupts.signalled()
    finally:
        interrupts.unwatch()
        signal.signal(signal.SIGTERM, previous)
