"""`autosys-bridge entities show|rebuild` through the bridge's CLI, on a local deployment with
two loaded partitions of returning customers."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from autosys_bridge import cli
from er_assets import exit_codes
from er_assets.config import load_config
from er_assets_tests.helpers import returning_customers, run_stages, write_config, write_source

PARTITIONS = ["2026-11-02", "2026-11-03"]


UNSET = ("ER_DEPLOYMENT", "AUTO_JOB_NAME", "AUTORUN")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A local deployment with two loaded partitions of returning customers: its environment,
    and an entity with records of both days (a record of it, its id, its size). Built once for
    the module: the tests only read, and a rebuild of an in-order registry moves nothing."""
    import dagster as dg

    from er_assets.defs.instance import ensure_dagster_home

    def loosen(raw):
        raw["domains"]["customers"]["dq"].update(max_match_rate=100, min_records=1)
        raw["domains"]["customers"]["dq"]["anomaly"]["enabled"] = False

    root = tmp_path_factory.mktemp("entities")
    data = root / "data"
    env = {
        "ER_DATA_DIR": str(data),
        "DAGSTER_HOME": str(data / "dagster_home"),
        "ER_CONFIG": str(write_config(root, loosen)),
    }
    with pytest.MonkeyPatch.context() as patch:
        use(patch, env)
        ensure_dagster_home()
        config = load_config(env["ER_CONFIG"])
        write_source(config.domain("customers"), returning_customers(PARTITIONS, 60, seed=2), data)
        with dg.instance_for_test(temp_dir=env["DAGSTER_HOME"]) as instance:
            for partition in PARTITIONS:
                assert run_stages(config, instance, "customers", ["extract", "matched", "loaded"], partition).success
    con = duckdb.connect(str(data / "warehouse.duckdb"), read_only=True)
    try:
        # An entity with records of both days: the first day's record, linked on the second.
        found = con.execute(
            "SELECT MIN(customer_id), entity_id, COUNT(*) FROM customers_resolved GROUP BY entity_id "
            "HAVING COUNT(DISTINCT partition_key) = 2 ORDER BY 3 DESC, 2 LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    return env, found


def use(patch, env: dict) -> None:
    for name in UNSET:
        patch.delenv(name, raising=False)
    for name, value in env.items():
        patch.setenv(name, value)


@pytest.fixture
def loaded(deployment, monkeypatch):
    """The module's deployment, selected by this test's environment: (record, entity, size)."""
    env, found = deployment
    use(monkeypatch, env)
    return found


def test_show_finds_an_entity_by_a_record_and_lists_both_days(loaded, capsys):
    record, entity, count = loaded
    assert cli.main(["entities", "show", "customers", record]) == exit_codes.OK
    out = capsys.readouterr().out
    assert f"entity {entity}: {count} records" in out
    assert all(p in out for p in PARTITIONS) and "absorbed" in out and "created" in out
    assert "@example" not in out  # ids, partitions and rules; never a record's values
    assert cli.main(["entities", "show", "customers", entity]) == exit_codes.OK
    assert f"entity {entity}: {count} records" in capsys.readouterr().out


def test_show_of_an_unknown_id_says_so(loaded, capsys):
    assert cli.main(["entities", "show", "customers", "nobody"]) == exit_codes.USAGE
    assert "no entity or record 'nobody'" in capsys.readouterr().out


def test_rebuild_of_an_in_order_registry_moves_nothing(loaded, deployment, capsys):
    def ids():
        con = duckdb.connect(str(Path(deployment[0]["ER_DATA_DIR"]) / "warehouse.duckdb"), read_only=True)
        try:
            return con.execute("SELECT customer_id, entity_id FROM customers_resolved ORDER BY 1").fetchall()
        finally:
            con.close()

    before = ids()
    assert cli.main(["entities", "rebuild", "customers"]) == exit_codes.OK
    out = capsys.readouterr().out
    assert f"replayed 2 partitions ({PARTITIONS[0]} to {PARTITIONS[1]}); 120 records, 0 changed entity" in out
    assert ids() == before


def test_an_unknown_domain_is_a_usage_error(loaded, capsys):
    assert cli.main(["entities", "rebuild", "nowhere"]) == exit_codes.USAGE
    assert "nowhere" in capsys.readouterr().err
