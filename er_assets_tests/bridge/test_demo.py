"""`python -m autosys_bridge.demo`: a history of real runs with planted defects the checks block,
and seeding any date range for a backfill from the UI."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
import pytest

from autosys_bridge import demo
from er_assets import exit_codes
from er_assets.environment import local_paths
from er_assets_tests.helpers import write_config


def runs(local_env) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(local_env / "dagster_home")) as instance:
        return list(reversed(instance.get_runs()))


def test_the_history_blocks_the_planted_defect_names_it_and_exits_zero(config, local_env, capsys):
    planted, clean = demo.recent_partitions(config.domain("vendors"), 2)
    assert demo.main(["--domain", "vendors", "--partitions", "2", "--records", "200"]) == exit_codes.OK
    out = capsys.readouterr().out
    assert f"[1/2] vendors {planted}: " in out and "(planted: duplicate_ids): data-quality gate failed" in out
    assert f"[2/2] vendors {clean}: " in out and out.count("success in") == 1
    assert (
        f"  vendors {planted} [planted: duplicate_ids] extract: unique_ids: vendor_id: 3 duplicate ids; "
        "ids must be non-empty"
    ) in out
    assert "vendors    monthly     2      1       1" in out
    # Real runs of the domain's job, tagged as the demo's; only the clean one was loaded.
    assert [
        (r.job_name, r.tags["dagster/partition"], r.tags["er/trigger"], r.status.value) for r in runs(local_env)
    ] == [("ER_vendors", planted, "demo", "FAILURE"), ("ER_vendors", clean, "demo", "SUCCESS")]
    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    loaded = con.execute("SELECT DISTINCT partition_key FROM vendors_resolved").fetchall()
    con.close()
    assert loaded == [(clean,)]


def test_a_partition_blocked_without_a_planted_defect_fails_the_demo(local_env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(
        "ER_CONFIG", str(write_config(tmp_path, lambda raw: raw["domains"]["vendors"]["dq"].update(min_records=10_000)))
    )
    assert demo.main(["--domain", "vendors", "--partitions", "1", "--records", "200"]) == exit_codes.DQ_GATE_FAILED
    out = capsys.readouterr().out
    assert "[NOT PLANTED] extract: min_records: " in out and "records in the partition; at least 10000 required" in out


def test_volumes_vary_with_weekends_and_noise_but_not_between_seeds(config):
    customers, products = config.domain("customers"), config.domain("products")
    week = [demo.volume(customers, f"2026-11-{day:02d}", 1000) for day in range(23, 30)]  # Monday to Sunday
    assert len(set(week)) == 7 and all(900 <= v <= 1100 for v in week[:5]) and all(630 <= v <= 770 for v in week[5:])
    assert week == [demo.volume(customers, f"2026-11-{day:02d}", 1000) for day in range(23, 30)]
    assert 900 <= demo.volume(products, "2026-11-29", 1000) <= 1100  # a weekly partition starting on a Sunday


def test_seed_only_fills_every_partition_of_a_date_range_and_runs_nothing(config, local_env, capsys):
    products = config.domain("products")  # weekly, weeks start on Sunday
    assert demo.main(["--domain", "products", "--from", "2026-06-03", "--to", "2026-06-30", "--seed-only"]) == 0
    assert "seeded 5 partitions" in capsys.readouterr().out
    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    first, last = con.execute(
        f'SELECT min("{products.source.partition_column}"), '
        f'max("{products.source.partition_column}") FROM products_source'
    ).fetchone()
    con.close()
    assert (first, last) == (dt.date(2026, 5, 31), dt.date(2026, 7, 4))  # the weeks overlapping June 3 - 30
    assert runs(local_env) == []


def test_partitions_between_stops_at_the_latest_complete_one_and_the_start_date(config):
    vendors = config.domain("vendors")
    keys = demo.partitions_between(vendors, dt.date(2000, 1, 1), dt.date(2999, 1, 1))
    assert keys[0] == vendors.schedule.start_date.isoformat()
    assert keys[-1] == demo.recent_partitions(vendors, 1)[0]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--to", "2026-01-01"], "--to needs --from"),
        (["--from", "2026-02-01", "--to", "2026-01-01"], "--from 2026-02-01 is after --to 2026-01-01"),
        (["--from", "2026-13-01"], "'2026-13-01' is not a date"),
        (["--partitions", "0"], "--partitions must be at least 1"),
        (["--from", "2026-01-01", "--partitions", "3"], "give one"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        demo.main(argv)
    assert stop.value.code == exit_codes.USAGE
    assert message in capsys.readouterr().err


def test_an_unknown_domain_is_named(local_env, capsys):
    assert demo.main(["--domain", "nope", "--seed-only"]) == exit_codes.USAGE
    assert "Domain 'nope' not found in configuration" in capsys.readouterr().err


def test_returning_customers_are_linked_across_partitions_and_the_summary_shows_one(local_env, capsys):
    assert demo.main(["--domain", "customers", "--partitions", "3", "--records", "200"]) == exit_codes.OK
    out = capsys.readouterr().out
    con = duckdb.connect(str(local_paths()["warehouse"]), read_only=True)
    try:
        entities, linked = con.execute(
            "WITH t AS (SELECT entity_id, count(DISTINCT partition_key) OVER (PARTITION BY entity_id) AS days "
            "FROM customers_resolved) SELECT count(DISTINCT entity_id), count(*) FILTER (WHERE days > 1) FROM t"
        ).fetchone()
    finally:
        con.close()
    assert linked > 0  # the generated returning customers joined the entities of earlier days
    row = next(line for line in out.splitlines() if line.startswith("customers  daily"))
    assert row.split()[-2:] == [str(entities), str(linked)]
    assert ".venv/bin/autosys-bridge entities show customers " in out
