"""Process liveness, as the emulator, the bridge and the local warehouse ask it: a pid reused
by another program, a zombie and an ended process must not count as the process recorded."""

import os
import subprocess
import sys
import time
import uuid

import pytest

from er_assets import processes


def _marked_child(marker: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])


def _wait_until(predicate, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_a_live_process_counts_only_with_its_own_command_line():
    marker = f"marker-{uuid.uuid4().hex}"
    child = _marked_child(marker)
    try:
        ours = lambda words: marker.encode() in words  # noqa: E731
        assert processes.pid_taken(child.pid)
        _wait_until(lambda: processes.running(child.pid, ours))  # once the child has exec'd
        assert processes.running(None, ours)  # found among all processes
        # The same pid running something else (a reused pid) is not the process recorded.
        assert not processes.running(child.pid, lambda words: b"er_assets.emulator.worker" in words)
    finally:
        child.kill()
        child.wait()
    assert not processes.pid_taken(child.pid)
    assert not processes.running(child.pid, ours)
    assert not processes.running(None, ours)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="zombies are told apart through /proc")
def test_a_zombie_does_not_count():
    marker = f"marker-{uuid.uuid4().hex}"
    child = subprocess.Popen([sys.executable, "-c", "pass", marker])
    _wait_until(lambda: _state(child.pid) == "Z")  # exited, not reaped: kill(0) still succeeds
    os.kill(child.pid, 0)
    assert not processes.running(child.pid, lambda words: True)
    assert not processes.running(None, lambda words: marker.encode() in words)
    assert not processes.pid_taken(child.pid)  # reaps it
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)
    child.returncode = 0  # reaped above: keep Popen from waiting for it again


def test_without_proc_only_the_pid_is_asked(monkeypatch, tmp_path):
    monkeypatch.setattr(processes, "PROC", tmp_path / "no-proc")
    assert processes.running(os.getpid(), lambda words: False)  # taken: cannot tell more
    assert not processes.running(None, lambda words: True)  # no pid, nothing to ask


@pytest.mark.parametrize(
    "state, flags, alive",
    [
        ("R", 0x400000, True),
        ("S", 0x400040, True),
        ("Z", 0x400000, False),
        ("X", 0x400000, False),
        ("I", 0x208040, False),
    ],
)
def test_a_process_still_being_execd_counts_a_zombie_or_kernel_thread_does_not(
    tmp_path, monkeypatch, state, flags, alive
):
    """Between exec's closing of Popen's error pipe and the kernel setting up the new arguments,
    a just-started worker has an empty command line, as a zombie has: /proc/<pid>/stat tells
    them apart (a worker polled in that window was once reported dead, and its job FAILED), and
    a kernel thread (empty too) that took a dead worker's pid over does not count."""
    proc = tmp_path / "proc"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "cmdline").write_bytes(b"")
    (proc / "4242" / "stat").write_text(f"4242 (python (worker)) {state} 1 4242 4242 0 -1 {flags} 0 0\n")
    monkeypatch.setattr(processes, "PROC", proc)
    assert processes.running(4242, lambda words: False) is alive
    assert not processes.running(None, lambda words: True)  # a search never takes an empty line
