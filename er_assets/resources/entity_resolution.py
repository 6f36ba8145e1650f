"""Entity Resolution and Glue clients: AWS in production, the local emulator otherwise.

Both resources hand out real boto3 clients, so the code that drives a matching job
(`er_assets.pipeline.matching_job`) is the same everywhere; the local one only attaches the emulator.
"""

from __future__ import annotations

from typing import TypedDict

import dagster as dg


class RetryConfig(TypedDict):
    mode: str
    max_attempts: int


# Throttling is retried by botocore itself ("standard" mode backs off with jitter).
RETRY_CONFIG: RetryConfig = {"mode": "standard", "max_attempts": 8}


class EntityResolutionResource(dg.ConfigurableResource):
    region_name: str = "us-east-1"
    # botocore's retries per call after the first attempt (its `max_attempts` key): a stage
    # rides out a transient fault; `doctor` probes with one, so an endpoint out of reach is
    # named in seconds, not minutes.
    max_attempts: int = RETRY_CONFIG["max_attempts"]

    def clients(self):
        """(entityresolution client, glue client)."""
        raise NotImplementedError


class AwsEntityResolution(EntityResolutionResource):
    profile_name: str | None = None

    def clients(self):
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(profile_name=self.profile_name, region_name=self.region_name)
        config = Config(retries={**RETRY_CONFIG, "max_attempts": self.max_attempts})
        return session.client("entityresolution", config=config), session.client("glue", config=config)


class LocalEntityResolution(EntityResolutionResource):
    """The emulator: job state under `state_root`, data in the local object store."""

    state_root: str
    objects_root: str
    config_path: str
    # Tests of the driver's own retries set max_attempts 0, so an injected fault
    # (ER_EMULATOR_FAULTS) reaches the driver without botocore's back-off sleeps.

    def clients(self):
        import boto3
        from botocore.config import Config

        from er_assets.config import load_config
        from er_assets.emulator.service import Emulator, attach

        emulator = Emulator(self.state_root, self.objects_root, load_config(self.config_path), self.region_name)
        # Static dummy credentials: requests are signed as usual but never leave the process.
        session = boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=self.region_name
        )
        config = Config(retries={**RETRY_CONFIG, "max_attempts": self.max_attempts})
        er, glue = session.client("entityresolution", config=config), session.client("glue", config=config)
        attach(er, emulator)
        attach(glue, emulator)
        return er, glue
