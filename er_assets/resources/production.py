"""The production deployment's resources: Snowflake, S3 and AWS Entity Resolution.

Everything comes from the environment through `dg.EnvVar`, which Dagster resolves when a run
starts: loading the definitions reads no secret, opens no connection and imports neither
`dagster_snowflake` nor the Snowflake connector. The UI and the run's config show the
variable's name, never its value. docs/production.md lists the variables and the set-up.
"""

from __future__ import annotations

import os

import dagster as dg

from er_assets.config import Configuration

# Required, whichever way Snowflake authenticates.
SNOWFLAKE_REQUIRED = (
    "SNOWFLAKE_ACCOUNT",
    "SNOWFLAKE_USER",
    "SNOWFLAKE_WAREHOUSE",
    "SNOWFLAKE_DATABASE",
    "SNOWFLAKE_SCHEMA",
    "SNOWFLAKE_STAGE",
    "SNOWFLAKE_STAGE_URL",
)
# One of these authenticates: a key pair (preferred for service users) or a password.
SNOWFLAKE_AUTH = ("SNOWFLAKE_PRIVATE_KEY_PATH", "SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PASSWORD")
# Overrides settings.region of the configuration; credentials come from boto3's own chain
# (AWS_PROFILE, AWS_ACCESS_KEY_ID/..., or the instance's role).
AWS_REGION_ENV = "ER_AWS_REGION"
AWS_PROFILE_ENV = "AWS_PROFILE"


def missing_variables() -> list[str]:
    """Environment variables the production resources need and do not have (names only)."""
    missing = [name for name in SNOWFLAKE_REQUIRED if not os.environ.get(name)]
    if not any(os.environ.get(name) for name in SNOWFLAKE_AUTH):
        missing.append(" or ".join(SNOWFLAKE_AUTH))
    return missing


def _snowflake_auth() -> dict:
    """The auth fields, as EnvVars, for the method whose variable is set (key pair first)."""
    for variable, field in (
        ("SNOWFLAKE_PRIVATE_KEY_PATH", "private_key_path"),
        ("SNOWFLAKE_PRIVATE_KEY", "private_key"),
    ):
        if os.environ.get(variable):
            auth = {field: dg.EnvVar(variable)}
            if os.environ.get("SNOWFLAKE_PRIVATE_KEY_PASSWORD"):
                auth["private_key_password"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSWORD")
            return auth
    # Without either key variable the password is required; an unset one fails at run start
    # with Dagster's message naming SNOWFLAKE_PASSWORD.
    return {"password": dg.EnvVar("SNOWFLAKE_PASSWORD")}


def _optional(variable: str) -> dg.EnvVar | None:
    return dg.EnvVar(variable) if os.environ.get(variable) else None


def production_resources(config: Configuration, max_attempts: int | None = None) -> dict:
    """The production resources; `max_attempts` (botocore's retries per AWS call) below the
    stages' default makes a probe (`doctor`) fail fast on an endpoint it cannot reach."""
    from er_assets.resources.entity_resolution import RETRY_CONFIG, AwsEntityResolution
    from er_assets.resources.object_store import S3ObjectStore
    from er_assets.resources.warehouses.snowflake import SnowflakeWarehouse

    region = _optional(AWS_REGION_ENV) or config.settings.region
    profile = _optional(AWS_PROFILE_ENV)
    attempts = RETRY_CONFIG["max_attempts"] if max_attempts is None else max_attempts
    object_store = S3ObjectStore(region_name=region, profile_name=profile, max_attempts=attempts)
    warehouse = SnowflakeWarehouse(
        account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
        user=dg.EnvVar("SNOWFLAKE_USER"),
        role=_optional("SNOWFLAKE_ROLE"),
        warehouse=dg.EnvVar("SNOWFLAKE_WAREHOUSE"),
        database=dg.EnvVar("SNOWFLAKE_DATABASE"),
        schema_name=dg.EnvVar("SNOWFLAKE_SCHEMA"),
        stage=dg.EnvVar("SNOWFLAKE_STAGE"),
        stage_url=dg.EnvVar("SNOWFLAKE_STAGE_URL"),
        object_store=object_store,
        **_snowflake_auth(),
    )
    return {
        "warehouse": warehouse,
        "object_store": object_store,
        "entity_resolution": AwsEntityResolution(region_name=region, profile_name=profile, max_attempts=attempts),
    }
