"""The job's output is found by listing under outputS3Path, in any layout the docs allow."""

import pytest

from er_assets.errors import MatchOutputMissing
from er_assets.resources.match_output import find_output
from er_assets.resources.object_store import LocalObjectStore
from er_assets.resources.warehouses.local import match_counts

JOB = "0123456789abcdef0123456789abcdef"
OUT = "s3://bucket/er/output"
HEADER = "InputSourceARN,RecordId,MatchID,MatchRule\n"


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(root=str(tmp_path))


def put(store, uri, text=HEADER + "arn,1,m1,r\narn,2,m1,r\n"):
    path = store.path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    "folder",
    [
        f"{OUT}/wf/{JOB}/success/",  # today's layout
        f"{OUT}/{JOB}/success/",  # no workflow folder
        f"{OUT}/wf/2026/12/01/{JOB}/success/",  # deeper
    ],
)
def test_the_success_folder_is_found_wherever_it_is_and_every_data_file_is_read(store, folder):
    put(store, folder + "part-00000")  # no extension
    put(store, folder + "nested/part-00001.csv", HEADER + "arn,3,m2,r\n")
    put(store, folder + "_SUCCESS", "")  # a marker, not data
    put(store, folder.replace("/success/", "/error/") + "part-0.csv", "RecordId,ErrorMessage\n")
    put(store, f"{OUT}/wf/{'f' * 32}/success/part-0.csv")  # another job's output
    found = find_output(store.list_files, OUT, "wf", JOB, records_processed=3)
    assert found.success_uri == folder and found.error_uri == folder.replace("/success/", "/error/")
    assert match_counts(store.path(found.success_uri)) == (3, 2, 2)


def test_no_output_for_a_job_that_processed_records_is_a_clear_error(store):
    put(store, f"{OUT}/wf/{JOB}/success/_SUCCESS", "")
    with pytest.raises(MatchOutputMissing) as info:
        find_output(store.list_files, OUT, "wf", JOB, records_processed=10)
    assert f"no data file is in a {JOB}/success/ folder under {OUT}/" in str(info.value)
    assert "outputS3Path" in str(info.value)


def test_two_success_folders_for_one_job_are_refused(store):
    put(store, f"{OUT}/a/{JOB}/success/part-0")
    put(store, f"{OUT}/b/{JOB}/success/part-0")
    with pytest.raises(MatchOutputMissing, match="several success/ folders"):
        find_output(store.list_files, OUT, "wf", JOB, records_processed=2)


def test_an_empty_job_has_an_empty_output(store):
    found = find_output(store.list_files, OUT, "wf", JOB, records_processed=0)
    assert found.success_uri == f"{OUT}/wf/{JOB}/success/"


def test_the_local_load_reads_files_whatever_their_names(tmp_path, config):
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    objects = tmp_path / "s3"
    store = LocalObjectStore(root=str(objects))
    domain = config.domain("vendors")
    folder = f"{OUT}/{JOB}/success/"
    uid = domain.schema.unique_id
    put(store, folder + "part-a", f"RecordId,MatchID,{uid}\n1,m,1\n2,m,2\n")
    put(store, folder + "part-b.csv", f"RecordId,MatchID,{uid}\n3,n,3\n")
    put(store, folder + "_SUCCESS", "")
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), objects_root=str(objects))
    assert warehouse.load_matches(domain, "2026-10-01", folder, accept=lambda figures: True).rows == 3


def test_listing_s3_finds_the_folder_and_skips_folder_placeholders(monkeypatch):
    import boto3
    from moto import mock_aws

    from er_assets.resources.object_store import S3ObjectStore

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        store = S3ObjectStore(region_name="us-east-1")
        for key, body in (
            (f"er/output/{JOB}/success/", b""),  # a console-made folder object
            (f"er/output/{JOB}/success/_SUCCESS", b""),
        ):
            s3.put_object(Bucket="bucket", Key=key, Body=body)
        with pytest.raises(MatchOutputMissing, match="no data file"):  # neither is one
            find_output(store.list_files, OUT, "wf", JOB, records_processed=1)
        s3.put_object(Bucket="bucket", Key=f"er/output/{JOB}/success/part-0.csv.gz", Body=b"x")
        found = find_output(store.list_files, OUT, "wf", JOB, records_processed=1)
    assert found.success_uri == f"{OUT}/{JOB}/success/"
