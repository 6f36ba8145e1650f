"""The production job driver against the emulator's injected faults (ER_EMULATOR_FAULTS),
through real boto3 clients: every documented error ends in its exit code and one clear line.

botocore's own retries are off here (max_attempts=0), so each injected answer reaches the
driver; the driver's sleeps run on a fake clock, so the tests take no wall-clock time.
"""

import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest

from er_assets import exit_codes, layout
from er_assets.emulator.faults import FAULTS_ENV, FaultSpecError, load
from er_assets.environment import local_paths
from er_assets.errors import PipelineError
from er_assets.pipeline.matching_job import Patience, run_matching_job
from er_assets.resources.entity_resolution import LocalEntityResolution
from er_assets_tests.helpers import Clock, seed

WF = "vendor-matching-workflow"


class JobClock(Clock):
    """Fake time for the driver's back-off, plus a real pause so a real job can progress."""

    def sleep(self, seconds):
        super().sleep(seconds)
        time.sleep(0.05)


@pytest.fixture
def faults(monkeypatch, local_env, config):
    """Set the fault settings, then hand out (er, glue) clients that see them."""

    def clients(spec: dict):
        monkeypatch.setenv(FAULTS_ENV, json.dumps(spec))
        paths = local_paths()
        resource = LocalEntityResolution(
            state_root=str(paths["emulator"]),
            objects_root=str(paths["objects"]),
            config_path=str(config.path),
            max_attempts=0,
        )
        return resource.clients()

    return clients


@pytest.fixture
def extract(config, local_env):
    """A small vendors extract the emulator can really match."""
    from er_assets.pipeline.matching_job import point_glue_table
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    domain = config.domain("vendors")
    seed(domain, "2026-10-01", 200, local_env)
    paths = local_paths()
    uri = layout.extract_uri(domain, "2026-10-01", "r1")
    DuckDBWarehouse(path=str(paths["warehouse"]), objects_root=str(paths["objects"])).unload_extract(
        domain, dt.date(2026, 10, 1), dt.date(2026, 11, 1), uri
    )
    return lambda glue: point_glue_table(glue, "entity_resolution", domain.glue_table, uri)


def drive(er, clock=None, timeout=3600, before=lambda: None, intents=None):
    clock = clock or JobClock()
    logs: list[str] = []
    outcome = run_matching_job(
        er,
        WF,
        None,
        before,
        (intents if intents is not None else []).append,
        lambda job_id: None,
        Patience(timeout, 5, logs.append, clock.sleep, clock),
    )
    return outcome, logs


def failure(er, **kwargs) -> PipelineError:
    with pytest.raises(PipelineError) as info:
        drive(er, **kwargs)
    assert "\n" not in str(info.value)  # one line
    return info.value


@pytest.mark.parametrize(
    "error",
    [
        "ThrottlingException",
        "InternalServerException",
        "ServiceUnavailable",
        "ReadTimeoutError",
        "EndpointConnectionError",
    ],
)
def test_transient_errors_while_polling_never_abandon_the_running_job(faults, extract, error):
    er, glue = faults({"GetMatchingJob": {"error": error, "times": 3}})
    outcome, logs = drive(er, before=lambda: extract(glue))
    assert outcome.status == "SUCCEEDED" and outcome.metrics["inputRecords"] == 200
    retried = [line for line in logs if "status call failed" in line]
    assert len(retried) == 3 and all("the job keeps running" in line for line in retried)


@pytest.mark.parametrize("error", ["ThrottlingException", "InternalServerException", "ReadTimeoutError"])
def test_transient_errors_listing_jobs_for_the_intent_are_waited_out_before_the_start(faults, extract, error):
    er, glue = faults({"ListMatchingJobs": {"error": error, "times": 2}})
    intents: list[dict] = []
    outcome, logs = drive(er, before=lambda: extract(glue), intents=intents)
    assert outcome.status == "SUCCEEDED" and len(intents) == 1 and intents[0]["intent_known_jobs"] == []
    retried = [line for line in logs if "ListMatchingJobs call failed" in line]
    assert len(retried) == 2 and all("no job is started meanwhile" in line for line in retried)


def test_listing_jobs_failing_until_the_deadline_exits_5_and_starts_nothing(faults):
    er, _ = faults({"ListMatchingJobs": {"error": "ThrottlingException"}})
    intents: list[dict] = []
    error = failure(er, timeout=30, intents=intents)
    assert error.exit_code == exit_codes.SERVICE_UNAVAILABLE and intents == []
    assert "ListMatchingJobs calls still fail at EXECUTION_TIMEOUT=30s (ThrottlingException: Rate exceeded)" in str(
        error
    )
    assert not list((local_paths()["emulator"] / "jobs").glob("*.json"))  # nothing was started


def test_adopting_a_job_waits_out_transient_list_errors(faults):
    from er_assets.pipeline.matching_job import adoptable_job, start_intent

    er, _ = faults({"job": {"stays_queued": True}})
    clock = JobClock()
    patience = Patience(3600, 5, print, clock.sleep, clock)
    intent = start_intent(er, WF, patience)
    job = er.start_matching_job(workflowName=WF)["jobId"]
    er, _ = faults({"ListMatchingJobs": {"error": "ServiceUnavailable", "times": 2}})
    assert adoptable_job(er, WF, intent, set(), patience) == job


def test_status_calls_failing_until_the_deadline_exit_5_and_say_the_job_may_still_run(faults):
    er, _ = faults({"GetMatchingJob": {"error": "ThrottlingException"}, "job": {"stays_queued": True}})
    error = failure(er, timeout=30)
    assert error.exit_code == exit_codes.SERVICE_UNAVAILABLE
    assert "still fail at EXECUTION_TIMEOUT=30s (ThrottlingException: Rate exceeded)" in str(error)
    assert "may still be running at AWS and a re-run re-attaches" in str(error)


def test_a_job_that_stays_queued_times_out_naming_it(faults):
    er, _ = faults({"job": {"stays_queued": True}})
    error = failure(er, timeout=20)
    assert error.exit_code == exit_codes.TIMEOUT and "still QUEUED after EXECUTION_TIMEOUT=20s" in str(error)


def test_a_job_that_fails_after_n_polls_exits_1_with_the_service_message(faults):
    er, _ = faults({"job": {"fail_after_polls": 3, "errorMessage": "Input table has no records"}})
    clock = Clock()
    error = failure(er, clock=clock)
    assert error.exit_code == exit_codes.STAGE_FAILED
    assert str(error).endswith(f"of {WF} FAILED: Input table has no records")
    assert len(clock.sleeps) == 2  # RUNNING, RUNNING, FAILED


def test_a_slow_job_is_waited_for(faults, extract):
    er, glue = faults({"job": {"running_seconds": 1.5}})
    outcome, logs = drive(er, before=lambda: extract(glue))
    assert outcome.status == "SUCCEEDED"
    assert any(": RUNNING, 0 of" in line for line in logs)


def test_the_busy_region_is_waited_out_then_the_job_starts(faults, extract):
    er, glue = faults(
        {
            "StartMatchingJob": {
                "error": "ExceedsLimitException",
                "times": 2,
                "quotaName": "Concurrent matching jobs",
                "quotaValue": 1,
            }
        }
    )
    outcome, logs = drive(er, before=lambda: extract(glue))
    assert outcome.status == "SUCCEEDED"
    assert sum("matching slot is busy (ExceedsLimitException)" in line for line in logs) == 2


def test_the_emulator_names_its_own_concurrency_quota(faults):
    er, _ = faults({"job": {"stays_queued": True}})
    er.start_matching_job(workflowName=WF)
    with pytest.raises(er.exceptions.ExceedsLimitException) as info:
        er.start_matching_job(workflowName="customer-matching-workflow")
    assert (info.value.response["quotaName"], info.value.response["quotaValue"]) == ("Concurrent matching jobs", 1)


def test_another_quota_fails_at_once_naming_it(faults):
    er, _ = faults(
        {
            "StartMatchingJob": {
                "error": "ExceedsLimitException",
                "quotaName": "Records per matching job",
                "quotaValue": 1000000,
            }
        }
    )
    clock = Clock()
    error = failure(er, clock=clock)
    assert error.exit_code == exit_codes.STAGE_FAILED and clock.sleeps == []
    assert "quota 'Records per matching job' (limit 1000000) exceeded" in str(error)


@pytest.mark.parametrize(
    "operation, error, says",
    [
        (
            "StartMatchingJob",
            "AccessDeniedException",
            "access denied (User: arn:aws:sts::123456789012:assumed-role/"
            "er-runner/autosys is not authorized to perform: "
            "entityresolution:StartMatchingJob",
        ),
        ("GetMatchingJob", "AccessDeniedException", "grant the role this permission"),
        (
            "StartMatchingJob",
            "ExpiredTokenException",
            "AWS credentials expired or invalid: The security token "
            "included in the request is expired (ExpiredTokenException)",
        ),
        ("GetMatchingJob", "UnrecognizedClientException", "AWS credentials expired or invalid"),
        (
            "StartMatchingJob",
            "UnauthorizedSSOTokenError",
            "the AWS SSO session has expired or is invalid; run `aws sso login",
        ),
        (
            "GetMatchingJob",
            "CredentialRetrievalError",
            "could not get AWS credentials (Error when retrieving credentials from assume-role",
        ),
        ("StartMatchingJob", "NoCredentialsError", "no AWS credentials found"),
        ("StartMatchingJob", "ReadTimeoutError", "cannot reach AWS (Read timeout on endpoint URL"),
        ("StartMatchingJob", "InternalServerException", "the service is unavailable (InternalServerException"),
    ],
)
def test_credential_access_and_reachability_errors_exit_5_naming_what_to_fix(faults, operation, error, says):
    er, _ = faults({operation: {"error": error}, "job": {"fail_after_polls": 5}})
    failed = failure(er)
    assert failed.exit_code == exit_codes.SERVICE_UNAVAILABLE, failed
    assert says in str(failed)


def test_validation_on_start_exits_2_and_while_polling_1_with_the_service_message(faults):
    er, _ = faults(
        {"StartMatchingJob": {"error": "ValidationException", "message": "Schema field email is not in table"}}
    )
    error = failure(er)
    assert error.exit_code == exit_codes.USAGE
    assert "the service rejected the request: Schema field email is not in table" in str(error)
    er, _ = faults(
        {"GetMatchingJob": {"error": "ValidationException", "message": "bad job id"}, "job": {"fail_after_polls": 5}}
    )
    error = failure(er)
    assert error.exit_code == exit_codes.STAGE_FAILED and "rejected the request: bad job id" in str(error)


def test_faults_on_any_operation_with_a_rate(faults):
    _, glue = faults({"*": {"error": "ThrottlingException", "rate": 0.5, "seed": 3}})
    outcomes = []
    for _ in range(40):
        try:
            glue.get_table(DatabaseName="entity_resolution", Name="vendors_input")
            outcomes.append("ok")
        except glue.exceptions.ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    assert set(outcomes) == {"ok", "ThrottlingException"}
    assert 8 <= outcomes.count("ok") <= 32


def test_fault_settings_can_come_from_a_file(tmp_path):
    spec = tmp_path / "faults.json"
    spec.write_text('{"*": {"error": "InternalServerException", "times": 1}}')
    assert load({FAULTS_ENV: f"@{spec}"}) == {"*": {"error": "InternalServerException", "times": 1}}
    assert load({}) == {}


@pytest.mark.parametrize(
    "value, message",
    [
        ("not json", "cannot read fault settings"),
        ('{"GetMatchingJob": {"error": "Boom"}}', "error 'Boom' is not one of"),
        ('{"job": {"fail_after": 1}}', "job: unknown keys ['fail_after']"),
        ('{"job": {"running_seconds": "2s"}}', "job: running_seconds must be a number of seconds >= 0, not '2s'"),
        ('{"job": {"start_answer_seconds": -1}}', "job: start_answer_seconds must be a number of seconds >= 0, not -1"),
        ('{"job": {"fail_after_polls": 0}}', "job: fail_after_polls must be a whole number of at least 1, not 0"),
        ('{"job": {"stays_queued": "yes"}}', "job: stays_queued must be true or false, not 'yes'"),
    ],
)
def test_bad_fault_settings_are_refused_clearly(value, message):
    with pytest.raises(FaultSpecError) as info:
        load({FAULTS_ENV: value})
    assert message in str(info.value)


@pytest.mark.parametrize(
    "spec, code, message",
    [
        (
            {"StartMatchingJob": {"error": "AccessDeniedException"}},
            exit_codes.SERVICE_UNAVAILABLE,
            "access denied (User: arn:aws:sts::123456789012:assumed-role/er-runner/autosys is not authorized",
        ),
        (
            {"StartMatchingJob": {"error": "ValidationException", "message": "Glue table has no column email"}},
            exit_codes.USAGE,
            "the service rejected the request: Glue table has no column email",
        ),
        (
            {"job": {"fail_after_polls": 2, "errorMessage": "The input table is empty"}},
            exit_codes.STAGE_FAILED,
            "FAILED: The input table is empty",
        ),
    ],
)
def test_the_bridge_exits_with_the_fault_s_code_and_one_line(config, local_env, spec, code, message):
    seed(config.domain("vendors"), "2026-10-01", 200, local_env)
    env = {**os.environ, FAULTS_ENV: json.dumps(spec)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autosys_bridge.cli",
            "run",
            "vendors",
            "all",
            "--date",
            "2026-10-01",
            "--check-interval",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == code, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert message in last and f"(exit {code})" in last, last


def test_bad_job_faults_are_refused_before_any_job_is_written(faults):
    with pytest.raises(FaultSpecError, match="running_seconds must be a number"):
        faults({"job": {"running_seconds": "slow"}})
    assert not list((local_paths()["emulator"] / "jobs").glob("*.json"))


def test_a_late_start_answer_applies_to_jobs_without_a_worker_too(faults, monkeypatch):
    from er_assets.emulator import service

    slept = []
    monkeypatch.setattr(service.time, "sleep", slept.append)
    er, _ = faults({"job": {"stays_queued": True, "start_answer_seconds": 7}})
    job_id = er.start_matching_job(workflowName=WF)["jobId"]
    assert slept == [7] and er.get_matching_job(workflowName=WF, jobId=job_id)["status"] == "QUEUED"


def test_a_next_token_the_emulator_did_not_issue_is_a_validation_error(faults):
    er, _ = faults({"job": {"stays_queued": True}})
    for token in ("abc", "5", "0-0000000000000000"):  # all fit the model's pattern
        with pytest.raises(er.exceptions.ValidationException, match="Invalid nextToken"):
            er.list_matching_jobs(workflowName=WF, nextToken=token)


def test_pages_of_matching_jobs_follow_the_issued_tokens(faults, monkeypatch):
    from er_assets.emulator import service

    er, _ = faults({"job": {"stays_queued": True}})
    monkeypatch.setattr(service, "_holds_slot", lambda job: False)  # let several jobs queue up
    started = {er.start_matching_job(workflowName=WF)["jobId"] for _ in range(3)}
    first = er.list_matching_jobs(workflowName=WF, maxResults=2)
    second = er.list_matching_jobs(workflowName=WF, maxResults=2, nextToken=first["nextToken"])
    assert {j["jobId"] for j in first["jobs"] + second["jobs"]} == started and "nextToken" not in second


def test_the_one_job_quota_is_per_region(faults, config):
    er, _ = faults({"job": {"stays_queued": True}})
    er.start_matching_job(workflowName=WF)
    paths = local_paths()
    west, _ = LocalEntityResolution(
        region_name="us-west-2",
        state_root=str(paths["emulator"]),
        objects_root=str(paths["objects"]),
        config_path=str(config.path),
        max_attempts=0,
    ).clients()
    assert west.start_matching_job(workflowName=WF)["jobId"]  # another region's slot is free
    with pytest.raises(er.exceptions.ExceedsLimitException):
        er.start_matching_job(workflowName=WF)
