"""The production job driver against service answers the emulator does not give (botocore Stubber)."""

import datetime as dt

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from er_assets.errors import MatchingJobFailed, MatchingJobTimeout, ServiceUnavailable
from er_assets.pipeline.matching_job import Patience, _explain, run_matching_job
from er_assets_tests.helpers import Clock

WF = "customer-matching-workflow"
JOB = "a" * 32
OUT = [{"roleArn": "arn:aws:iam::123456789012:role/er", "outputS3Path": "s3://bucket/out"}]
T0 = dt.datetime(2026, 11, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def stubbed():
    client = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").client(
        "entityresolution"
    )
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def job(status, processed=0, **extra):
    return {
        "jobId": JOB,
        "status": status,
        "startTime": T0,
        "outputSourceConfig": OUT,
        "metrics": {"inputRecords": 100, "totalRecordsProcessed": processed, "recordsNotProcessed": 0, "matchIDs": 0},
        **extra,
    }


def drive(client, clock, previous=None, timeout=3600, check_interval=5, elsewhere=lambda: None):
    recorded, logs = [], []
    outcome = run_matching_job(
        client,
        WF,
        previous,
        lambda: logs.append("glue re-pointed"),
        lambda intent: logs.append("intent recorded"),
        recorded.append,
        Patience(timeout, check_interval, logs.append, clock.sleep, clock),
        elsewhere,
    )
    return outcome, recorded, logs


def no_jobs_yet(stub):
    """The ListMatchingJobs answer the intent before a start reads."""
    stub.add_response("list_matching_jobs", {"jobs": []}, {"workflowName": WF})


def test_busy_region_is_waited_out_and_polling_backs_off_to_the_cap(stubbed):
    client, stub = stubbed
    no_jobs_yet(stub)
    stub.add_client_error("start_matching_job", "ConflictException", "Workflow is currently running", 409)
    stub.add_client_error("start_matching_job", "ThrottlingException", "Rate exceeded", 429)
    stub.add_response("start_matching_job", {"jobId": JOB}, {"workflowName": WF})
    for processed in (0, 10, 20, 40, 60, 80):
        stub.add_response("get_matching_job", job("RUNNING", processed), {"workflowName": WF, "jobId": JOB})
    stub.add_response("get_matching_job", job("SUCCEEDED", 100), {"workflowName": WF, "jobId": JOB})
    clock = Clock()
    outcome, recorded, logs = drive(client, clock)
    assert recorded == [JOB]  # recorded before the first poll
    assert outcome.status == "SUCCEEDED" and outcome.output_path == "s3://bucket/out"
    assert clock.sleeps == [0.5, 1.0, 0.5, 1.0, 2.0, 4.0, 5, 5]
    assert any("60 of 100 records processed" in line for line in logs)
    # Each try points the input again; the intent before the first stays the one on record.
    assert logs.count("glue re-pointed") == 3 and logs.count("intent recorded") == 1


def test_a_busy_region_held_by_another_attempt_on_this_extract_is_joined_not_doubled(stubbed):
    """Two attempts both past the concurrency pool: the later start is refused while the first's
    job runs, and it re-attaches to that job instead of starting a second when the slot frees."""
    client, stub = stubbed
    no_jobs_yet(stub)
    stub.add_client_error("start_matching_job", "ConflictException", "Workflow is currently running", 409)
    stub.add_response("get_matching_job", job("RUNNING", 50), {"workflowName": WF, "jobId": JOB})
    stub.add_response("get_matching_job", job("SUCCEEDED", 100), {"workflowName": WF, "jobId": JOB})
    outcome, recorded, logs = drive(client, Clock(), elsewhere=lambda: JOB)
    assert outcome.attached and outcome.job_id == JOB and recorded == []
    assert any(f"re-attaching to matching job {JOB} (RUNNING) started by another attempt" in line for line in logs)


def test_failed_job_surfaces_the_service_message(stubbed):
    client, stub = stubbed
    no_jobs_yet(stub)
    stub.add_response("start_matching_job", {"jobId": JOB})
    stub.add_response("get_matching_job", job("FAILED", errorDetails={"errorMessage": "Input table has no rows"}))
    with pytest.raises(MatchingJobFailed, match=f"{JOB} of {WF} FAILED: Input table has no rows"):
        drive(client, Clock())


def test_access_denied_is_one_clear_line(stubbed):
    client, stub = stubbed
    no_jobs_yet(stub)
    stub.add_client_error(
        "start_matching_job", "AccessDeniedException", "not authorized to perform StartMatchingJob", 403
    )
    with pytest.raises(ServiceUnavailable, match=r"access denied .*grant the role"):
        drive(client, Clock())


def test_missing_workflow_names_it(stubbed):
    client, stub = stubbed
    no_jobs_yet(stub)
    stub.add_client_error(
        "start_matching_job", "ResourceNotFoundException", f"The workflow with name {WF} does not exist.", 404
    )
    with pytest.raises(ServiceUnavailable, match=f"matching workflow {WF}: The workflow with name {WF} does not exist"):
        drive(client, Clock())


def test_timeout_names_the_still_running_job(stubbed):
    client, stub = stubbed
    no_jobs_yet(stub)
    stub.add_response("start_matching_job", {"jobId": JOB})
    for _ in range(5):
        stub.add_response("get_matching_job", job("RUNNING"))
    clock = Clock()
    with pytest.raises(
        MatchingJobTimeout, match=f"matching job {JOB} of {WF} still RUNNING after EXECUTION_TIMEOUT=5s"
    ):
        drive(client, clock, timeout=5, check_interval=2)
    # The last poll happens at the deadline itself, not a back-off step before it.
    assert clock.sleeps == [0.5, 1.0, 2, 1.5] and clock.now == 5


def test_rerun_reattaches_to_a_running_job_instead_of_starting_another(stubbed):
    client, stub = stubbed
    stub.add_response("get_matching_job", job("RUNNING", 50))  # the earlier attempt's job
    stub.add_response("get_matching_job", job("RUNNING", 50))
    stub.add_response("get_matching_job", job("SUCCEEDED", 100))
    outcome, recorded, logs = drive(client, Clock(), previous=JOB)
    assert outcome.attached and not outcome.reused and recorded == []
    assert "re-attaching" in logs[0]
    assert "glue re-pointed" not in logs  # the running job keeps reading what it was started on


def test_rerun_after_a_failed_job_starts_a_new_one(stubbed):
    client, stub = stubbed
    stub.add_response("get_matching_job", job("FAILED", errorDetails={"errorMessage": "boom"}))
    no_jobs_yet(stub)
    stub.add_response("start_matching_job", {"jobId": "b" * 32})
    stub.add_response("get_matching_job", {**job("SUCCEEDED", 100), "jobId": "b" * 32})
    outcome, recorded, logs = drive(client, Clock(), previous=JOB)
    assert recorded == ["b" * 32] and outcome.job_id == "b" * 32
    assert logs[:2] == ["intent recorded", "glue re-pointed"]  # the new job reads this partition, whatever ran since


def test_missing_credentials_message():
    assert "no AWS credentials found" in str(_explain(NoCredentialsError(), "matching workflow x"))
