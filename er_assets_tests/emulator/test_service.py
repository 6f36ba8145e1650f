"""The emulator behind real boto3 clients: request/response shapes, validation, job lifecycle."""

import time

import pytest
from botocore.exceptions import ClientError

from er_assets.environment import local_paths
from er_assets.resources.local import local_resources


@pytest.fixture
def clients(config, local_env):
    return local_resources(config)["entity_resolution"].clients()


def error_code(info) -> str:
    return info.value.response["Error"]["Code"]


def wait(er, workflow, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = er.get_matching_job(workflowName=workflow, jobId=job_id)
        if job["status"] not in ("QUEUED", "RUNNING"):
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_definitions_come_back_in_the_service_shapes(clients, config):
    er, glue = clients
    workflow = er.get_matching_workflow(workflowName="customer-matching-workflow")
    assert workflow["workflowName"] == "customer-matching-workflow"
    assert workflow["resolutionTechniques"]["ruleBasedProperties"]["rules"][0]["matchingKeys"] == ["email"]
    assert workflow["inputSourceConfig"][0]["inputSourceARN"].endswith(":table/entity_resolution/customers_input")
    assert hasattr(workflow["createdAt"], "year")  # parsed by botocore as a timestamp
    schema = er.get_schema_mapping(schemaName="customer-schema")
    assert [f["fieldName"] for f in schema["mappedInputFields"]][:2] == ["customer_id", "first_name"]
    table = glue.get_table(DatabaseName="entity_resolution", Name="customers_input")["Table"]
    assert table["StorageDescriptor"]["Location"].startswith("s3://er-data-lake/")


@pytest.mark.parametrize(
    "call, code",
    [
        (lambda er: er.get_matching_workflow(workflowName="no-such-workflow"), "ResourceNotFoundException"),
        (lambda er: er.get_matching_workflow(workflowName="bad name!"), "ValidationException"),  # pattern
        (lambda er: er.get_matching_workflow(workflowName="x" * 256), "ValidationException"),  # max length
        (
            lambda er: er.get_matching_job(workflowName="customer-matching-workflow", jobId="NOT-HEX"),
            "ValidationException",
        ),
        (
            lambda er: er.get_matching_job(workflowName="customer-matching-workflow", jobId="0" * 32),
            "ResourceNotFoundException",
        ),
        (
            lambda er: er.list_matching_jobs(workflowName="customer-matching-workflow", maxResults=26),
            "ValidationException",
        ),
        (lambda er: er.get_schema_mapping(schemaName="nope"), "ResourceNotFoundException"),
    ],
)
def test_errors_botocore_does_not_catch_itself(clients, call, code):
    er, _ = clients
    with pytest.raises(ClientError) as info:
        call(er)
    assert error_code(info) == code


def test_job_runs_asynchronously_and_writes_the_service_layout(clients, config, local_env):
    from er_assets_tests.helpers import seed

    er, glue = clients
    domain = config.domain("vendors")
    seed(domain, "2026-10-01", 300, local_env)
    import datetime as dt

    from er_assets import layout
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    paths = local_paths()
    DuckDBWarehouse(path=str(paths["warehouse"]), objects_root=str(paths["objects"])).unload_extract(
        domain, dt.date(2026, 10, 1), dt.date(2026, 11, 1), layout.extract_uri(domain, "2026-10-01", "r1")
    )
    from er_assets.pipeline.matching_job import point_glue_table

    point_glue_table(glue, "entity_resolution", "vendors_input", layout.extract_uri(domain, "2026-10-01", "r1"))
    assert glue.get_table(DatabaseName="entity_resolution", Name="vendors_input")["Table"]["StorageDescriptor"][
        "Location"
    ] == layout.extract_uri(domain, "2026-10-01", "r1")

    job_id = er.start_matching_job(workflowName="vendor-matching-workflow")["jobId"]
    first = er.get_matching_job(workflowName="vendor-matching-workflow", jobId=job_id)
    assert first["status"] in ("QUEUED", "RUNNING", "SUCCEEDED")
    # One job per region: a second start while the first is active is refused.
    if first["status"] != "SUCCEEDED":
        with pytest.raises(ClientError) as info:
            er.start_matching_job(workflowName="customer-matching-workflow")
        assert error_code(info) == "ExceedsLimitException"
    done = wait(er, "vendor-matching-workflow", job_id)
    assert done["status"] == "SUCCEEDED"
    assert done["metrics"]["inputRecords"] == done["metrics"]["totalRecordsProcessed"] == 300
    assert done["metrics"]["recordsNotProcessed"] == 0
    assert done["endTime"] >= done["startTime"]
    output = paths["objects"] / "er-data-lake/entity-resolution/vendors/output/vendor-matching-workflow" / job_id
    csvs = list((output / "success").glob("*.csv"))
    assert csvs and csvs[0].read_text().splitlines()[0].split(",")[:4] == [
        "InputSourceARN",
        "RecordId",
        "MatchID",
        "MatchRule",
    ]
    listed = er.list_matching_jobs(workflowName="vendor-matching-workflow")["jobs"]
    assert [j["jobId"] for j in listed] == [job_id]


def test_a_job_whose_worker_died_is_reported_failed(clients, config, local_env):
    import json
    import os
    import signal

    er, _ = clients
    job_id = er.start_matching_job(workflowName="customer-matching-workflow")["jobId"]
    # Killed at once: the worker is still importing, long before it could finish or fail.
    state = local_paths()["emulator"] / "jobs" / f"{job_id}.json"
    pid = json.loads(state.read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    job = wait(er, "customer-matching-workflow", job_id)
    assert job["status"] == "FAILED"
    assert job["errorDetails"]["errorMessage"] == "The matching job stopped unexpectedly."


def test_responses_satisfy_the_botocore_output_shapes(clients):
    """botocore parses leniently; check the emulator's answers against the model's required fields."""
    from botocore.validate import ParamValidator

    er, _ = clients
    model = er.meta.service_model
    job_id = er.start_matching_job(workflowName="customer-matching-workflow")["jobId"]
    calls = {
        "GetMatchingWorkflow": er.get_matching_workflow(workflowName="customer-matching-workflow"),
        "GetSchemaMapping": er.get_schema_mapping(schemaName="product-schema"),
        "GetMatchingJob": wait(er, "customer-matching-workflow", job_id),
        "ListMatchingJobs": er.list_matching_jobs(workflowName="customer-matching-workflow"),
    }
    for operation, response in calls.items():
        response = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        report = ParamValidator().validate(response, model.operation_model(operation).output_shape)
        assert not report.has_errors(), f"{operation}: {report.generate_report()}"


@pytest.mark.parametrize(
    "damage", [b"\xff\xfe{garbage", b'{"jobId": "x", "workflowName": "vendor-matching-workflow", "sta']
)
def test_a_damaged_job_file_blocks_no_workflow_and_is_reported_failed(clients, damage):
    er, _ = clients
    jobs = local_paths()["emulator"] / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    lost = "f" * 32
    (jobs / f"{lost}.json").write_bytes(damage)  # no worker runs for it
    assert er.list_matching_jobs(workflowName="customer-matching-workflow")["jobs"] == []
    started = er.start_matching_job(workflowName="customer-matching-workflow")["jobId"]
    assert (jobs / f"{lost}.json.corrupt").read_bytes() == damage  # set aside, not lost
    job = er.get_matching_job(workflowName="vendor-matching-workflow", jobId=lost)
    assert job["status"] == "FAILED" and f"job {lost}: state file" in job["errorDetails"]["errorMessage"]
    assert "is corrupt" in job["errorDetails"]["errorMessage"]
    assert wait(er, "customer-matching-workflow", started)["status"] in ("SUCCEEDED", "FAILED")


def test_a_damaged_job_file_whose_worker_runs_still_holds_the_slot(config, local_env, monkeypatch):
    import json
    import os
    import signal

    from er_assets.emulator.faults import FAULTS_ENV
    from er_assets.resources.entity_resolution import LocalEntityResolution

    monkeypatch.setenv(FAULTS_ENV, json.dumps({"job": {"running_seconds": 60}}))
    paths = local_paths()
    er, _ = LocalEntityResolution(
        state_root=str(paths["emulator"]),
        objects_root=str(paths["objects"]),
        config_path=str(config.path),
        max_attempts=0,
    ).clients()
    job_id = er.start_matching_job(workflowName="vendor-matching-workflow")["jobId"]
    # The worker reads its job file once it starts: damage the file only after that.
    deadline = time.monotonic() + 30
    while er.get_matching_job(workflowName="vendor-matching-workflow", jobId=job_id)["status"] != "RUNNING":
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    state = paths["emulator"] / "jobs" / f"{job_id}.json"
    pid = json.loads(state.read_text())["pid"]
    state.write_bytes(b"\xff\xfe{garbage")
    with pytest.raises(ClientError) as info:
        er.start_matching_job(workflowName="customer-matching-workflow")
    assert error_code(info) == "ExceedsLimitException" and "its worker is still running" in str(info.value)
    with pytest.raises(ClientError) as info:  # which workflow it belongs to, no one can tell
        er.list_matching_jobs(workflowName="customer-matching-workflow")
    assert error_code(info) == "InternalServerException" and f"job {job_id}: state file" in str(info.value)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert er.list_matching_jobs(workflowName="customer-matching-workflow")["jobs"] == []
    assert er.get_matching_job(workflowName="vendor-matching-workflow", jobId=job_id)["status"] == "FAILED"


def test_a_pid_reused_by_another_process_does_not_keep_a_dead_job_running(clients):
    import json
    import os

    er, _ = clients
    jobs = local_paths()["emulator"] / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    dead = "e" * 32
    # Its worker is gone and its pid now belongs to a live process that is no worker: this one.
    (jobs / f"{dead}.json").write_text(
        json.dumps(
            {
                "jobId": dead,
                "workflowName": "customer-matching-workflow",
                "status": "RUNNING",
                "startTime": 1.0,
                "metrics": {},
                "region": "us-east-1",
                "fault": {},
                "pid": os.getpid(),
            }
        )
    )
    job = er.get_matching_job(workflowName="customer-matching-workflow", jobId=dead)
    assert job["status"] == "FAILED" and job["errorDetails"]["errorMessage"] == "The matching job stopped unexpectedly."
    started = er.start_matching_job(workflowName="customer-matching-workflow")["jobId"]  # the slot is free
    assert wait(er, "customer-matching-workflow", started)["status"] in ("SUCCEEDED", "FAILED")
