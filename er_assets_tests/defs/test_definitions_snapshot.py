"""The code location, described line by line, against a committed snapshot.

Any change to what Dagster sees (an asset, its partitions, a check or whether it blocks, a job's
selection, a schedule's cron or timezone, a sensor, a resource key, the matching pool) shows up
here as a readable diff. When the change is intended, rewrite the snapshot and commit it:

    ER_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest er_assets_tests/defs/test_definitions_snapshot.py
"""

from __future__ import annotations

import difflib
import os

import dagster as dg
import pytest

from er_assets.config import load_config
from er_assets.defs.definitions import build_definitions
from er_assets_tests.helpers import DEFINITIONS_SNAPSHOT, write_config

UPDATE_ENV = "ER_UPDATE_SNAPSHOT"


def _partitions(pd) -> str:
    if pd is None:
        return "-"
    if isinstance(pd, dg.TimeWindowPartitionsDefinition):
        return (
            f"time_window(cron={pd.cron_schedule!r}, start={pd.start:%Y-%m-%d}, timezone={pd.timezone}, "
            f"fmt={pd.fmt}, end_offset={pd.end_offset})"
        )
    return repr(pd)  # a kind not used today: still in the snapshot, if less legible


def _keys(keys) -> str:
    return "[" + ", ".join(sorted(k.to_user_string() for k in keys)) + "]"


def describe(defs: dg.Definitions) -> str:
    """Every asset (group, kinds, partitions, deps, pool, resources) with its checks, then the
    jobs, schedules, sensors and resource keys, sorted, one fact per line."""
    graph = defs.resolve_asset_graph()
    lines = ["assets:"]
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets_def = defs.resolve_assets_def(key)
        executable = node.is_materializable
        lines += [
            f"  {key.to_user_string()}:",
            f"    group: {node.group_name}",
            f"    kinds: {sorted(node.kinds)}",
            f"    materializable: {executable}",
            f"    partitions: {_partitions(node.partitions_def)}",
            f"    deps: {_keys(node.parent_keys)}",
        ]
        if executable:
            lines += [f"    pool: {assets_def.op.pool}", f"    resources: {sorted(assets_def.required_resource_keys)}"]
        for check_key in sorted(graph.asset_check_keys, key=lambda c: c.name):
            if check_key.asset_key == key:
                blocking = "blocking" if graph.get(check_key).blocking else "non-blocking"
                lines.append(f"    check {check_key.name}: {blocking}")
    lines.append("jobs:")
    for job in sorted(defs.jobs, key=lambda j: j.name):
        resolved = defs.resolve_job_def(job.name)
        lines += [
            f"  {job.name}:",
            f"    selection: {_keys(job.selection.resolve(graph))}",
            f"    partitions: {_partitions(resolved.partitions_def)}",
            f"    tags: {dict(sorted(resolved.tags.items()))}",
            f"    executor: {resolved.executor_def.name}",
        ]
    lines.append("schedules:")
    for name in sorted(s.name for s in defs.schedules):
        schedule = defs.resolve_schedule_def(name)
        lines.append(
            f"  {name}: job={schedule.job_name} cron={schedule.cron_schedule!r} "
            f"timezone={schedule.execution_timezone} default={schedule.default_status.value}"
        )
    lines.append("sensors:")
    for sensor in sorted(defs.sensors, key=lambda s: s.name):
        lines.append(
            f"  {sensor.name}: {sensor.sensor_type.value} default={sensor.default_status.value} "
            f"resources={sorted(sensor.required_resource_keys)}"
        )
    lines.append(f"resources: {sorted(defs.resources)}")
    return "\n".join(lines) + "\n"


def diff(expected: str, actual: str) -> str:
    return "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            "committed snapshot",
            "definitions now",
        )
    )


def test_the_definitions_match_the_committed_snapshot(config, local_env):
    actual = describe(build_definitions(config))
    if os.environ.get(UPDATE_ENV) == "1":
        DEFINITIONS_SNAPSHOT.write_text(actual)
        pytest.skip(f"{DEFINITIONS_SNAPSHOT.name} rewritten: review it with `git diff` and commit it")
    expected = DEFINITIONS_SNAPSHOT.read_text()
    assert actual == expected, (
        f"the definitions differ from {DEFINITIONS_SNAPSHOT} (if intended, rerun with {UPDATE_ENV}=1 and "
        f"commit the file):\n{diff(expected, actual)}"
    )


def test_a_changed_schedule_and_fewer_checks_show_in_the_diff(local_env, tmp_path):
    """The snapshot can fail: a later run time and the anomaly checks switched off for one
    domain are exactly the lines that differ."""

    def mutate(raw):
        raw["domains"]["customers"]["schedule"]["time"] = "04:00"
        raw["domains"]["customers"]["dq"]["anomaly"]["enabled"] = False

    changed = describe(build_definitions(load_config(write_config(tmp_path, mutate))))
    lines = [
        line
        for line in diff(DEFINITIONS_SNAPSHOT.read_text(), changed).splitlines()
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert "-    check record_count_anomaly: blocking" in lines
    assert "-    check match_rate_baseline: blocking" in lines
    assert any(line.startswith("-  customers_schedule:") and "'0 3 * * *'" in line for line in lines)
    assert any(line.startswith("+  customers_schedule:") and "'0 4 * * *'" in line for line in lines)
    others = [line for line in lines if "anomaly" not in line and "baseline" not in line and "'0 " not in line]
    assert others == [], others
