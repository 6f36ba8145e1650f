"""The job history schema's migrations (Alembic revisions, run on first use), on SQLite and on
a real PostgreSQL server: every database an earlier release wrote upgrades in place with its
rows, and a fresh database ends where an upgraded one does."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from er_assets.history import HistoryStore, Status, schema
from er_assets.stages import FINAL as FINAL_STAGE
from er_assets_tests.history import released

pytest_plugins = ["er_assets_tests.postgres"]  # the PostgreSQL server fixtures, one server per session

HOUR = dt.timedelta(hours=1)
T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.timezone.utc)


def start(store, run_id="run-1", stage="extract", domain="customers", at=T0, partition="2025-02-28"):
    return store.record_start(run_id, stage, domain, partition, partition, "cli", started_at=at)


@pytest.fixture(params=["sqlite", "postgresql"])
def urls(request, tmp_path):
    """Two empty databases of one kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.db", f"sqlite:///{tmp_path}/other.db"
    server = request.getfixturevalue("postgres_server")
    return server.fresh_schema(), server.fresh_schema()


@pytest.fixture
def url(urls) -> str:
    return urls[0]


def history_row(version: int, run_id: str, **values) -> dict:
    """A stage row as the release at `version` wrote it (attempt came with 4)."""
    row = {
        "run_id": run_id,
        "stage": "extract",
        "domain": "customers",
        "partition_key": "2025-02-28",
        "process_date": dt.date(2025, 2, 28),
        "triggered_by": "autosys:ER_CUSTOMER_EXTRACT",
        "start_time": T0,
        "status": "RUNNING",
        "metadata": {},
        **values,
    }
    if version < 4:
        row.pop("attempt", None)
    return row


@pytest.mark.parametrize("version", range(1, schema.LATEST + 1))
def test_every_released_schema_upgrades_in_place(urls, version):
    url, fresh = urls
    db = released.build(url, version)
    row_id = released.insert(db, "er_job_history", **history_row(version, "old"))
    with HistoryStore.from_url(url) as store:
        assert store.applied_version() == version  # looking does not migrate
        assert store.schema_version == schema.LATEST
        (row,) = store.rows()
        assert (row.history_id, row.run_id, row.start_time, row.process_date, row.attempt) == (
            row_id,
            "old",
            T0,
            dt.date(2025, 2, 28),
            1,
        )
        # The release's version rows are kept, and the later versions added as releases described them.
        versions = store.query("SELECT version, description, applied_at FROM er_schema_version ORDER BY version")
        assert [(v["version"], v["description"]) for v in versions] == [
            (number, description) for number, description, _ in released.sections("sqlite") if number
        ]
        assert {v["applied_at"] for v in versions[:version]} == {released.APPLIED_AT}
        assert store.query("SELECT version_num FROM alembic_version") == [{"version_num": str(schema.LATEST)}]
    # A database this code creates ends with the very schema the upgraded one has.
    with HistoryStore.from_url(fresh) as new:
        assert new.schema_version == schema.LATEST
    assert released.shape(url) == released.shape(fresh)


def test_a_version_5_database_keeps_every_row(url):
    """The release before late partitions: its history, notifications and SLAs come through
    the upgrade as they were, ids and all, and the views read them as before."""
    db = released.build(url, 5)
    ids = {}
    for i, stage in enumerate(["extract", "matched", FINAL_STAGE]):
        ended = T0 + i * HOUR + dt.timedelta(minutes=10)
        ids[stage] = released.insert(
            db,
            "er_job_history",
            **history_row(
                5,
                "run-1",
                stage=stage,
                start_time=T0 + i * HOUR,
                end_time=ended,
                status="SUCCEEDED",
                record_count=100 + i,
                duration_seconds=600.0,
                exit_code=0,
                metadata={"job_id": "a" * 32, "stage": stage},
                attempt=2 if stage == "matched" else 1,
            ),
        )
    failed = released.insert(
        db,
        "er_job_history",
        **history_row(
            5,
            "run-2",
            domain="vendors",
            end_time=T0 + dt.timedelta(minutes=1),
            status="FAILED",
            exit_code=1,
            error_message="expected 100 records, got 42",
            error_key="expected # records, got #",
        ),
    )
    released.insert(
        db, "er_notification_log", run_id="run-2", status="FAILED", domain="vendors", recipients="a@x", sent_at=T0
    )
    released.insert(db, "er_sla", domain="customers", sla_minutes=180, updated_at=T0)

    with HistoryStore.from_url(url) as store:
        assert store.schema_version == schema.LATEST
        rows = {(r.run_id, r.stage): r for r in store.rows()}
        assert {key: r.history_id for key, r in rows.items()} == {
            **{("run-1", stage): row_id for stage, row_id in ids.items()},
            ("run-2", "extract"): failed,
        }
        matched = rows["run-1", "matched"]
        assert (matched.status, matched.end_time, matched.record_count, matched.duration_seconds) == (
            Status.SUCCEEDED,
            T0 + HOUR + dt.timedelta(minutes=10),
            101,
            600.0,
        )
        assert (matched.metadata, matched.attempt, matched.trigger) == (
            {"job_id": "a" * 32, "stage": "matched"},
            2,
            "autosys:ER_CUSTOMER_EXTRACT",
        )
        assert rows["run-2", "extract"].error_key == "expected # records, got #"
        assert [(n["run_id"], n["sent_at"]) for n in store.notifications()] == [("run-2", T0)]
        assert not store.claim_notification("run-2", "FAILED", "vendors", ["a@x"])  # still claimed
        (sla,) = [r for r in store.view("er_v_sla_compliance") if r["domain"] == "customers"]
        assert (sla["sla_status"], sla["elapsed_minutes"], sla["started_at"]) == ("MET", 130.0, T0)
        # Writing goes on where the release stopped: new ids after the old, the new table works.
        assert start(store, run_id="run-3")
        assert store.get("run-3", "extract").history_id > max(ids.values())
        assert store.claim_late("vendors", "2025-02-28", T0, "failed", ["a@x"])
        assert [p["partition_key"] for p in store.late_partitions()] == ["2025-02-28"]


def test_two_processes_upgrade_a_released_database_once(url):
    """A version-4 database (before the row id's rename) with rows, upgraded by two stores at
    once: it is stamped and migrated exactly once, and keeps every row and its id."""
    db = released.build(url, 4)
    before = {}
    for i, stage in enumerate(["extract", "matched", "loaded", "extract"]):
        row = history_row(4, f"run-{i}", stage=stage, start_time=T0 + i * HOUR, attempt=1)
        before[f"run-{i}"] = released.insert(db, "er_job_history", **row)
    with db.begin() as conn:
        conn.exec_driver_sql("DELETE FROM er_job_history WHERE run_id = 'run-3'")
    deleted = before.pop("run-3")  # the newest id: a new row must not get it again
    stores = [HistoryStore.from_url(url) for _ in range(2)]
    barrier = threading.Barrier(len(stores))
    versions = []
    threads = [threading.Thread(target=lambda s=s: (barrier.wait(), versions.append(s.schema_version))) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    new = stores[0]
    assert versions == [schema.LATEST] * 2
    assert [v["version"] for v in new.query("SELECT version FROM er_schema_version")] == list(
        range(1, schema.LATEST + 1)
    )
    assert {r.run_id: r.history_id for r in new.rows()} == before
    (any_row, *_) = new.query("SELECT * FROM er_job_history")
    assert "history_id" in any_row and "job_id" not in any_row
    assert start(new, run_id="run-4")  # the id generator survived the rename, and never reuses an id
    assert new.get("run-4", "extract").history_id > deleted
    for s in stores:
        s.close()


def test_a_database_this_code_left_at_an_older_revision_is_upgraded(url, monkeypatch):
    with monkeypatch.context() as m:  # as the release before migration 4 would have, with Alembic
        m.setattr(schema, "LATEST", 3)
        with HistoryStore.from_url(url) as old:
            assert old.schema_version == 3
            old.query(
                "INSERT INTO er_job_history (run_id, stage, domain, partition_key, process_date, triggered_by,"
                " start_time, status, metadata) VALUES ('old', 'extract', 'customers', '2025-01-01', :d, 'cli', :t,"
                " 'SUCCEEDED', '{}') RETURNING job_id",
                d=dt.date(2025, 1, 1),
                t=T0,
            )
    with HistoryStore.from_url(url) as new:
        assert new.applied_version() == 3
        assert new.schema_version == schema.LATEST
        (row,) = new.rows()
        assert (row.run_id, row.attempt, row.start_time) == ("old", 1, T0)


def test_the_tables_the_code_writes_are_the_tables_the_migrations_build(url):
    HistoryStore.from_url(url).schema_version  # noqa: B018  # first use creates the schema
    with released.engine(url).connect() as conn:
        # Types are left out: on SQLite a time is text by design (dialect.Timestamp).
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        assert compare_metadata(context, schema.metadata) == []


def test_latest_is_the_last_revision():
    scripts = ScriptDirectory(str(schema.MIGRATIONS))
    assert scripts.get_current_head() == str(schema.LATEST)
    assert [int(s.revision) for s in scripts.walk_revisions()] == list(range(schema.LATEST, 0, -1))


# Each released revision file. A database that ran one never runs it again, so editing one
# (its text, or a constant in it: a new Status changes revision 1's CHECK) leaves existing
# databases behind: add a revision instead.
RELEASED = {
    "v1_job_history.py": "ca95c0e0dac8de4f",
    "v2_notification_log.py": "b0271134420d0624",
    "v3_sla_and_views.py": "2d67f559b157f66d",
    "v4_attempt.py": "9091d16436573326",
    "v5_history_id.py": "089a4649df2e25ef",
    "v6_late_partition.py": "6cdf0e745c39eb30",
}


def test_released_migrations_are_never_edited():
    versions = schema.MIGRATIONS / "versions"
    digests = {name: hashlib.sha256((versions / name).read_bytes()).hexdigest()[:16] for name in RELEASED}
    assert digests == RELEASED
    # Self-contained, so that nothing edited elsewhere changes what they run.
    for path in versions.glob("*.py"):
        imported = {
            alias.name if isinstance(node, ast.Import) else node.module
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        assert {name.split(".")[0] for name in imported if name} <= {"alembic", "sqlalchemy"}, path.name
