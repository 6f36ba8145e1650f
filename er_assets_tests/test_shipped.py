"""The production install as a user gets it: the wheel built from this tree, installed with
the `production` extra alone into a fresh virtualenv (none of the test or ml extras), run
there through its own console script. A module importing a dependency that the extra
lacks, or a code path that only the test environment can run, fails here.

What needs no account runs: every module imported; a domain's stages through the bridge
with the Dagster instance as docs/dagster.yaml documents it (Postgres, compute logs in S3)
and the job history on the same server; the report; `doctor --deployment production` with
S3 and Glue on a moto server, which passes their checks and names what it cannot reach.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from er_assets import exit_codes
from er_assets.history import HistoryStore, Status
from er_assets.history.schema import LATEST
from er_assets_tests.helpers import REPO, seed

pytest_plugins = ["er_assets_tests.postgres"]

PARTITION = "2026-11-28"

IMPORT_EVERYTHING = """
import importlib, pkgutil, sys
import autosys_bridge, er_assets
failed = []
for package in (er_assets, autosys_bridge):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:
            failed.append(f"{module.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """The bin folder of a virtualenv holding the wheel and its production extra, nothing else."""
    root = tmp_path_factory.mktemp("shipped")
    pip = ["-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([sys.executable, *pip, "wheel", "--no-deps", "-w", str(root / "dist"), str(REPO)], check=True)
    (wheel,) = (root / "dist").glob("er_pipelines-*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True)
    bin_ = root / "venv" / "bin"
    # --no-compile: the same files installed; Python compiles what is imported when it is
    # imported, instead of pip compiling all of Dagster, boto3 and Snowflake's connector up
    # front (half the install's time).
    subprocess.run([str(bin_ / "python"), *pip, "install", "--no-compile", f"{wheel}[production]"], check=True)
    return bin_


def users_environment() -> dict:
    """This process's environment, as on a user's machine: Python keeps the bytecode it compiles
    (pip compiled none here). A PYTHONDONTWRITEBYTECODE inherited from the test runner would
    make every command compile Dagster, boto3 and Snowflake's connector from source again:
    measured, the domain's run and `doctor` took 26 s of CPU so, 18 s without."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def run(bin_: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # Started from a folder outside the checkout, so nothing is imported from the tree itself.
    return subprocess.run(
        [str(bin_ / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        cwd=bin_.parent,
        env={**users_environment(), **(env or {})},
        timeout=600,
    )


def test_the_install_holds_no_test_or_ml_dependency(shipped):
    listed = run(shipped, "python", "-m", "pip", "list", "--format=freeze").stdout.lower()
    for extra_only in ("pytest", "moto", "fakesnow", "splink", "selenium"):
        assert f"\n{extra_only}==" not in f"\n{listed}", extra_only
    imported = run(shipped, "python", "-c", IMPORT_EVERYTHING)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert run(shipped, "python", "-c", "import er_assets_tests").returncode != 0  # the suite is not shipped
    location = run(shipped, "python", "-c", "import er_assets; print(er_assets.__file__)").stdout
    assert str(shipped.parent) in location  # the installed wheel, not the checkout


def test_a_domain_runs_on_the_documented_postgres_instance(shipped, config, local_env, postgres_home, tmp_path):
    seed(config.domain("customers"), PARTITION, 300, local_env)
    done = run(shipped, "autosys-bridge", "run", "customers", "all", "--date", PARTITION, "--check-interval", "1")
    assert done.returncode == exit_codes.OK, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    with HistoryStore.from_env() as history:
        rows = {row.stage: row for row in history.rows()}
    assert {stage: row.status for stage, row in rows.items()} == {
        "extract": Status.SUCCEEDED,
        "matched": Status.SUCCEEDED,
        "loaded": Status.SUCCEEDED,
    }
    assert rows["loaded"].record_count == 300

    page = tmp_path / "report.html"
    report = run(shipped, "autosys-bridge", "report", "--output", str(page))
    assert report.returncode == exit_codes.OK, report.stderr[-3000:]
    assert "customers" in page.read_text()


def test_doctor_in_production_passes_what_it_reaches(shipped, config, postgres_home, moto_s3):
    import boto3

    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    boto3.client("s3").create_bucket(Bucket="er-data-lake")
    boto3.client("glue", endpoint_url=endpoint).create_database(DatabaseInput={"Name": config.settings.glue_database})
    env = {
        "ER_DEPLOYMENT": "production",
        "AWS_ENDPOINT_URL_GLUE": endpoint,
        # moto has no Entity Resolution: a closed port answers at once
        "AWS_ENDPOINT_URL_ENTITYRESOLUTION": "http://127.0.0.1:9",
        "SNOWFLAKE_ACCOUNT": "acme-prod",
        "SNOWFLAKE_USER": "ER_SERVICE",
        "SNOWFLAKE_PASSWORD": "never-printed",
        "SNOWFLAKE_WAREHOUSE": "ER_WH",
        "SNOWFLAKE_DATABASE": "ER",
        "SNOWFLAKE_SCHEMA": "PUBLIC",
        "SNOWFLAKE_STAGE": "ER_STAGE",
        "SNOWFLAKE_STAGE_URL": "s3://er-data-lake/",
    }
    done = run(shipped, "autosys-bridge", "doctor", "--deployment", "production", env=env)
    assert done.returncode == exit_codes.SERVICE_UNAVAILABLE, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr and "never-printed" not in done.stdout
    checks = {m[2]: (m[1], m[3]) for m in re.finditer(r"^(ok|FAIL) +(.+?) {2,}(.*)$", done.stdout, re.M)}
    assert checks["job history"] == ("ok", f"postgresql, empty: the first stage creates the schema (version {LATEST})")
    assert checks["dagster instance"][0] == "ok" and checks["dagster instance"][1].endswith(
        "PostgresRunStorage answers"
    )
    assert checks["customers: bucket"] == (
        "ok",
        "s3://er-data-lake/entity-resolution/customers/ is readable (0 objects)",
    )
    # Glue answered (moto): the table is the one thing missing. Snowflake and Entity
    # Resolution are out of reach, each said in one line.
    assert checks["customers: glue table"] == ("FAIL", "EntityNotFoundException: Table customers_input not found.")
    assert (
        checks["customers: warehouse"][0] == "FAIL"
        and "Could not connect to Snowflake" in checks["customers: warehouse"][1]
    )
    assert (
        checks["customers: matching workflow"][0] == "FAIL"
        and "Could not connect" in checks["customers: matching workflow"][1]
    )
