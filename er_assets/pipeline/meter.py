"""What a stage costs the orchestrator's process, recorded in its metadata."""

from __future__ import annotations

import time

from er_assets.resources.object_store import bytes_read


class Meter:
    """What a stage costs this process from its start: wall-clock seconds, and the record data
    read here (0 in production, where the warehouse reads it)."""

    def __init__(self):
        self.started, self.read_before = time.monotonic(), bytes_read()

    def figures(self) -> dict:
        return {
            "orchestrator_bytes_read": bytes_read() - self.read_before,
            "seconds": round(time.monotonic() - self.started, 3),
        }
