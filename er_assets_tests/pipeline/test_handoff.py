"""What a stage hands the next: typed records written to and read from materialisation
metadata by one module; a record missing a field refuses the reading stage, naming it."""

from __future__ import annotations

import dagster as dg
import pytest

from autosys_bridge.runner import exit_code_for
from er_assets import exit_codes
from er_assets.errors import UpstreamRefused
from er_assets.pipeline.handoff import OBSERVATIONS_READ, Extracted, Matched, event_metadata, latest_result
from er_assets_tests.helpers import run_stages, seed

PARTITION = "2026-11-28"


def as_stored(metadata: dict) -> dict:
    """What the next stage reads: the metadata after Dagster stored and normalised it."""
    event = dg.AssetMaterialization(asset_key="x", metadata=metadata)
    return {key: value.value for key, value in event.metadata.items()}


def test_records_come_back_as_they_were_written():
    extracted = Extracted("s3://b/x/", 10, 1, "run-1", "f" * 16, {"non_empty": {"email": 9}}, "k", 3)
    assert Extracted.read(as_stored(extracted.metadata()), "other-run", "here") == extracted
    matched = Matched("job-1", "s3://b/out/", "run-1", 10, 4)
    assert Matched.read(as_stored(matched.metadata()), "here") == matched
    # Optional fields absent are left out of the metadata, and read back absent.
    bare = Extracted("s3://b/x/", 0, 0, "run-2")
    assert set(bare.metadata()) == {"uri", "rows", "files", "extract_run_id", "context_rows"}
    assert Extracted.read(as_stored(bare.metadata()), "run-2", "here") == bare


def test_an_extract_made_before_the_run_id_was_recorded_is_its_own_run():
    assert Extracted.read({"uri": "s3://b/x/", "rows": 5}, "run-9", "here").extract_run_id == "run-9"


@pytest.mark.parametrize("missing", ["job_id", "output_uri", "extract_run_id", "output_rows"])
def test_a_missing_field_is_named(missing):
    metadata = Matched("job-1", "s3://b/out/", "run-1", 10).metadata()
    del metadata[missing]
    with pytest.raises(UpstreamRefused, match=f"customers/matched: its metadata has no '{missing}'"):
        Matched.read(metadata, "customers/matched")


def test_a_stage_refuses_an_upstream_record_it_cannot_read(config, local_env, instance):
    seed(config.domain("customers"), PARTITION, 20, local_env)
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=dg.AssetKey(["customers", "extract"]), partition=PARTITION, metadata={"rows": 20}
        )
    )
    code, reason = exit_code_for(run_stages(config, instance, "customers", ["matched"], PARTITION))
    assert code == exit_codes.DQ_GATE_FAILED
    assert reason.startswith(f"UpstreamRefused: customers/extract partition {PARTITION} (run ")
    assert reason.endswith("its metadata has no 'uri' (made by an older release?); re-run that stage")


def test_the_latest_result_is_the_newest_of_a_materialisation_and_a_blocked_observation(disk_instance):
    """Read from SQLite files, as a bridge reads them: the paging is the storage's."""
    key = dg.AssetKey(["customers", "extract"])

    def report(event_type, n: int, **metadata) -> None:
        disk_instance.report_runless_asset_event(event_type(key, partition=PARTITION, metadata={"n": n, **metadata}))

    assert latest_result(disk_instance, key, PARTITION) is None
    report(dg.AssetMaterialization, 1)
    report(dg.AssetObservation, 2, checks_passed=False)  # a re-run its checks blocked
    report(dg.AssetObservation, 3)  # a note that is no result (the matching job's intent)
    assert event_metadata(latest_result(disk_instance, key, PARTITION))["n"] == 2
    report(dg.AssetMaterialization, 4)  # a good re-run after it
    report(dg.AssetObservation, 5)
    assert event_metadata(latest_result(disk_instance, key, PARTITION))["n"] == 4
    assert latest_result(disk_instance, key, "2026-11-27") is None  # another partition's results are not this one's

    # A blocked result followed by more notes than one read returns (attempts that stopped
    # after recording their intent) is still the newest result.
    report(dg.AssetObservation, 6, checks_passed=False)
    for n in range(7, 8 + 2 * OBSERVATIONS_READ):
        report(dg.AssetObservation, n)
    assert event_metadata(latest_result(disk_instance, key, PARTITION))["n"] == 6
