"""Is a recorded process still running? The one answer for every part that records a pid: the
emulator's job workers, the bridge's runs, the staging folders of extracts.

A pid alone is weak evidence: once its process has ended, the pid may be reused by another
program. Where the caller knows what the process runs, it is told by its command line
(Linux's `/proc/<pid>/cmdline`); without /proc (not Linux) only whether the pid is taken can
be asked. Standard library only, so every layer may import it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

PROC = Path("/proc")
PF_KTHREAD = 0x00200000  # the per-process flag of a kernel thread (include/linux/sched.h)


def pid_taken(pid: int) -> bool:
    """Does any process hold `pid`? A zombie child of this very process has exited but still
    answers kill(pid, 0): it is reaped here and does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        return waited == 0
    except ChildProcessError:  # not a child of ours: kill(0) said enough
        return True


def running(pid: int | None, command: Callable[[list[bytes]], bool]) -> bool:
    """Is there a live process, at `pid` or (None: a damaged record has no pid) anywhere, whose
    command line (its arguments, as bytes) satisfies `command`? A zombie has an empty command
    line, so it does not count, unless /proc says the process at a known pid is neither a
    zombie nor a kernel thread (it is being exec'd). Without /proc only a known pid can be asked, and only whether it is
    taken; so too when /proc hides that pid's command line from this user."""
    if not PROC.is_dir():
        return pid_taken(pid) if pid else False
    if pid:
        try:
            arguments = _arguments(PROC / str(pid) / "cmdline")
            if not arguments:
                # A zombie, a kernel thread that took the pid over, or a process that is still
                # being exec'd: Popen returns once exec has closed its error pipe, and the kernel
                # sets up the new arguments only after that (load_elf_binary), so a worker
                # polled at once has none yet. Only the last is the process recorded.
                return _being_execd(pid)
            return command(arguments)
        except OSError:  # gone, or hidden from this user (hidepid): kill(0) tells them apart
            return pid_taken(pid)
    for cmdline in PROC.glob("[0-9]*/cmdline"):
        try:
            if _runs(cmdline, command):
                return True
        except OSError:  # the process ended while we looked
            continue
    return False


def _arguments(cmdline: Path) -> list[bytes]:
    arguments = cmdline.read_bytes().rstrip(b"\0")
    return arguments.split(b"\0") if arguments else []


def _runs(cmdline: Path, command: Callable[[list[bytes]], bool]) -> bool:
    arguments = _arguments(cmdline)
    return bool(arguments) and command(arguments)


def _being_execd(pid: int) -> bool:
    """A user process that is neither a zombie nor being reaped. /proc/<pid>/stat: after the
    name (which may hold ')'), field 3 is the state and field 9 the flags."""
    fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return fields[0] not in ("Z", "X") and not int(fields[6]) & PF_KTHREAD
