"""Helpers shared by test modules: paths, configuration copies, seeding, in-process stage runs,
the fakesnow Snowflake warehouse, the emulator's request builders, a fake clock, an SMTP inbox.

Plain functions and classes only: fixtures shared across folders live in conftest.py (pytest
fixtures must not be imported across modules), and no test module imports another.
"""

from __future__ import annotations

import csv
import email
import re
import socket
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from botocore.session import Session

from er_assets import layout
from er_assets.config import DEFAULT_CONFIG_PATH
from er_assets.emulator.matching import run_matching
from er_assets.ops.sample_data import seed_partition
from er_assets.resources.object_store import LocalObjectStore
from er_assets.resources.warehouses import snowflake as sf

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
DATA = TESTS / "data"  # golden JIL and broken files
JIL_CORPUS = TESTS / "jil" / "corpus"  # JIL files with hand-checked expectations
JIL_LINT = TESTS / "jil" / "lint"  # one JIL file per lint rule
ML_EXAMPLE = REPO / "er_assets" / "domains.ml-example.yaml"
DEFINITIONS_SNAPSHOT = DATA / "definitions.snapshot.txt"  # written by defs/test_definitions_snapshot.py
# The production Dagster instance as documented; its compute logs go to this (moto) bucket.
DOCS_DAGSTER_YAML = REPO / "docs" / "dagster.yaml"
LOG_BUCKET = "er-dagster-logs"


# --- the local deployment -------------------------------------------------------------------


def run_stages(config, instance, domain: str, stages, partition: str, run_config=None):
    """Materialise `stages` of `domain` for one partition in this process; a matched stage
    polls every second (the emulator's jobs take about that)."""
    import dagster as dg

    from er_assets.defs.definitions import build_definitions

    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    if run_config is None and "matched" in stages:
        run_config = {"ops": {f"{domain}__matched": {"config": {"check_interval": 1}}}}
    return job.execute_in_process(
        instance=instance,
        partition_key=partition,
        raise_on_error=False,
        run_config=run_config,
        asset_selection=[dg.AssetKey([domain, s]) for s in stages],
    )


def write_config(tmp_path: Path, mutate) -> Path:
    """A copy of the shipped configuration changed by `mutate(raw_dict)`."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    mutate(raw)
    path = tmp_path / "domains.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def seed(domain, partition: str, records: int, data_dir: Path) -> None:
    """`records` sample rows of `domain` for `partition` in the local warehouse under `data_dir`."""
    seed_partition(domain, partition, records, data_dir / "warehouse.duckdb")


def local_sql(statement: str) -> None:
    """Run one statement on the local deployment's DuckDB warehouse (ER_DATA_DIR's)."""
    import duckdb

    from er_assets.environment import local_paths

    con = duckdb.connect(str(local_paths()["warehouse"]))
    try:
        con.execute(statement)
    finally:
        con.close()


def sample_rows(domain, partition: str, records: int) -> list[dict]:
    """The sample-data generator's records for the partition, built in a scratch DuckDB."""
    import duckdb

    from er_assets.ops.sample_data import seed_source
    from er_assets.partitions import business_dates

    start, end = business_dates(domain, partition)
    con = duckdb.connect()
    try:
        seed_source(con, domain, start, end, records)
        cursor = con.execute(f'SELECT * FROM "{domain.source.table}"')
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        con.close()


# --- Snowflake through fakesnow --------------------------------------------------------------


BUCKET = "er-data-lake"
STAGE = "ER_STAGE"


class FakesnowWarehouse(sf.SnowflakeWarehouse):
    """Test only: the Snowflake warehouse with the statements fakesnow cannot run replaced.

    fakesnow has no COPY INTO @stage (unload), so `_unload` runs the very same SELECT through
    fakesnow (the slice's, and the registry's context query) and writes its rows as parquet where
    Snowflake would, under the folder the stage points at, named as Snowflake names them (the
    path's file name prefix, else `data_`, then `0_0_0.snappy.parquet`).
    Nor can it query staged files, so `_output_counts` counts the stage folder with DuckDB, as
    Snowflake would count it (context records left out), and `_fill_context` reads the context
    files' ids with pyarrow and inserts them through fakesnow: straight from the folder, not
    through the object store, so nothing of it counts as read by the orchestrator. Every other
    statement, the profile query, the load and the registry's SQL included, is the production
    one; the replaced ones are pinned and parsed in test_snowflake.py.
    fakesnow also refuses COPY's PATTERN option: the connection drops that one clause (pinned
    in `test_load_statement_snapshot_and_parse`), everything else reaches fakesnow as written.
    """

    stage_root: str

    @contextmanager
    def connect(self):
        with super().connect() as conn:
            yield _WithoutPattern(conn)

    def _folder(self, location: str) -> Path:
        return Path(self.stage_root) / location.split("/", 1)[1]

    def _output_header(self, cursor, domain, output: str) -> list[str]:
        cursor.execute(sf.output_format_sql())  # this one fakesnow runs
        files = [f for f in sorted(self._folder(output).rglob("*")) if f.is_file() and layout.is_data_file(f.name)]
        if not files:
            return []
        with open(files[0], newline="") as handle:
            return next(csv.reader(handle), [])

    def _output_counts(self, cursor, domain, output: str, errors: str, threshold, context: str = ""):
        from er_assets.resources.warehouses.local import (
            confidence_summary,
            context_files,
            error_records,
            match_counts,
        )

        cursor.execute(sf.output_format_sql())  # this one fakesnow runs
        folder = self._folder(output)
        files = context_files(self._folder(context)) if context else []
        confidence = (
            None if threshold is None else confidence_summary(folder, threshold, files, domain.schema.unique_id)
        )
        if context:
            cursor.execute(sf.parquet_format_sql())  # so does this one
            counts = match_counts(folder, files, domain.schema.unique_id)
        else:
            counts = match_counts(folder)
        return counts, error_records(self._folder(errors)), confidence

    def _fill_context(self, cursor, domain, context: str, extract_uri: str) -> None:
        """`sf.fill_context_sql`'s rows: the distinct non-NULL unique ids of the extract's context
        files, read from the stage folder and inserted through fakesnow."""
        if not self._context_files(extract_uri):
            return
        cursor.execute(sf.parquet_format_sql())  # this one fakesnow runs
        folder = self._folder(self.location(extract_uri))
        ids = {
            value
            for f in sorted(folder.iterdir())
            if re.fullmatch(layout.CONTEXT_FILE_PATTERN, f.name)
            for value in pq.read_table(f).column(domain.schema.unique_id).to_pylist()
            if value is not None
        }
        if ids:
            cursor.executemany(
                f"INSERT INTO {sf.ident(context)} (RECORD_ID) VALUES (%(id)s)", [{"id": i} for i in sorted(ids)]
            )

    def _unload(self, cursor, location: str, select: str, params: dict) -> int:
        cursor.execute(select, params)
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        directory, _, prefix = location.rpartition("/")
        folder = self._folder(directory + "/")
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table({n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)})
        pq.write_table(table, folder / f"{prefix or 'data_'}0_0_0.snappy.parquet")  # Snowflake's part naming
        return len(rows)


PATTERN_CLAUSE = f" PATTERN = '{layout.DATA_FILE_PATTERN}'"


class _WithoutPattern:
    """A fakesnow connection whose cursors execute COPY without the PATTERN clause."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def cursor(self):
        cursor = self._inner.cursor()
        execute = cursor.execute
        cursor.execute = lambda sql, *args, **kwargs: execute(sql.replace(PATTERN_CLAUSE, ""), *args, **kwargs)
        return cursor


@contextmanager
def fake_snowflake(objects_root: Path, stage_url: str | None = None):
    """fakesnow patched in, with the external stage created on the local bucket folder."""
    import fakesnow
    import snowflake.connector

    with fakesnow.patch():
        conn = snowflake.connector.connect(database="ER", schema="PUBLIC")
        url = stage_url or f"file://{objects_root / BUCKET}/"
        conn.cursor().execute(f"CREATE STAGE {STAGE} URL = '{url}'")
        yield conn
        conn.close()


def warehouse(objects_root: Path, cls: type = FakesnowWarehouse) -> FakesnowWarehouse:
    return cls(
        account="test",
        user="tester",
        password="not-a-secret",
        warehouse="WH",
        database="ER",
        schema_name="PUBLIC",
        stage=STAGE,
        stage_url=f"s3://{BUCKET}/",
        object_store=LocalObjectStore(root=str(objects_root)),
        stage_root=str(objects_root / BUCKET),
    )


def create_source(conn, domain, rows: list[dict]) -> None:
    columns = domain.schema.columns + [domain.source.partition_column]
    cursor = conn.cursor()
    body = ", ".join(f"{sf.ident(c)} VARCHAR" for c in domain.schema.columns)
    cursor.execute(
        f"CREATE TABLE {sf.ident(domain.source.table)} ({body}, {sf.ident(domain.source.partition_column)} DATE)"
    )
    if rows:
        names = ", ".join(sf.ident(c) for c in columns)
        values = ", ".join(f"%({c})s" for c in columns)
        cursor.executemany(
            f"INSERT INTO {sf.ident(domain.source.table)} ({names}) VALUES ({values})",
            [{c: r.get(c) for c in columns} for r in rows],
        )


# --- Entity Resolution: botocore's model, the emulator's matching engine -------------------


MODEL = Session().get_service_model("entityresolution")


def check_patterns(value, shape, path="") -> list[str]:
    """botocore validates types and required members, not patterns or enums: check those too."""
    problems = []
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                problems += check_patterns(value[name], member, f"{path}.{name}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            problems += check_patterns(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "string":
        pattern, enum = shape.metadata.get("pattern"), shape.enum
        if pattern and not re.fullmatch(pattern, value):
            problems.append(f"{path}={value!r} !~ {pattern}")
        if enum and value not in enum:
            problems.append(f"{path}={value!r} not in {enum}")
    return problems


ARN = "arn:aws:glue:us-east-1:123456789012:table/db/people"


def schema(*fields: dict) -> dict:
    return {"schemaName": "people", "mappedInputFields": [{"fieldName": "id", "type": "UNIQUE_ID"}, *fields]}


def field(name: str, type_: str, key: str | None = None, group: str | None = None) -> dict:
    out = {"fieldName": name, "type": type_}
    if key:
        out["matchKey"] = key
    if group:
        out["groupName"] = group
    return out


def workflow(
    sch: dict, *, rules=None, conditions=None, model="ONE_TO_ONE", transitive=False, normalize=True, hashed=()
) -> dict:
    if rules is not None:
        techniques = {
            "resolutionType": "RULE_MATCHING",
            "ruleBasedProperties": {
                "attributeMatchingModel": model,
                "rules": [{"ruleName": name, "matchingKeys": keys} for name, keys in rules],
            },
        }
    else:
        props = {"rules": [{"ruleName": name, "condition": cond} for name, cond in conditions]}
        if transitive:
            props["matchingConfig"] = {"enableTransitiveMatching": True}
        techniques = {"resolutionType": "RULE_MATCHING", "ruleConditionProperties": props}
    names = [f["fieldName"] for f in sch["mappedInputFields"]]
    return {
        "workflowName": "wf",
        "inputSourceConfig": [{"inputSourceARN": ARN, "schemaName": "people", "applyNormalization": normalize}],
        "outputSourceConfig": [
            {
                "outputS3Path": "s3://bucket/out",
                "applyNormalization": False,
                "output": [{"name": n, "hashed": n in hashed} for n in names],
            }
        ],
        "resolutionTechniques": techniques,
    }


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_folder(folder: Path) -> list[dict]:
    rows = []
    for part in sorted(folder.glob("*.csv")):
        with part.open(newline="") as fh:
            rows.extend(csv.DictReader(fh))
    return rows


def run_match(tmp_path: Path, sch: dict, wf: dict, header: list[str], rows: list[tuple], **kwargs):
    """Run a job; return (metrics, {RecordId: row}, error rows)."""
    source = write_csv(tmp_path / "input.csv", header, rows)
    job = tmp_path / "out" / "wf" / "job"
    metrics = run_matching(source, sch, wf, job, "job", **kwargs)
    success = {row["RecordId"]: row for row in read_folder(job / "success")}
    return metrics, success, read_folder(job / "error")


def groups(success: dict) -> set[frozenset]:
    by_id: dict[str, set] = {}
    for record, row in success.items():
        by_id.setdefault(row["MatchID"], set()).add(record)
    return {frozenset(g) for g in by_id.values()}


def grouping(*groups_: str) -> set[frozenset]:
    return {frozenset(g.split()) for g in groups_}


# --- the matching job's clock, the doctor's checks, the bridge's jil subcommands ------------


class Clock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self):
        return self.now


def by_name(checks):
    return {name: (ok, message) for name, ok, message in checks}


def run_jil_cli(*argv: str) -> int:
    """The jil subcommands through a bare argparse parser, as the main CLI mounts them."""
    import argparse

    from autosys_bridge import jil_cli

    parser = argparse.ArgumentParser(prog="autosys-bridge")
    jil_cli.add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# --- mail ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        return [
            (sorted(e.rcpt_tos), email.message_from_bytes(e.content, policy=policy.default)) for e in self.envelopes
        ]


# --- entity identity: records with known truth over several partitions ----------------------


def returning_customers(
    partitions: list[str], per_partition: int, returning: float = 0.3, seed: int = 1, glue: int = 0
) -> list[dict]:
    """Customer records with their true entity (`truth`, not a schema field) over `partitions`
    (one date each): per partition, a share `returning` of records re-describe an entity of an
    earlier partition and a tenth repeat one of the same partition, each with one of the
    variations the rules must see through (a new email, a re-formatted phone, a changed case),
    so a record often links to its entity by one rule only. `glue` records of the last
    partition get the placeholder email noemail@example.com."""
    import random

    rnd = random.Random(seed)
    firsts = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Gus", "Hana", "Ivo", "Jae", "Kofi", "Lena"]
    lasts = ["Abe", "Brandt", "Costa", "Dahl", "Eze", "Fink", "Gallo", "Holm", "Ito", "Jung", "Kerr", "Lund"]
    entities: list[dict] = []
    rows: list[dict] = []
    for index, partition in enumerate(partitions):
        seen_before = len(entities)
        for n in range(per_partition):
            roll = rnd.random()
            if seen_before and roll < returning:
                entity = entities[rnd.randrange(seen_before)]
            elif len(entities) > seen_before and roll > 0.9:
                entity = entities[rnd.randrange(seen_before, len(entities))]
            else:
                e = len(entities)
                first, last = rnd.choice(firsts), rnd.choice(lasts)
                entity = {
                    "truth": f"T{e}",
                    "first_name": first,
                    "last_name": f"{last}{e}",
                    "email": f"{first}.{last}{e}@example.com".lower(),
                    "phone": f"555{e:07d}",
                    "address": f"{e} Main St",
                    "city": "Springfield",
                    "state": "IL",
                    "postal_code": "62701",
                }
                entities.append(entity)
                rows.append({**entity, "customer_id": f"C{index:02d}{n:05d}", "load_date": partition})
                continue
            record = dict(entity)
            variation = rnd.randrange(3)
            if variation == 0:
                record["email"] = f"other{rnd.randrange(10**6)}@example.net"
            elif variation == 1:
                p = record["phone"]
                record["phone"] = f"({p[:3]}) {p[3:6]}-{p[6:]}"
                record["email"] = record["email"].upper()
            else:
                record["address"] = f"PO Box {rnd.randrange(10**5)}"
            rows.append({**record, "customer_id": f"C{index:02d}{n:05d}", "load_date": partition})
    for row in [r for r in rows if r["load_date"] == partitions[-1]][:glue]:
        row["email"] = "noemail@example.com"
    return rows


def write_source(domain, rows: list[dict], data_dir: Path) -> None:
    """Replace the domain's source table in the local warehouse under `data_dir` with `rows`
    (schema fields, the partition column as an ISO date, and any other column kept)."""
    import duckdb

    table = pa.Table.from_pylist(rows)
    data_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(data_dir / "warehouse.duckdb"))
    try:
        part = domain.source.partition_column
        con.register("incoming", table)
        con.execute(
            f'CREATE OR REPLACE TABLE "{domain.source.table}" AS '
            f'SELECT * REPLACE (CAST("{part}" AS DATE) AS "{part}") FROM incoming'
        )
    finally:
        con.close()


# --- CloudWatch (moto): what the stage ends published -----------------------------------------


def metric_values(client, name: str, stat: str = "Sum", **dimensions: str) -> list[float]:
    """The values of one metric of the pipeline's default namespace over the last day, one per
    minute that has data, read back with GetMetricData (a metric whose dimensions are not
    exactly these is another metric: CloudWatch does not aggregate across dimensions)."""
    import datetime as dt

    from er_assets.resources import metrics

    now = dt.datetime.now(dt.UTC)
    metric = {
        "Namespace": metrics.DEFAULT_NAMESPACE,
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions.items()],
    }
    answer = client.get_metric_data(
        MetricDataQueries=[{"Id": "m", "MetricStat": {"Metric": metric, "Period": 60, "Stat": stat}}],
        StartTime=now - dt.timedelta(days=1),
        EndTime=now + dt.timedelta(minutes=5),
    )
    return answer["MetricDataResults"][0]["Values"]
