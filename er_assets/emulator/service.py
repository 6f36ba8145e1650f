"""The local AWS Entity Resolution (and Glue) service behind real boto3 clients.

`attach(client, emulator)` registers a botocore `before-send` handler, so the client
serialises requests and parses responses exactly as it does against AWS: the production
code's polling, re-attach and error paths run unchanged. Requests are checked against the
botocore model's constraints (patterns, lengths, ranges, enums), which botocore itself does
not enforce, and answered with the service's error shapes.

State lives in files under `root/emulator/` (written atomically), so a job started by one
process can be polled by another. Jobs run in a detached worker process
(`python -m er_assets.emulator.worker`): QUEUED -> RUNNING -> SUCCEEDED | FAILED.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from er_assets import layout, processes
from er_assets.config import Configuration
from er_assets.entity_resolution_service import ACTIVE_JOB_STATUSES, CONCURRENT_JOBS_QUOTA


class ServiceError(Exception):
    def __init__(self, code: str, message: str, status: int = 400, extra: dict | None = None):
        super().__init__(message)
        self.code, self.message, self.status, self.extra = code, message, status, extra or {}


class _LostButRunning(ServiceError):
    """A job whose state file is damaged while its worker still runs: nothing can be said of
    it (a 500, which callers retry), but it still holds the region's job slot."""

    def __init__(self, message: str):
        super().__init__("InternalServerException", message, 500)


def _slot_taken(holder: str) -> ServiceError:
    return ServiceError(
        "ExceedsLimitException",
        f"Only one matching job can run at a time in this Region; {holder}.",
        402,
        {"quotaName": CONCURRENT_JOBS_QUOTA, "quotaValue": 1},
    )


def _now() -> float:
    return dt.datetime.now(dt.timezone.utc).timestamp()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _worker_running(job_id: str, pid: int | None = None) -> bool:
    """Does the worker process of this job live? Told by its command line (the worker module
    and the job id), at `pid` when the state file gives one, else among all processes (a
    damaged state file has no pid)."""
    return processes.running(pid, lambda words: b"er_assets.emulator.worker" in words and job_id.encode() in words)


class Emulator:
    """One region's Entity Resolution and Glue, for the domains of a configuration.

    `objects_root` is the local object store's folder: s3://bucket/key is objects_root/bucket/key.
    """

    def __init__(
        self,
        state_root: str | os.PathLike,
        objects_root: str | os.PathLike,
        config: Configuration,
        region: str = "us-east-1",
    ):
        self.region = region
        self.root = Path(state_root)
        self.objects_root = Path(objects_root)
        self.config = config
        self.jobs_dir = self.root / "jobs"
        self._held = threading.local()
        self.glue_dir = self.root / "glue"
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.glue_dir.mkdir(parents=True, exist_ok=True)

    # --- definitions from configuration --------------------------------------------------

    def _domain_by_workflow(self, name: str):
        for domain in self.config.domains.values():
            if domain.workflow_name == name:
                return domain
        raise ServiceError("ResourceNotFoundException", f"The workflow with name {name} does not exist.", 404)

    def workflow(self, name: str) -> dict:
        from er_assets.emulator.aws_shapes import matching_workflow_response

        return matching_workflow_response(self._domain_by_workflow(name), self.config.settings)

    def schema_mapping(self, name: str) -> dict:
        from er_assets.emulator.aws_shapes import schema_mapping_response

        for domain in self.config.domains.values():
            if domain.schema.schemaName == name:
                return schema_mapping_response(domain, self.config.settings)
        raise ServiceError("ResourceNotFoundException", f"The schema mapping with name {name} does not exist.", 404)

    # --- jobs ----------------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        """The state folder's lock, across processes; re-entrant within a thread (flock is not:
        a second open of the lock file would wait for the first)."""
        if getattr(self._held, "lock", False):
            yield
            return
        with open(self.root / "state.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._held.lock = True
            try:
                yield
            finally:
                self._held.lock = False

    def _job_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.json"

    def read_job(self, job_id: str, workflow_name: str | None = None) -> dict:
        path = self._job_path(job_id)
        try:
            job = json.loads(path.read_text())
        except FileNotFoundError:
            raise ServiceError("ResourceNotFoundException", f"The job with id {job_id} does not exist.", 404) from None
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: damaged on disk
            return self._lost_job(job_id, workflow_name, path, exc)
        if job["status"] in ACTIVE_JOB_STATUSES and not _holds_slot(job):
            # The worker died without reporting: the service would report the job as failed.
            job = self.update_job(
                job_id,
                status="FAILED",
                endTime=_now(),
                errorDetails={"errorMessage": "The matching job stopped unexpectedly."},
            )
        return job

    def _lost_job(self, job_id: str, workflow_name: str | None, path: Path, exc: Exception) -> dict:
        """A job whose state file is damaged. While its worker runs it may still finish, so the
        call fails; once no worker runs it provably never will: the file is set aside and the
        job reported FAILED with a message naming it, so a re-run starts a new job.
        `workflow_name`: the workflow the caller named, None when listing (the damaged file
        cannot tell; the FAILED job then answers whoever asks for it by id)."""
        what = f"job {job_id}: state file {path} is corrupt ({str(exc).splitlines()[0]})"
        if _worker_running(job_id):
            raise _LostButRunning(f"{what}; its worker is still running")
        with self._locked():
            aside = path.with_name(path.name + ".corrupt")
            if path.exists():
                os.replace(path, aside)
            job = {
                "jobId": job_id,
                "workflowName": workflow_name,
                "status": "FAILED",
                "startTime": aside.stat().st_mtime,
                "endTime": _now(),
                "metrics": {"inputRecords": 0, "totalRecordsProcessed": 0, "recordsNotProcessed": 0, "matchIDs": 0},
                "errorDetails": {"errorMessage": f"{what}; the job is lost (file kept as {aside.name})"},
            }
            _write_json(path, job)
        return job

    def update_job(self, job_id: str, **changes) -> dict:
        with self._locked():
            path = self._job_path(job_id)
            job = json.loads(path.read_text())
            job.update(changes)
            _write_json(path, job)
        return job

    def _jobs(self) -> list[dict]:
        """Every job of every region, newest first; a damaged file goes through `_lost_job`.
        (Files are replaced atomically, so a file that cannot be read is damaged, not half written.)"""
        jobs = []
        for path in self.jobs_dir.glob("*.json"):
            try:
                jobs.append(json.loads(path.read_text()))
            except FileNotFoundError:  # removed since the listing
                continue
            except (ValueError, OSError) as exc:  # JSONDecodeError, UnicodeDecodeError, unreadable
                jobs.append(self._lost_job(path.stem, None, path, exc))
        return sorted(jobs, key=lambda j: j["startTime"], reverse=True)

    def start_matching_job(self, workflow_name: str, fault: dict | None = None) -> dict:
        """Queue a job and start its worker; `fault` (see `faults`) makes it misbehave."""
        workflow = self.workflow(workflow_name)
        with self._locked():
            try:
                jobs = self._jobs()
            except _LostButRunning as exc:  # its region is unknown: it may hold this region's slot
                raise _slot_taken(exc.message) from None
            for job in jobs:
                # The quota is per region: a job of another region does not hold this one's slot.
                same_region = job.get("region", self.region) == self.region
                if job["status"] in ACTIVE_JOB_STATUSES and same_region and _holds_slot(job):
                    raise _slot_taken(f"job {job['jobId']} of workflow {job['workflowName']} is {job['status']}")
            job_id = uuid.uuid4().hex
            location = self._input_location(workflow)
            output = workflow["outputSourceConfig"][0]["outputS3Path"].rstrip("/")
            job = {
                "jobId": job_id,
                "workflowName": workflow_name,
                "status": "QUEUED",
                "startTime": _now(),
                "metrics": {"inputRecords": 0, "totalRecordsProcessed": 0, "recordsNotProcessed": 0, "matchIDs": 0},
                "input": location,
                "outputSourceConfig": [{"roleArn": workflow["roleArn"], "outputS3Path": output}],
                "outputDir": f"{output}/{workflow_name}/{job_id}/",
                "region": self.region,
                "fault": fault or {},
            }
            if not _workerless(job):
                # Started before the job file exists: it waits for this lock to read it. So a
                # caller killed here leaves no job, or a job with its worker, never a job
                # without one.
                job["pid"] = self._start_worker(job_id)
            _write_json(self._job_path(job_id), job)
        # The fault (validated by faults.load) is slept out of the lock, so others may poll.
        time.sleep(job["fault"].get("start_answer_seconds", 0))
        return {"jobId": job_id}

    def _start_worker(self, job_id: str) -> int:
        with open(self.root / f"{job_id}.log", "ab") as log:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "er_assets.emulator.worker",
                    str(self.root),
                    str(self.objects_root),
                    str(self.config.path),
                    job_id,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            ).pid

    def _input_location(self, workflow: dict) -> str:
        arn = workflow["inputSourceConfig"][0]["inputSourceARN"]
        match = re.match(r"^arn:aws:glue:[^:]*:[^:]*:table/([^/]+)/([^/]+)$", arn)
        if not match:
            raise ServiceError("ValidationException", f"Input source {arn} is not a Glue table ARN.")
        table = self.get_table(match.group(1), match.group(2))
        return table["Table"]["StorageDescriptor"]["Location"]

    def get_matching_job(self, workflow_name: str, job_id: str) -> dict:
        self._domain_by_workflow(workflow_name)
        job = self.read_job(job_id, workflow_name)
        if job["workflowName"] not in (workflow_name, None):  # None: lost, of a workflow no one can tell
            raise ServiceError("ResourceNotFoundException", f"The job with id {job_id} does not exist.", 404)
        fail_after = job["fault"].get("fail_after_polls") if job.get("fault") else None
        if fail_after is not None and job["status"] in ACTIVE_JOB_STATUSES:
            polls = job.get("polls", 0) + 1
            changes = {"polls": polls, "status": "RUNNING"}
            if polls >= int(fail_after):
                message = job["fault"].get("errorMessage", "The matching job failed.")
                changes.update(status="FAILED", endTime=_now(), errorDetails={"errorMessage": message})
            job = self.update_job(job_id, **changes)
        keys = ("jobId", "status", "startTime", "endTime", "metrics", "errorDetails", "outputSourceConfig")
        return {k: job[k] for k in keys if job.get(k) is not None}

    def list_matching_jobs(self, workflow_name: str, max_results: int = 25, next_token: str | None = None) -> dict:
        self._domain_by_workflow(workflow_name)
        jobs = [j for j in self._jobs() if j["workflowName"] == workflow_name]
        start = _token_offset(workflow_name, next_token) if next_token else 0
        page = jobs[start : start + max_results]
        out: dict[str, object] = {
            "jobs": [{k: j[k] for k in ("jobId", "status", "startTime", "endTime") if j.get(k)} for j in page]
        }
        if start + max_results < len(jobs):
            out["nextToken"] = _token(workflow_name, start + max_results)
        return out

    # --- Glue: just the input tables of the configured workflows --------------------------

    def _table_path(self, database: str, name: str) -> Path:
        return self.glue_dir / f"{database}.{name}.json"

    def get_table(self, database: str, name: str) -> dict:
        path = self._table_path(database, name)
        if path.exists():
            return {"Table": json.loads(path.read_text())}
        for domain in self.config.domains.values():
            if database == self.config.settings.glue_database and name == domain.glue_table:
                return {"Table": self._initial_table(domain)}
        raise ServiceError("EntityNotFoundException", f"Table {name} not found in database {database}.", 400)

    def _initial_table(self, domain) -> dict:
        return {
            "Name": domain.glue_table,
            "DatabaseName": self.config.settings.glue_database,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet"},
            "StorageDescriptor": {
                "Columns": [{"Name": c, "Type": "string"} for c in domain.schema.columns],
                "Location": layout.extract_prefix(domain) + "/",
            },
        }

    def update_table(self, database: str, table_input: dict) -> dict:
        current = self.get_table(database, table_input["Name"])["Table"]
        updated = {**current, **table_input, "DatabaseName": database}
        _write_json(self._table_path(database, table_input["Name"]), updated)
        return {}

    def local_path(self, uri: str) -> Path:
        from er_assets.layout import local_path

        return local_path(self.objects_root, uri)


def _workerless(job: dict) -> bool:
    """Jobs whose fault makes them never match anything run no worker process."""
    fault = job.get("fault") or {}
    return bool(fault.get("stays_queued")) or fault.get("fail_after_polls") is not None


def _holds_slot(job: dict) -> bool:
    """An active job whose worker lives (or that needs none) holds the region's job slot."""
    return _workerless(job) or _worker_running(job["jobId"], job.get("pid"))


def _token(workflow_name: str, offset: int) -> str:
    """A ListMatchingJobs nextToken: the offset, signed so only tokens issued here are taken."""
    import hashlib

    digest = hashlib.sha256(f"{workflow_name}:{offset}".encode()).hexdigest()[:16]
    return f"{offset}-{digest}"


def _token_offset(workflow_name: str, token: str) -> int:
    offset, _, _ = token.partition("-")
    if not offset.isdigit() or _token(workflow_name, int(offset)) != token:
        # What the service answers for a token it did not issue.
        raise ServiceError("ValidationException", f"Invalid nextToken: {token}")
    return int(offset)


# --- the botocore side: HTTP requests in, HTTP responses out ------------------------------


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_):
        yield self._body


def _json_value(value):
    # rest-json and json protocols carry timestamps as epoch seconds.
    return value.timestamp() if isinstance(value, dt.datetime) else str(value)


def _validate(shape, value) -> None:
    """Enforce the model constraints that botocore's client-side validation skips."""
    from er_assets.emulator.model import problems

    found = problems(shape, value)
    if found:
        raise ServiceError("ValidationException", found[0])


def _request_params(operation, request) -> dict:
    """Recover the operation's input from the serialised HTTP request."""
    params: dict = {}
    if request.body:
        body = request.body if isinstance(request.body, (bytes, str)) else request.body.read()
        params.update(json.loads(body or b"{}"))
    url = urlsplit(request.url)
    template = operation.http["requestUri"].split("?")[0]
    pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]*)", re.escape(template)) + "$"
    match = re.match(pattern, url.path)
    if match:
        params.update({k: unquote(v) for k, v in match.groupdict().items()})
    query = dict(parse_qsl(url.query))
    for name, member in operation.input_shape.members.items() if operation.input_shape else ():
        if member.serialization.get("location") == "querystring" and member.serialization.get("name") in query:
            raw = query[member.serialization["name"]]
            params[name] = int(raw) if member.type_name == "integer" else raw
    return params


def _handlers(emulator: Emulator, faults) -> dict[str, Callable[[dict], dict]]:
    return {
        "GetMatchingWorkflow": lambda p: emulator.workflow(p["workflowName"]),
        "GetSchemaMapping": lambda p: emulator.schema_mapping(p["schemaName"]),
        "StartMatchingJob": lambda p: emulator.start_matching_job(p["workflowName"], faults.job()),
        "GetMatchingJob": lambda p: emulator.get_matching_job(p["workflowName"], p["jobId"]),
        "ListMatchingJobs": lambda p: emulator.list_matching_jobs(
            p["workflowName"], p.get("maxResults", 25), p.get("nextToken")
        ),
        "GetTable": lambda p: emulator.get_table(p["DatabaseName"], p["Name"]),
        "UpdateTable": lambda p: emulator.update_table(p["DatabaseName"], p["TableInput"]),
    }


def attach(client, emulator: Emulator) -> None:
    """Serve every call of a boto3 `entityresolution` or `glue` client from the emulator,
    failing where ER_EMULATOR_FAULTS asks (see `er_assets.emulator.faults`)."""
    from botocore.awsrequest import AWSResponse

    from er_assets.emulator.faults import Faults, InjectedServiceError, load

    faults = Faults(load())
    handlers = _handlers(emulator, faults)
    service_model = client.meta.service_model
    json_protocol = service_model.protocol == "json"

    def respond(status: int, body: dict, headers: dict) -> AWSResponse:
        payload = json.dumps(body, default=_json_value).encode()
        return AWSResponse(
            "http://emulator.local", status, {"content-type": "application/json", **headers}, _Raw(payload)
        )

    def on_send(request, event_name: str, **_):
        operation_name = event_name.rsplit(".", 1)[-1]
        operation = service_model.operation_model(operation_name)
        request_id = uuid.uuid4().hex
        try:
            faults.check(operation_name, request.url)
            handler = handlers.get(operation_name)
            if handler is None:
                raise ServiceError("ValidationException", f"The local emulator does not implement {operation_name}.")
            params = _request_params(operation, request)
            if operation.input_shape is not None:
                _validate(operation.input_shape, params)
            body = handler(params)
        except (ServiceError, InjectedServiceError) as exc:
            payload = {"message": exc.message, **exc.extra}
            if json_protocol:
                return respond(exc.status, {"__type": exc.code, **payload}, {"x-amzn-requestid": request_id})
            return respond(exc.status, payload, {"x-amzn-errortype": exc.code, "x-amzn-requestid": request_id})
        return respond(200, body, {"x-amzn-requestid": request_id})

    service_id = service_model.service_id.hyphenize()
    client.meta.events.register(f"before-send.{service_id}", on_send)
