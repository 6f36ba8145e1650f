"""The job history store, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import os
import threading

import pytest

from er_assets.history import HistoryError, HistoryStore, Status, schema
from er_assets.stages import FINAL as FINAL_STAGE

pytest_plugins = ["er_assets_tests.postgres"]  # the PostgreSQL server fixtures, one server per session

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/history.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def store(url):
    with HistoryStore.from_url(url) as store:
        yield store


def start(store, run_id="run-1", stage="extract", domain="customers", at=T0, partition="2025-02-28", **kw):
    return store.record_start(
        run_id, stage, domain, partition, partition, kw.pop("trigger", "cli"), started_at=at, **kw
    )


def test_a_stage_is_one_row_from_start_to_end(store):
    assert start(
        store, job_name="customers_job", autosys_job_name="ER_CUSTOMER_EXTRACT", trigger="autosys:ER_CUSTOMER_EXTRACT"
    )
    (row,) = store.rows()
    assert (row.status, row.end_time, row.domain, row.partition_key) == (
        Status.RUNNING,
        None,
        "customers",
        "2025-02-28",
    )
    assert row.process_date == dt.date(2025, 2, 28) and row.start_time == T0
    assert (row.trigger, row.job_name, row.autosys_job_name) == (
        "autosys:ER_CUSTOMER_EXTRACT",
        "customers_job",
        "ER_CUSTOMER_EXTRACT",
    )

    assert store.record_end(
        "run-1",
        "extract",
        "SUCCEEDED",
        record_count=1200,
        exit_code=0,
        metadata={"path": "s3://b/k"},
        ended_at=T0 + dt.timedelta(seconds=95),
    )
    (row,) = store.rows()
    assert row.status is Status.SUCCEEDED and row.end_time == T0 + dt.timedelta(seconds=95)
    assert row.duration_seconds == pytest.approx(95, abs=0.01)
    assert (row.record_count, row.exit_code, row.metadata, row.error_message) == (1200, 0, {"path": "s3://b/k"}, None)


def test_redelivered_events_never_add_or_change_rows(store):
    assert start(store)
    assert not start(store, at=T0 + dt.timedelta(hours=1), domain="other")  # re-delivered start
    assert store.record_end(
        "run-1", "extract", Status.FAILED, error_message="boom", ended_at=T0 + dt.timedelta(minutes=1)
    )
    assert not store.record_end(
        "run-1", "extract", Status.FAILED, error_message="boom", ended_at=T0 + dt.timedelta(minutes=9)
    )
    assert not store.record_end("run-1", "extract", Status.SUCCEEDED)  # a late, contradicting event
    assert not start(store)  # a start after the end does not reopen the stage
    (row,) = store.rows()
    assert (row.domain, row.status, row.start_time, row.end_time) == (
        "customers",
        Status.FAILED,
        T0,
        T0 + dt.timedelta(minutes=1),
    )


def test_one_row_per_stage_of_a_run_and_per_run(store):
    for stage in ("extract", "matched", FINAL_STAGE):
        start(store, stage=stage)
    start(store, run_id="run-2")
    assert sorted((r.run_id, r.stage) for r in store.rows()) == [
        ("run-1", "extract"),
        ("run-1", "loaded"),
        ("run-1", "matched"),
        ("run-2", "extract"),
    ]


def test_concurrent_duplicate_starts_make_one_row(url):
    # Sensors in several processes deliver the same event at once: the unique key decides.
    stores = [HistoryStore.from_url(url) for _ in range(4)]
    _ = stores[0].schema_version  # migrate once, so the threads race on the insert itself
    created = []
    threads = [threading.Thread(target=lambda s=s: created.append(start(s))) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(created) == [False, False, False, True]
    assert len(stores[0].rows()) == 1
    for s in stores:
        s.close()


@pytest.mark.parametrize("status", [s for s in Status if s.terminal])
def test_each_terminal_status_is_stored(store, status):
    start(store)
    store.record_end("run-1", "extract", status, exit_code=0 if status is Status.SUCCEEDED else 3)
    assert store.get("run-1", "extract").status is status
    assert [r.run_id for r in store.rows(status=status)] == ["run-1"]


def test_end_needs_a_terminal_status_and_a_started_stage(store):
    start(store)
    with pytest.raises(ValueError, match="terminal"):
        store.record_end("run-1", "extract", "RUNNING")
    with pytest.raises(ValueError):
        store.record_end("run-1", "extract", "EXPLODED")
    with pytest.raises(LookupError, match="record_start"):
        store.record_end("never-started", "extract", "FAILED")


def test_times_must_say_their_zone(store):
    with pytest.raises(ValueError, match="timezone-aware"):
        start(store, at=dt.datetime(2025, 3, 1, 8))
    start(store, at=dt.datetime(2025, 3, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert store.get("run-1", "extract").start_time == T0  # stored, and read back, in UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record_end("run-1", "extract", "SUCCEEDED", ended_at=dt.datetime(2025, 3, 1, 9))


def test_values_with_quotes_and_sql_survive_intact(store):
    nasty = "O'Brien\"; DROP TABLE er_job_history; -- 100% :name %(x)s ?"
    start(
        store, run_id=nasty, domain=nasty, partition="2025-02-28", trigger=nasty, job_name=nasty, autosys_job_name=nasty
    )
    store.record_end(nasty, "extract", "FAILED", error_message=nasty, metadata={nasty: nasty})
    (row,) = store.rows(run_id=nasty, domain=nasty)
    assert (row.run_id, row.domain, row.trigger, row.job_name, row.autosys_job_name, row.error_message) == (nasty,) * 6
    assert row.metadata == {nasty: nasty}


def test_secrets_are_not_stored(store, monkeypatch):
    monkeypatch.setenv("ER_SMTP_PASSWORD", "Sm7p-Pa55w0rd")
    start(store)
    store.record_end(
        "run-1",
        "extract",
        "FAILED",
        error_message="login to postgresql://er:hunter22@db/x failed; smtp said Sm7p-Pa55w0rd; password=abc123",
        metadata={"aws_secret_access_key": "wJalrXUtnFEMI", "conn": {"token": "t0ken123"}, "rows": 5},
    )
    (row,) = store.rows()
    for secret in ("hunter22", "Sm7p-Pa55w0rd", "abc123", "wJalrXUtnFEMI", "t0ken123"):
        assert secret not in row.error_message and secret not in str(row.metadata)
    assert row.metadata["rows"] == 5 and "postgresql://er:***@db/x" in row.error_message


def test_rows_filters(store):
    start(store, run_id="a", domain="customers", at=T0)
    start(store, run_id="b", domain="vendors", at=T0 + dt.timedelta(days=2))
    store.record_end("b", "extract", "DQ_FAILED")
    assert [r.run_id for r in store.rows(domain="vendors")] == ["b"]
    assert [r.run_id for r in store.rows(since=T0 + dt.timedelta(days=1))] == ["b"]
    assert [r.run_id for r in store.rows(status="RUNNING", stage="extract")] == ["a"]


def test_schema_is_created_once_and_versioned(url):
    with HistoryStore.from_url(url) as first:
        assert first.schema_version == schema.LATEST
        start(first)
    with HistoryStore.from_url(url) as second:  # a second process: nothing re-applied, data kept
        assert second.schema_version == schema.LATEST
        assert len(second.rows()) == 1
        versions = second.query("SELECT version, description FROM er_schema_version ORDER BY version")
        assert [v["version"] for v in versions] == list(range(1, schema.LATEST + 1))


def test_bad_urls_are_explained():
    with pytest.raises(HistoryError, match="unsupported"):
        HistoryStore.from_url("mysql://x/y")
    with pytest.raises(HistoryError, match="no host"):
        HistoryStore.from_url("sqlite://host/x.db")


def test_postgres_uses_native_types(postgres_url):
    with HistoryStore.from_url(postgres_url) as store:
        start(store)
        types = store.query(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'er_job_history' "
            "AND table_schema = current_schema() "
            "AND column_name IN ('metadata', 'start_time', 'process_date')"
        )
    assert {t["column_name"]: t["data_type"] for t in types} == {
        "metadata": "jsonb",
        "start_time": "timestamp with time zone",
        "process_date": "date",
    }


def test_a_notification_is_claimed_once_and_can_be_given_back(store):
    assert store.claim_notification("run-1", "FAILED", "customers", ["a@example.com", "b@example.com"])
    assert not store.claim_notification("run-1", "FAILED", "customers", ["a@example.com"])
    assert store.claim_notification("run-1", "SUCCEEDED", "customers", ["a@example.com"])
    store.release_notification("run-1", "FAILED")
    assert store.claim_notification("run-1", "FAILED", "customers", ["a@example.com"])
    logged = store.notifications("run-1")
    assert sorted((n["status"], n["recipients"]) for n in logged) == [
        ("FAILED", "a@example.com"),
        ("SUCCEEDED", "a@example.com"),
    ]


def test_a_refused_schema_stays_refused(url):
    with HistoryStore.from_url(url) as store:
        store.query(
            "INSERT INTO er_schema_version (version, description, applied_at) "
            "VALUES (:v, 'from the future', :t) RETURNING version",
            v=schema.LATEST + 1,
            t=T0,
        )
    store = HistoryStore.from_url(url)
    for _ in range(2):  # the second call must not find a half-initialised connection
        with pytest.raises(HistoryError, match="newer than this code"):
            store.rows()


def test_a_step_retried_within_its_run_ends_with_its_last_attempt(store):
    start(store)
    assert store.record_end(
        "run-1", "extract", "FAILED", error_message="throttled", ended_at=T0 + dt.timedelta(minutes=1)
    )
    assert start(store, at=T0 + dt.timedelta(minutes=2), attempt=2)  # Dagster's retry_number 1
    assert not start(store, at=T0 + dt.timedelta(minutes=3), attempt=2)  # re-delivered
    assert not store.record_end("run-1", "extract", "FAILED", error_message="throttled")  # attempt 1's, late
    (row,) = store.rows()
    assert (row.status, row.attempt, row.error_message, row.start_time) == (Status.RUNNING, 2, None, T0)
    assert store.record_end(
        "run-1", "extract", "SUCCEEDED", record_count=7, attempt=2, ended_at=T0 + dt.timedelta(minutes=4)
    )
    (row,) = store.rows()
    assert (row.status, row.attempt, row.record_count, row.duration_seconds) == (Status.SUCCEEDED, 2, 7, 240)
    assert not start(store, attempt=1)  # an older attempt never reopens


def test_a_forked_child_opens_its_own_connection(store):
    """Dagster's executors fork: a child that used the parent's connection would corrupt the
    parent's session (PostgreSQL) or its lock state (SQLite)."""
    start(store)
    # The server process behind the connection; SQLite has none to tell connections apart.
    session = (lambda: store.query("SELECT pg_backend_pid() AS pid")) if store.dialect.name == "postgresql" else list
    parent = session()
    pid = os.fork()
    if pid == 0:  # the child: record, and leave without running the parent's cleanup
        try:
            os._exit(0 if start(store, run_id="child") and (session() != parent or not parent) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(r.run_id for r in store.rows()) == ["child", "run-1"]  # the parent's connection still works
    assert session() == parent


def test_sqlite_writes_ahead_and_waits_for_a_lock(tmp_path):
    with HistoryStore.from_url(f"sqlite:///{tmp_path}/h.db") as store:
        assert store.query("PRAGMA journal_mode") == [{"journal_mode": "wal"}]
        assert store.query("PRAGMA busy_timeout") == [{"timeout": 30000}]


def test_the_urls_users_configure(tmp_path, monkeypatch, postgres_url):
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite:///relative/h.db", f"sqlite:////{tmp_path}/absolute.db", "sqlite://"):
        with HistoryStore.from_url(url) as store:
            assert start(store) and len(store.rows()) == 1, url
    assert (tmp_path / "relative" / "h.db").exists() and (tmp_path / "absolute.db").exists()
    for scheme in ("postgresql", "postgres", "postgresql+psycopg"):  # one database, whichever the scheme
        with HistoryStore.from_url(postgres_url.replace("postgresql", scheme, 1)) as store:
            start(store)
            assert (store.dialect.name, len(store.rows())) == ("postgresql", 1), scheme


def test_a_postgres_server_gone_mid_statement_is_an_unreachable_history(postgres_url):
    """A restart or failover during a statement: one HistoryError (exit 5), not a driver error (exit 1)."""
    import psycopg

    from er_assets import exit_codes
    from er_assets.errors import exit_code_of

    with HistoryStore.from_url(postgres_url) as store:
        assert store.schema_version == schema.LATEST
        pid = store.query("SELECT pg_backend_pid() AS pid")[0]["pid"]
        killer = threading.Timer(
            0.5,
            lambda: psycopg.connect(postgres_url, autocommit=True).execute("SELECT pg_terminate_backend(%s)", (pid,)),
        )
        killer.start()
        try:
            with pytest.raises(HistoryError, match="the job history database failed") as failed:
                store.query("SELECT pg_sleep(10) AS slept")
        finally:
            killer.join()
        assert exit_code_of(failed.value) == exit_codes.SERVICE_UNAVAILABLE
        assert store.schema_version == schema.LATEST  # the next use reconnects
