"""History for the anomaly checks: a stage's figure in the partitions before this one.

The history is the stage's own materialisation metadata in the Dagster instance (the same
record downstream stages read), so it covers every run whatever started it, and a re-run of
an earlier partition replaces that partition's value instead of adding a second one. A
result that failed a blocking check (e.g. an empty extract) is left out, so a bad day does not
drag the median towards itself: such a result is no materialisation (see `handoff`), and a
materialisation of an earlier release that says `checks_passed: false` is skipped.
"""

from __future__ import annotations

from typing import cast

import dagster as dg

from er_assets.config import Domain
from er_assets.partitions import previous_partitions
from er_assets.pipeline.handoff import CHECKS_PASSED

# Records per event-log query: a partition materialised a few times still fits in one page.
PAGE = 100


def earlier_values(
    instance: dg.DagsterInstance, key: dg.AssetKey, domain: Domain, partition: str, field: str
) -> dict[str, float]:
    """Metadata `field` of the latest materialisation of each of the dq.anomaly.window
    partitions before `partition` that has one and passed its blocking checks, oldest first."""
    keys = previous_partitions(domain, partition, domain.dq.anomaly.window)
    if not keys:
        return {}
    latest: dict[str, dg.AssetMaterialization] = {}
    cursor = None
    while len(latest) < len(keys):
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=keys), limit=PAGE, cursor=cursor
        )
        for record in page.records:  # newest first: the first one seen per partition is its latest
            partition_key, materialization = record.partition_key, record.asset_materialization
            # Records of materialisations of the partitions asked for: both are always set.
            assert partition_key is not None and materialization is not None
            latest.setdefault(partition_key, materialization)
        if not page.has_more:
            break
        cursor = page.cursor
    values: dict[str, float] = {}
    for partition_key in reversed(keys):
        metadata = latest[partition_key].metadata if partition_key in latest else {}
        value, passed = metadata.get(field), metadata.get(CHECKS_PASSED)
        if value is not None and (passed is None or passed.value):  # None: recorded before the flag
            values[partition_key] = cast(float, value.value)  # the figures asked for are numbers
    return values
