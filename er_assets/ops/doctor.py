"""`autosys-bridge doctor`: is everything the selected deployment needs there?

Each check is (name, ok, message) and the message says plainly what is missing and where,
so an operator can fix a new environment before AutoSys runs the first job. The checks use
the same resources the stages use, so they exercise the same credentials and permissions.

Only the standard library is imported at module level: the bridge CLI builds its parser from
here on every start-up.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import partial

from er_assets import exit_codes

Check = tuple[str, bool, str]
# botocore's retries per AWS call while probing: one, so an endpoint out of reach is named in
# seconds (the stages' eight back off for up to a minute per call).
PROBE_RETRIES = 1


def _first_line(exc: BaseException) -> str:
    """An error in one line: botocore and Snowflake messages run over several."""
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'error')}: {error.get('Message', '')}".strip()
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _attempt(name: str, probe: Callable[[], str]) -> Check:
    """Run one probe; its return value is the success message, any exception a failure."""
    try:
        return name, True, probe()
    except Exception as exc:  # a doctor reports every failure rather than stopping at the first
        from er_assets.redact import redact_text

        return name, False, redact_text(_first_line(exc))  # drivers echo connection strings


def credential_checks() -> list[Check]:
    """Production only: the environment holds what the resources resolve at run start."""
    import boto3

    from er_assets.resources.production import AWS_PROFILE_ENV, missing_variables

    missing = missing_variables()
    checks = [
        (
            "snowflake settings",
            not missing,
            "all set" if not missing else "missing environment variables: " + ", ".join(missing),
        )
    ]

    def aws() -> str:
        credentials = boto3.session.Session(profile_name=os.environ.get(AWS_PROFILE_ENV)).get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found (set AWS_PROFILE, AWS_ACCESS_KEY_ID or use an instance role)")
        return f"found ({credentials.method})"

    checks.append(_attempt("aws credentials", aws))
    return checks


@contextmanager
def initialised(resources: dict) -> Iterator[dict]:
    """The resources with their EnvVars resolved, as a run would see them; a resource that
    cannot be initialised maps to the exception instead."""
    with ExitStack() as stack:
        ready = {}
        for key, resource in resources.items():
            try:
                ready[key] = stack.enter_context(resource.process_config_and_initialize_cm())
            except Exception as exc:
                ready[key] = exc
        yield ready


def warehouse_checks(config, warehouse) -> list[Check]:
    from er_assets.resources.warehouses.snowflake import SnowflakeWarehouse

    checks = []
    for domain in config.domains.values():

        def ready(domain=domain) -> str:
            problems = warehouse.check_ready(domain)
            if problems:
                raise RuntimeError("; ".join(problems))
            return f"source table {domain.source.table} and staging area ready"

        checks.append(_attempt(f"{domain.name}: warehouse", ready))
        if isinstance(warehouse, SnowflakeWarehouse):

            def target(domain=domain) -> str:
                if warehouse.table_exists(domain.target.table):
                    return f"target table {domain.target.table.upper()} exists"
                return f"target table {domain.target.table.upper()} does not exist yet; the first load creates it"

            checks.append(_attempt(f"{domain.name}: target table", target))
            checks.append(_attempt(f"{domain.name}: stage writable", partial(warehouse.probe_stage_write, domain)))
    return checks


def bucket_checks(config, object_store) -> list[Check]:
    checks = []
    for domain in config.domains.values():

        def listable(domain=domain) -> str:
            files = object_store.list_files(f"s3://{domain.bucket}/{domain.prefix}/")
            return f"s3://{domain.bucket}/{domain.prefix}/ is readable ({len(files)} objects)"

        checks.append(_attempt(f"{domain.name}: bucket", listable))
    return checks


# Members the service manages, or that do not change what a job does.
UNCOMPARED = frozenset(
    {"createdAt", "updatedAt", "workflowArn", "schemaArn", "tags", "hasWorkflows", "description", "ResponseMetadata"}
)
# Lists whose items have a name: compared by name, so a reordered or missing item reads plainly.
LIST_KEYS = {"mappedInputFields": "fieldName", "rules": "ruleName", "output": "name"}
# What an absent member means to the service.
DEFAULTS = {"matchPurpose": "IDENTIFIER_GENERATION"}


def _absent(value) -> bool:
    return value is None or value is False or value == [] or value == {}


def differences(configured, live, path: str = "") -> list[str]:
    """Field by field, where the deployed definition `live` differs from `configured`."""
    if isinstance(configured, dict) and isinstance(live, dict):
        found = []
        for key in sorted(set(configured) | set(live), key=lambda k: (k not in configured, k)):
            if key in UNCOMPARED:
                continue
            mine, theirs = configured.get(key, DEFAULTS.get(key)), live.get(key, DEFAULTS.get(key))
            if _absent(mine) and _absent(theirs):
                continue
            found += differences(mine, theirs, f"{path}.{key}" if path else key)
        return found
    name = LIST_KEYS.get(path.rsplit(".", 1)[-1])
    if name and isinstance(configured, list) and isinstance(live, list):
        mine = {item.get(name): item for item in configured}
        theirs = {item.get(name): item for item in live}
        found = [f"{path}[{key}]: configured, not deployed" for key in mine if key not in theirs]
        found += [f"{path}[{key}]: deployed, not configured" for key in theirs if key not in mine]
        for key in (k for k in mine if k in theirs):
            found += differences(mine[key], theirs[key], f"{path}[{key}]")
        if not found and list(mine) != list(theirs) and name == "ruleName":
            found.append(f"{path}: deployed in the order {list(theirs)}, configured {list(mine)}")  # a waterfall
        return found
    if isinstance(configured, list) and isinstance(live, list) and len(configured) == len(live):
        return [d for i, (a, b) in enumerate(zip(configured, live)) for d in differences(a, b, f"{path}[{i}]")]
    if configured == live:
        return []
    if configured is None:
        return [f"{path}: deployed {live!r}, not configured"]
    if live is None:
        return [f"{path}: configured {configured!r}, not deployed"]
    return [f"{path}: deployed {live!r}, configured {configured!r}"]


def service_checks(config, entity_resolution) -> list[Check]:
    """Glue tables, schema mappings and matching workflows, compared with the configuration."""
    from er_assets.emulator.aws_shapes import matching_workflow_request, schema_mapping_request

    er, glue = entity_resolution.clients()
    database = config.settings.glue_database
    checks = []
    for domain in config.domains.values():

        def glue_table(domain=domain) -> str:
            table = glue.get_table(DatabaseName=database, Name=domain.glue_table)["Table"]
            columns = {c["Name"].lower() for c in table.get("StorageDescriptor", {}).get("Columns", [])}
            missing = [c for c in domain.schema.columns if c.lower() not in columns]
            if missing:
                raise RuntimeError(f"{database}.{domain.glue_table} lacks columns {missing} of the schema")
            return f"{database}.{domain.glue_table} at {table.get('StorageDescriptor', {}).get('Location', '?')}"

        def compare(what: str, configured: dict, live: dict) -> str:
            found = differences(configured, live)
            if found:
                raise RuntimeError(f"{what} differs from the configuration: " + "; ".join(found))
            return f"{what} matches the configuration"

        def schema(domain=domain) -> str:
            live = er.get_schema_mapping(schemaName=domain.schema.schemaName)
            return compare(
                f"schema mapping {domain.schema.schemaName}", schema_mapping_request(domain, config.settings), live
            )

        def workflow(domain=domain) -> str:
            live = er.get_matching_workflow(workflowName=domain.workflow_name)
            return compare(f"workflow {domain.workflow_name}", matching_workflow_request(domain, config.settings), live)

        checks.append(_attempt(f"{domain.name}: glue table", glue_table))
        checks.append(_attempt(f"{domain.name}: schema mapping", schema))
        checks.append(_attempt(f"{domain.name}: matching workflow", workflow))
    return checks


def model_checks(config) -> list[Check]:
    """Local only: the emulator runs ML_MATCHING domains with a model from the `ml` extra."""

    def model() -> str:
        from er_assets.emulator.ml import require

        require()
        return "the local ML_MATCHING model (splink) is installed"

    return [_attempt(f"{d.name}: ML model", model) for d in config.domains.values() if d.ml_matching]


def history_checks() -> list[Check]:
    """The job history database (ER_HISTORY_URL): reachable, and at the schema version this
    release writes. Only read: a stage migrates an older schema on first use, which needs
    CREATE and ALTER on it, so a database left behind is named here before a stage fails."""

    def history() -> str:
        from er_assets.history import schema
        from er_assets.history.store import HistoryStore

        store = HistoryStore.from_env()
        version = store.applied_version()
        if version > schema.LATEST:
            raise RuntimeError(
                f"schema at version {version}, newer than this release writes ({schema.LATEST}): upgrade er-pipelines"
            )
        if 0 < version < schema.LATEST:
            raise RuntimeError(
                f"schema at version {version}, this release writes version {schema.LATEST}: run one stage, or "
                "`autosys-bridge report`, as a user allowed CREATE and ALTER on it, which migrates it in place"
            )
        if version == 0:
            return f"{store.dialect.name}, empty: the first stage creates the schema (version {schema.LATEST})"
        return f"{store.dialect.name}, schema at version {version}"

    return [_attempt("job history", history)]


def instance_checks(deployment: str) -> list[Check]:
    """The Dagster instance every bridge records its runs in (DAGSTER_HOME): its storage
    answers. Production must name it: a default local instance would hide the runs of
    other hosts."""

    def storage() -> str:
        import dagster as dg

        if deployment == "production" and not os.environ.get("DAGSTER_HOME"):
            raise RuntimeError(
                "DAGSTER_HOME is not set: point it at the folder holding dagster.yaml (docs/dagster.yaml)"
            )
        if deployment != "production":
            from er_assets.defs.instance import ensure_dagster_home

            ensure_dagster_home()
        with dg.DagsterInstance.get() as instance:
            instance.get_runs(limit=1)
            return f"{os.environ['DAGSTER_HOME']}: {type(instance.run_storage).__name__} answers"

    return [_attempt("dagster instance", storage)]


def run_doctor(config, deployment: str, resources: dict | None = None) -> list[Check]:
    """Every check for `deployment` ("local" or "production"); `resources` overrides the
    deployment's own (tests)."""
    from er_assets.resources.local import local_resources
    from er_assets.resources.production import production_resources

    checks: list[Check] = [("configuration", True, f"{config.path}: {len(config.domains)} domains")]
    if deployment == "production":
        checks += credential_checks()
        if not all(ok for _, ok, _ in checks):
            # Without credentials every check below would fail for the same reason.
            return checks
    else:
        checks += model_checks(config)
    checks += history_checks() + instance_checks(deployment)
    if resources is None:
        resources = (
            production_resources(config, max_attempts=PROBE_RETRIES)
            if deployment == "production"
            else local_resources(config)
        )
    with initialised(resources) as ready:
        probes = (
            ("warehouse", warehouse_checks),
            ("object_store", bucket_checks),
            ("entity_resolution", service_checks),
        )
        for key, probe in probes:
            resource = ready[key]
            if isinstance(resource, Exception):
                checks.append((key, False, f"cannot be configured: {_first_line(resource)}"))
            else:
                checks.extend(probe(config, resource))
    return checks


def exit_code(checks: list[Check]) -> int:
    return exit_codes.OK if all(ok for _, ok, _ in checks) else exit_codes.SERVICE_UNAVAILABLE


def render(checks: list[Check]) -> str:
    width = max(len(name) for name, _, _ in checks)
    return "\n".join(f"{'ok  ' if ok else 'FAIL'}  {name:<{width}}  {message}" for name, ok, message in checks)


def cmd_doctor(args) -> int:
    from er_assets.config import ConfigError, load_config
    from er_assets.environment import DEPLOYMENTS, deployment

    try:
        config = load_config(args.config)
        selected = args.deployment or deployment()
        if selected not in DEPLOYMENTS:
            raise ValueError(f"--deployment {selected!r}: expected one of {', '.join(DEPLOYMENTS)}")
    except (ConfigError, ValueError) as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return exit_codes.USAGE
    checks = run_doctor(config, selected)
    print(f"deployment: {selected}")
    print(render(checks))
    failed = sum(1 for _, ok, _ in checks if not ok)
    print("all checks passed" if not failed else f"{failed} check(s) failed")
    return exit_code(checks)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """`doctor` for the bridge CLI: exit 0 when all is there, 5 (SERVICE_UNAVAILABLE) if not."""
    parser = subparsers.add_parser(
        "doctor",
        help="check that credentials, tables, stage, bucket, Glue tables and workflows exist",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--config", help="configuration file (default: $ER_CONFIG or the shipped domains.yaml)")
    # Validated when the command runs: importing er_assets.resources.deployment here would slow every
    # bridge start-up by the configuration's pydantic import.
    parser.add_argument("--deployment", help="local or production (default: $ER_DEPLOYMENT, else local)")
    parser.set_defaults(func=cmd_doctor)
    return parser
