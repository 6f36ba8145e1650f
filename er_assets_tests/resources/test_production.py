"""The production resources: built from the environment, lazily, without secrets in sight."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from er_assets.config import load_config
from er_assets.resources.entity_resolution import AwsEntityResolution
from er_assets.resources.object_store import S3ObjectStore
from er_assets.resources.production import missing_variables, production_resources
from er_assets.resources.warehouses.snowflake import SnowflakeWarehouse

ENV = {
    "SNOWFLAKE_ACCOUNT": "acme-prod",
    "SNOWFLAKE_USER": "ER_SERVICE",
    "SNOWFLAKE_WAREHOUSE": "ER_WH",
    "SNOWFLAKE_DATABASE": "ER",
    "SNOWFLAKE_SCHEMA": "PUBLIC",
    "SNOWFLAKE_STAGE": "ER.PUBLIC.ER_STAGE",
    "SNOWFLAKE_STAGE_URL": "s3://er-data-lake/",
}
AUTH = (
    "SNOWFLAKE_PASSWORD",
    "SNOWFLAKE_PRIVATE_KEY",
    "SNOWFLAKE_PRIVATE_KEY_PATH",
    "SNOWFLAKE_PRIVATE_KEY_PASSWORD",
    "SNOWFLAKE_ROLE",
    "ER_AWS_REGION",
    "AWS_PROFILE",
)


@pytest.fixture
def env(monkeypatch):
    for name in AUTH:
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def resolved(resource):
    with resource.process_config_and_initialize_cm() as ready:
        return ready


def test_password_auth_and_env_vars_resolved_only_at_run_start(env):
    env.setenv("SNOWFLAKE_PASSWORD", "s3cret")
    resources = production_resources(load_config())
    assert set(resources) == {"warehouse", "object_store", "entity_resolution"}
    warehouse = resources["warehouse"]
    assert isinstance(warehouse, SnowflakeWarehouse)
    assert isinstance(resources["object_store"], S3ObjectStore)
    assert isinstance(resources["entity_resolution"], AwsEntityResolution)
    # Until a run starts, the fields hold the variables' names, not their values.
    assert isinstance(warehouse.password, dg.EnvVar) and warehouse.password == "SNOWFLAKE_PASSWORD"
    assert "s3cret" not in repr(resources)

    ready = resolved(warehouse)
    assert (ready.account, ready.password, ready.private_key_path, ready.role) == ("acme-prod", "s3cret", None, None)
    assert (
        ready.location("s3://er-data-lake/p/extract/partition=2024-01-01/")
        == "@ER.PUBLIC.ER_STAGE/p/extract/partition=2024-01-01/"
    )
    assert ready.object_store.region_name == "us-east-1"  # settings.region of the configuration


def test_key_pair_auth_wins_and_region_overrides(env):
    env.setenv("SNOWFLAKE_PRIVATE_KEY_PATH", "/etc/er/rsa_key.p8")
    env.setenv("SNOWFLAKE_PRIVATE_KEY_PASSWORD", "passphrase")
    env.setenv("SNOWFLAKE_PASSWORD", "ignored")
    env.setenv("SNOWFLAKE_ROLE", "ER_PIPELINE")
    env.setenv("ER_AWS_REGION", "eu-west-1")
    resources = production_resources(load_config())
    ready = resolved(resources["warehouse"])
    assert (ready.password, ready.private_key_path, ready.private_key_password, ready.role) == (
        None,
        "/etc/er/rsa_key.p8",
        "passphrase",
        "ER_PIPELINE",
    )
    assert resolved(resources["entity_resolution"]).region_name == "eu-west-1"
    assert missing_variables() == []


def test_missing_variables_names_them(env):
    env.delenv("SNOWFLAKE_STAGE_URL")
    assert missing_variables() == [
        "SNOWFLAKE_STAGE_URL",
        "SNOWFLAKE_PRIVATE_KEY_PATH or SNOWFLAKE_PRIVATE_KEY or SNOWFLAKE_PASSWORD",
    ]


def test_loading_production_definitions_imports_no_snowflake_and_connects_nowhere(tmp_path):
    # A fresh interpreter: this test process may have imported the connector already. No
    # Snowflake variable is set at all, so any attempt to resolve or connect would fail.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "AWS_"))}
    env.update({"ER_DEPLOYMENT": "production", "DAGSTER_HOME": str(tmp_path)})
    code = (
        "import json, sys\n"
        "from er_assets.config import load_config\n"
        "from er_assets.defs.definitions import build_definitions\n"
        "defs = build_definitions(load_config())\n"
        "defs.get_repository_def().get_all_jobs()\n"
        "print(json.dumps({'resources': sorted(defs.resources),"
        " 'imported': sorted(m for m in sys.modules if m.startswith(('dagster_snowflake', 'snowflake.')))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"entity_resolution", "object_store", "warehouse"} <= set(report["resources"])
    assert report["imported"] == []


class _Connected(Exception):
    """Raised by the stand-in connect: the arguments were captured, no network is touched."""


@pytest.fixture(scope="module")
def rsa_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()
    return der, pem, encrypted


@pytest.mark.parametrize("form", ["pem", "pem with escaped newlines", "base64", "file", "encrypted pem"])
def test_private_key_as_pem_text_base64_or_file_reaches_the_connector(env, rsa_key, form, tmp_path, monkeypatch):
    """Every documented form of SNOWFLAKE_PRIVATE_KEY(_PATH) is loaded by dagster-snowflake into
    the key the connector is given."""
    import base64

    import snowflake.connector

    der, pem, encrypted = rsa_key
    if form == "file":
        (tmp_path / "rsa_key.p8").write_text(pem)
        env.setenv("SNOWFLAKE_PRIVATE_KEY_PATH", str(tmp_path / "rsa_key.p8"))
    else:
        value = {
            "pem": pem,
            "pem with escaped newlines": pem.replace("\n", "\\n"),
            "base64": base64.b64encode(pem.encode()).decode(),
            "encrypted pem": encrypted,
        }[form]
        env.setenv("SNOWFLAKE_PRIVATE_KEY", value)
        if form == "encrypted pem":
            env.setenv("SNOWFLAKE_PRIVATE_KEY_PASSWORD", "passphrase")
    captured = {}

    def connect(**kwargs):
        captured.update(kwargs)
        raise _Connected()

    monkeypatch.setattr(snowflake.connector, "connect", connect)
    warehouse = resolved(production_resources(load_config())["warehouse"])
    with pytest.raises(_Connected), warehouse.connect():
        pass
    assert captured["private_key"] == der and "password" not in captured


def test_a_key_that_is_no_key_fails_without_showing_it(env):
    env.setenv("SNOWFLAKE_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\\nnot-a-key-s3cret\\n-----END PRIVATE KEY-----")
    warehouse = resolved(production_resources(load_config())["warehouse"])
    with pytest.raises(ValueError, match="Unable to load private key") as failure, warehouse.connect():
        pass
    assert "s3cret" not in str(failure.value)


def test_doctor_probes_with_one_retry_where_stages_keep_their_full_back_off(env, monkeypatch):
    from er_assets.ops import doctor
    from er_assets.resources.entity_resolution import RETRY_CONFIG

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # past the credential check
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "testing")
    seen = {}
    monkeypatch.setattr(doctor, "initialised", lambda resources: seen.update(resources) or _refuse())
    with pytest.raises(ConnectionAbortedError):
        doctor.run_doctor(load_config(), "production")

    def attempts(resources) -> dict:
        er, glue = resources["entity_resolution"].clients()
        s3 = resources["object_store"].client()
        return {
            name: c.meta.config.retries["total_max_attempts"] for name, c in (("er", er), ("glue", glue), ("s3", s3))
        }

    probe = doctor.PROBE_RETRIES + 1  # the first attempt and the retries
    assert attempts(seen) == {"er": probe, "glue": probe, "s3": probe}
    assert seen["warehouse"].object_store is seen["object_store"]
    full = RETRY_CONFIG["max_attempts"] + 1
    assert attempts(production_resources(load_config())) == {"er": full, "glue": full, "s3": full}


def _refuse():
    raise ConnectionAbortedError  # stop the doctor before it reaches any service
