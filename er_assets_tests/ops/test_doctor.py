"""`doctor`: every check of the selected deployment, and plain words for what is missing."""

from __future__ import annotations

import argparse
import datetime as dt
import socket
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from er_assets import exit_codes
from er_assets.history import HistoryStore, schema
from er_assets.ops import doctor
from er_assets.partitions import partition_for_date
from er_assets.resources.entity_resolution import LocalEntityResolution
from er_assets.resources.production import production_resources
from er_assets_tests.helpers import FakesnowWarehouse, by_name, create_source, fake_snowflake, seed, warehouse

pytest_plugins = ["er_assets_tests.postgres"]

SECRET = "pa55-w0rd-never-printed"
SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "acme-prod",
    "SNOWFLAKE_USER": "ER_SERVICE",
    "SNOWFLAKE_PASSWORD": SECRET,
    "SNOWFLAKE_ROLE": "ER_PIPELINE",
    "SNOWFLAKE_WAREHOUSE": "ER_WH",
    "SNOWFLAKE_DATABASE": "ER",
    "SNOWFLAKE_SCHEMA": "PUBLIC",
    "SNOWFLAKE_STAGE": "ER_STAGE",
    "SNOWFLAKE_STAGE_URL": "s3://er-data-lake/",
}


def cli(argv):
    parser = argparse.ArgumentParser(prog="autosys-bridge")
    doctor.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_local_names_missing_source_tables_then_passes(config, local_env, capsys):
    checks = by_name(doctor.run_doctor(config, "local"))
    assert checks["customers: warehouse"] == (
        False,
        f"RuntimeError: source table customers_source does not exist in {local_env / 'warehouse.duckdb'} "
        "(`make demo` seeds sample data)",
    )
    assert checks["customers: glue table"][0] and checks["customers: matching workflow"][0]
    assert cli(["doctor", "--deployment", "local"]) == exit_codes.SERVICE_UNAVAILABLE
    assert "FAIL  customers: warehouse" in capsys.readouterr().out

    for domain in config.domains.values():
        seed(domain, partition_for_date(domain, dt.date(2024, 6, 3)), 10, local_env)
    checks = doctor.run_doctor(config, "local")
    assert [c for c in checks if not c[1]] == []
    assert cli(["doctor", "--deployment", "local"]) == exit_codes.OK
    assert capsys.readouterr().out.rstrip().endswith("all checks passed")


def test_production_without_environment_says_which_variables(config, monkeypatch):
    for name in [*SNOWFLAKE_ENV, "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PATH"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SNOWFLAKE_ACCOUNT", "acme-prod")
    checks = by_name(doctor.run_doctor(config, "production"))
    ok, message = checks["snowflake settings"]
    assert not ok
    assert message == (
        "missing environment variables: SNOWFLAKE_USER, SNOWFLAKE_WAREHOUSE, SNOWFLAKE_DATABASE, SNOWFLAKE_SCHEMA, "
        "SNOWFLAKE_STAGE, SNOWFLAKE_STAGE_URL, SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PRIVATE_KEY "
        "or SNOWFLAKE_PASSWORD"
    )
    assert "customers: warehouse" not in checks  # nothing further can authenticate


def test_bad_deployment_is_a_usage_error(monkeypatch, capsys):
    assert cli(["doctor", "--deployment", "staging"]) == exit_codes.USAGE
    assert "expected one of local, production" in capsys.readouterr().err


def test_production_against_fakes(config, tmp_path, monkeypatch, capsys):
    for name, value in {
        **SNOWFLAKE_ENV,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    objects = tmp_path / "objects"
    with mock_aws(), fake_snowflake(objects, stage_url="s3://er-data-lake/") as conn:
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="er-data-lake")
        create_source(conn, config.domain("customers"), [])
        resources = production_resources(config)
        # moto has no Entity Resolution; the emulator answers the same boto3 calls.
        resources["entity_resolution"] = LocalEntityResolution(
            state_root=str(tmp_path / "emulator"), objects_root=str(objects), config_path=str(config.path)
        )
        checks = doctor.run_doctor(config, "production", resources=resources)

    found = by_name(checks)
    assert found["snowflake settings"] == (True, "all set")
    assert found["aws credentials"] == (True, "found (env)")
    assert found["customers: warehouse"] == (True, "source table customers_source and staging area ready")
    assert found["customers: target table"] == (
        True,
        "target table CUSTOMERS_RESOLVED does not exist yet; the first load creates it",
    )
    assert found["products: warehouse"] == (
        False,
        "RuntimeError: source table PRODUCTS_SOURCE does not exist in ER.PUBLIC or is not visible to the role",
    )
    assert found["vendors: bucket"][0] and found["vendors: glue table"][0] and found["vendors: matching workflow"][0]
    # fakesnow cannot unload: the probe's failure says where it could not write, and what to grant.
    ok, message = found["customers: stage writable"]
    assert not ok and "cannot unload to @ER_STAGE/entity-resolution/customers/extract/_doctor/" in message
    assert "needs s3:PutObject on this prefix" in message
    assert doctor.exit_code(checks) == exit_codes.SERVICE_UNAVAILABLE
    assert SECRET not in doctor.render(checks)


def test_production_names_a_missing_bucket(config, monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        checks = doctor.bucket_checks(config, production_resources(config)["object_store"])
    assert checks[0] == ("customers: bucket", False, "NoSuchBucket: The specified bucket does not exist")


def test_stage_writable_probe_unloads_one_row_and_removes_it(config, tmp_path):
    objects = tmp_path / "objects"
    domain = config.domain("customers")
    with fake_snowflake(objects):
        checks = by_name(doctor.warehouse_checks(config, warehouse(objects)))
    ok, message = checks["customers: stage writable"]
    assert ok, message
    assert message.startswith("unloaded a probe row to @ER_STAGE/entity-resolution/customers/extract/_doctor/")
    assert message.endswith("and removed it (1 object(s))")
    scratch = objects / "er-data-lake" / "entity-resolution" / domain.name / "extract" / "_doctor"
    assert not any(p.is_file() for p in scratch.rglob("*"))


class _KmsDenied(FakesnowWarehouse):
    """The unload fails as S3 answers a role without the bucket key's KMS permission."""

    def _unload(self, cursor, location, select, params):
        (Path(self.stage_root) / location.split("/", 1)[1]).mkdir(parents=True, exist_ok=True)
        (Path(self.stage_root) / location.split("/", 1)[1] / "data_0_0_0.snappy.parquet").write_bytes(b"half")
        raise RuntimeError(
            "Failed to access remote file: access denied. KMS.AccessDeniedException: "
            "not authorized to perform kms:GenerateDataKey\nsecond line"
        )


def test_stage_writable_probe_names_the_kms_permission_and_cleans_up(config, tmp_path):
    objects = tmp_path / "objects"
    with fake_snowflake(objects):
        denied = warehouse(objects, _KmsDenied)
        checks = by_name(doctor.warehouse_checks(config, denied))
    ok, message = checks["customers: stage writable"]
    assert not ok
    assert "cannot unload to @ER_STAGE/entity-resolution/customers/extract/_doctor/" in message
    assert "needs kms:GenerateDataKey on the bucket's KMS key" in message and "second line" not in message
    assert not any(p.is_file() for p in (objects / "er-data-lake").rglob("_doctor/**/*"))


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request, tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path}/history.db" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    monkeypatch.setenv("ER_HISTORY_URL", url)
    return url


def test_the_job_history_is_checked_without_being_changed(history_url, tmp_path, monkeypatch):
    ((name, ok, message),) = doctor.history_checks()
    assert name == "job history" and ok
    assert (
        message == f"{history_url.split(':')[0]}, empty: the first stage creates the schema (version {schema.LATEST})"
    )
    if history_url.startswith("sqlite"):
        assert not (tmp_path / "history.db").exists()  # looking never creates it
    with monkeypatch.context() as m:  # the release before migration 4 wrote it
        m.setattr(schema, "LATEST", 3)
        with HistoryStore.from_url(history_url) as old:
            assert old.schema_version == 3
    ((_, ok, message),) = doctor.history_checks()
    assert not ok and message == (
        f"RuntimeError: schema at version 3, this release writes version {schema.LATEST}: run one stage, or "
        "`autosys-bridge report`, as a user allowed CREATE and ALTER on it, which migrates it in place"
    )
    assert HistoryStore.from_url(history_url).applied_version() == 3  # the doctor only looked
    with HistoryStore.from_url(history_url) as store:
        assert store.schema_version == schema.LATEST
    assert doctor.history_checks()[0][1:] == (True, f"{history_url.split(':')[0]}, schema at version {schema.LATEST}")
    with HistoryStore.from_url(history_url) as store:
        store.query(
            "INSERT INTO er_schema_version (version, description, applied_at) VALUES (:v, 'later', :t) "
            "RETURNING version",
            v=schema.LATEST + 1,
            t=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        )
    ((_, ok, message),) = doctor.history_checks()
    assert not ok and "newer than this release writes" in message and "upgrade er-pipelines" in message


def test_an_unreachable_job_history_is_one_line_without_its_password(monkeypatch):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    with port:
        monkeypatch.setenv("ER_HISTORY_URL", f"postgresql://er:{SECRET}@127.0.0.1:{port.getsockname()[1]}/history")
        ((_, ok, message),) = doctor.history_checks()
    assert not ok and message.startswith("HistoryError: cannot connect to the job history database")
    assert SECRET not in message and "\n" not in message


def test_production_names_a_missing_job_history_and_dagster_home(monkeypatch):
    monkeypatch.setenv("ER_DEPLOYMENT", "production")
    monkeypatch.delenv("ER_HISTORY_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    assert doctor.history_checks()[0][1:] == (
        False,
        "HistoryError: ER_HISTORY_URL must name the job history database in production",
    )
    assert doctor.instance_checks("production")[0][1:] == (
        False,
        "RuntimeError: DAGSTER_HOME is not set: point it at the folder holding dagster.yaml (docs/dagster.yaml)",
    )


def test_the_local_dagster_instance_answers(local_env):
    ((name, ok, message),) = doctor.instance_checks("local")
    assert name == "dagster instance" and ok and message.endswith("SqliteRunStorage answers")
