"""The production object store and the Glue re-pointing against moto's S3 and Glue."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from er_assets.errors import ServiceUnavailable
from er_assets.pipeline.matching_job import point_glue_table
from er_assets.resources.object_store import S3ObjectStore, bytes_read

REGION = "us-east-1"
BUCKET = "er-data-lake"
PREFIX = "entity-resolution/customers/extract/partition=2024-03-05/"


@pytest.fixture
def aws(monkeypatch):
    # Fake credentials, so nothing on this machine can reach a real account.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        yield s3


def test_list_and_delete(aws):
    store = S3ObjectStore(region_name=REGION)
    keys = [f"{PREFIX}data_0_0_{i}.snappy.parquet" for i in range(3)] + [f"{PREFIX}nested/part.csv"]
    for key in keys:
        aws.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    neighbour = "entity-resolution/customers/extract/partition=2024-03-06/data_0_0_0.snappy.parquet"
    aws.put_object(Bucket=BUCKET, Key=neighbour, Body=b"other day")

    uri = f"s3://{BUCKET}/{PREFIX}"
    assert store.list_files(uri) == sorted(f"s3://{BUCKET}/{k}" for k in keys)

    assert store.delete_prefix(uri) == 4
    assert store.list_files(uri) == []
    assert store.list_files(f"s3://{BUCKET}/{neighbour}") == [f"s3://{BUCKET}/{neighbour}"]
    assert store.delete_prefix(uri) == 0


def test_delete_prefix_beyond_one_delete_objects_batch(aws):
    store = S3ObjectStore(region_name=REGION)
    for i in range(1003):  # DeleteObjects takes at most 1000 keys per call
        aws.put_object(Bucket=BUCKET, Key=f"{PREFIX}{i:05d}.parquet", Body=b"")
    assert store.delete_prefix(f"s3://{BUCKET}/{PREFIX}") == 1003
    assert aws.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["KeyCount"] == 0


def test_what_s3_sends_is_counted_as_read_and_listing_reads_nothing(aws):
    key = "entity-resolution/customers/output/wf/job/success/part-00000.csv"
    aws.put_object(Bucket=BUCKET, Key=key, Body=b"InputSourceARN,RecordId,MatchID\n" + b"a,b,c\n" * 200_000)
    store = S3ObjectStore(region_name=REGION)
    before = bytes_read()
    store.list_files(f"s3://{BUCKET}/entity-resolution/")
    assert bytes_read() == before
    store.client().get_object(Bucket=BUCKET, Key=key, Range="bytes=0-1023")["Body"].read()
    assert bytes_read() - before == 1024  # the ranged GET, not the 1.2 MB object


def _glue_table(glue, location: str) -> None:
    glue.create_database(DatabaseInput={"Name": "entity_resolution"})
    glue.create_table(
        DatabaseName="entity_resolution",
        TableInput={
            "Name": "customers_input",
            "Description": "customers extract",
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet"},
            "StorageDescriptor": {
                "Columns": [{"Name": "customer_id", "Type": "string"}, {"Name": "email", "Type": "string"}],
                "Location": location,
                "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
            },
        },
    )


def test_point_glue_table_moves_only_the_location(aws):
    glue = boto3.client("glue", region_name=REGION)
    _glue_table(glue, f"s3://{BUCKET}/entity-resolution/customers/extract/")
    target = f"s3://{BUCKET}/{PREFIX}"
    sent = []
    glue.meta.events.register("before-call.glue.UpdateTable", lambda params, **_: sent.append(params["body"]))

    point_glue_table(glue, "entity_resolution", "customers_input", target)

    # No archived version per job (moto keeps none either way, so the request itself is checked).
    [body] = sent
    assert b'"SkipArchive": true' in body

    table = glue.get_table(DatabaseName="entity_resolution", Name="customers_input")["Table"]
    assert table["StorageDescriptor"]["Location"] == target
    assert table["StorageDescriptor"]["Columns"] == [
        {"Name": "customer_id", "Type": "string"},
        {"Name": "email", "Type": "string"},
    ]
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert (table["Parameters"], table["TableType"], table["Description"]) == (
        {"classification": "parquet"},
        "EXTERNAL_TABLE",
        "customers extract",
    )


def test_point_glue_table_names_a_missing_table(aws):
    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": "entity_resolution"})
    with pytest.raises(ServiceUnavailable, match=r"Glue table entity_resolution\.customers_input"):
        point_glue_table(glue, "entity_resolution", "customers_input", f"s3://{BUCKET}/{PREFIX}")
