"""Which recorded pids still count as a live bridge when a later bridge sweeps dead runs."""

import subprocess
import sys
import time
from pathlib import Path

from autosys_bridge.runner import _bridge_alive


def _sleeper(*words: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *words])


def _settled(child: subprocess.Popen) -> None:
    """Until the child's command line is its own (exec done)."""
    deadline = time.monotonic() + 10
    while b"time.sleep" not in Path(f"/proc/{child.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_bridge_counts_another_part_of_the_project_does_not():
    bridge, worker = _sleeper("-m", "autosys_bridge.cli", "run"), _sleeper("-m", "er_assets.emulator.worker")
    try:
        _settled(bridge)
        _settled(worker)
        assert _bridge_alive(bridge.pid)
        assert not _bridge_alive(worker.pid)  # a reused pid running an emulator worker
    finally:
        for child in (bridge, worker):
            child.kill()
            child.wait()
    assert not _bridge_alive(bridge.pid)
