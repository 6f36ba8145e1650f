"""What ER_ON_DEMAND is asked to run: the domain and date in two AutoSys globals, validated
before anything uses them.

The globals reach the bridge as environment variables (the jobs' `envvars:
ER_DOMAIN=$$ER_DOMAIN`), never as command-line text a shell would parse. Where AutoSys did not
substitute them (the variable is missing or still reads `$$NAME`), the bridge asks AutoSys
itself with `autostatus -G NAME`, run without a shell, when that client is on PATH. Whatever
the source, a value is used only if it is a configured domain name or a real date: anything
else stops the job with one line naming the variable (docs/on-demand.md).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess

DOMAIN_SHAPE = re.compile(r"[a-z][a-z0-9_]{0,30}")
DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
AUTOSTATUS_TIMEOUT = 30  # seconds


class RequestError(ValueError):
    """The globals do not name a domain and a date; the message says which and why."""


def read_request(config_path) -> dict[str, str]:
    """{"domain": ..., "date": ...} from ER_DOMAIN and ER_PROCESS_DATE, validated."""
    from autosys_bridge.jil.emitter import DATE_GLOBAL, DOMAIN_GLOBAL, ON_DEMAND_JOB
    from er_assets.config import ConfigError, load_config

    values = {}
    for name, shape, what in (
        (DOMAIN_GLOBAL, DOMAIN_SHAPE, "domain name"),
        (DATE_GLOBAL, DATE_SHAPE, "date YYYY-MM-DD"),
    ):
        value = _global(name)
        if value is None:
            raise RequestError(
                f'{name} is not set: sendevent -E SET_GLOBAL -G "{name}=..." before starting '
                f"{ON_DEMAND_JOB} (docs/on-demand.md)"
            )
        if not shape.fullmatch(value):
            raise RequestError(f"{name} {value[:80]!r} is not a {what}; nothing ran")
        values[name] = value
    try:
        dt.date.fromisoformat(values[DATE_GLOBAL])
    except ValueError:
        raise RequestError(f"{DATE_GLOBAL} {values[DATE_GLOBAL]!r} is not a date; nothing ran") from None
    try:
        load_config(config_path).domain(values[DOMAIN_GLOBAL])
    except ConfigError as exc:
        raise RequestError(f"{DOMAIN_GLOBAL}: {exc}") from None
    return {"domain": values[DOMAIN_GLOBAL], "date": values[DATE_GLOBAL]}


def _global(name: str) -> str | None:
    value = os.environ.get(name)
    # AutoSys leaves `$$NAME` as written when it has no such global to substitute.
    if value is not None and not value.startswith("$$"):
        return value
    autostatus = shutil.which("autostatus")
    if autostatus is None:
        return None
    try:
        done = subprocess.run(
            [autostatus, "-G", name],
            capture_output=True,
            text=True,
            timeout=AUTOSTATUS_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = done.stdout.strip()
    return answer if done.returncode == 0 and answer else None
