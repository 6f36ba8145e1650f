"""Faults on demand: the local emulator fails the way AWS Entity Resolution fails.

Set `ER_EMULATOR_FAULTS` to a JSON object (or to `@/path/to/faults.json`) before the
emulator's clients are made. Keys are operation names (`StartMatchingJob`,
`GetMatchingJob`, `GetTable`, ... or `*` for every operation) and `job`:

    {"GetMatchingJob": {"error": "ThrottlingException", "times": 3},
     "StartMatchingJob": {"error": "ExceedsLimitException", "quotaName": "Records per job", "quotaValue": 1000},
     "*": {"error": "InternalServerException", "rate": 0.2, "seed": 7},
     "job": {"fail_after_polls": 2, "errorMessage": "Input table is empty"}}

An operation fault answers the request with `error` instead of serving it: the first
`times` requests (default: every request), or each request with probability `rate`.
Counts are per client, and each HTTP attempt botocore makes counts once (botocore retries
throttling and 5xx itself before the caller sees them). `error` is one of:

- a service error, sent with the status code and body shape of botocore's model:
  ThrottlingException (429), InternalServerException (500), AccessDeniedException (403),
  ExceedsLimitException (402, with `quotaName` and `quotaValue`), ValidationException,
  ConflictException, ResourceNotFoundException, or the common errors ExpiredTokenException
  and UnrecognizedClientException (403) and ServiceUnavailable (503); `message` overrides
  the default message;
- a client-side failure, raised as botocore raises it: ReadTimeoutError,
  EndpointConnectionError, UnauthorizedSSOTokenError (an expired SSO session),
  CredentialRetrievalError (an assume-role or credential_process that fails),
  NoCredentialsError.

`job` applies to every job started while it is set:

- `{"fail_after_polls": N, "errorMessage": "..."}`: RUNNING for N-1 GetMatchingJob polls,
  then FAILED with that errorDetails.errorMessage (nothing is matched);
- `{"stays_queued": true}`: QUEUED for ever (it still holds the region's job slot; delete
  its file under `<ER_DATA_DIR>/emulator/jobs/` to free it);
- `{"running_seconds": S}`: a slow job, RUNNING for at least S seconds before it matches;
- `{"start_answer_seconds": S}`: StartMatchingJob answers S seconds after it accepted the job
  (the job exists, its id not yet known to the caller: the moment a crash loses the id).

The settings are validated when a client is made, before any job is written.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

FAULTS_ENV = "ER_EMULATOR_FAULTS"

# The service's error codes the emulator can answer with: code -> (HTTP status, default message).
SERVICE_ERROR_RESPONSES = {
    "ThrottlingException": (429, "Rate exceeded"),
    "InternalServerException": (500, "An internal error occurred. Try the request again."),
    "ServiceUnavailable": (503, "The service is unavailable. Try again later."),
    "AccessDeniedException": (
        403,
        "User: arn:aws:sts::123456789012:assumed-role/er-runner/autosys is not authorized to perform: "
        "entityresolution:{operation} because no identity-based policy allows the entityresolution:{operation} action",
    ),
    "ExceedsLimitException": (402, "The request exceeds the account's limit: {quotaName}"),
    "ValidationException": (400, "The request is not valid."),
    "ConflictException": (
        400,
        "The request could not be processed because of conflict in the current state of the resource.",
    ),
    "ResourceNotFoundException": (404, "The resource does not exist."),
    "ExpiredTokenException": (403, "The security token included in the request is expired"),
    "UnrecognizedClientException": (403, "The security token included in the request is invalid."),
}
# botocore's exceptions for failures on the caller's side (no answer, no credentials), by class name.
CLIENT_SIDE_ERRORS = (
    "ReadTimeoutError",
    "EndpointConnectionError",
    "UnauthorizedSSOTokenError",
    "CredentialRetrievalError",
    "NoCredentialsError",
)
# Each job fault and the check its value must pass.
JOB_FAULTS = {
    "fail_after_polls": ("a whole number of at least 1", lambda v: type(v) is int and v >= 1),
    "errorMessage": ("a string", lambda v: isinstance(v, str)),
    "stays_queued": ("true or false", lambda v: isinstance(v, bool)),
    "running_seconds": ("a number of seconds >= 0", lambda v: type(v) in (int, float) and v >= 0),
    "start_answer_seconds": ("a number of seconds >= 0", lambda v: type(v) in (int, float) and v >= 0),
}


class FaultSpecError(ValueError):
    """ER_EMULATOR_FAULTS cannot be used; the message says which part."""


class InjectedServiceError(Exception):
    def __init__(self, code: str, status: int, message: str, extra: dict):
        super().__init__(message)
        self.code, self.status, self.message, self.extra = code, status, message, extra


def load(env=os.environ) -> dict:
    """The fault settings of the environment, validated; {} when none are set."""
    raw = env.get(FAULTS_ENV, "").strip()
    if not raw:
        return {}
    try:
        text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
        spec = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise FaultSpecError(f"{FAULTS_ENV}: cannot read fault settings: {exc}") from None
    if not isinstance(spec, dict):
        raise FaultSpecError(f"{FAULTS_ENV}: expected a JSON object")
    for key, fault in spec.items():
        if not isinstance(fault, dict):
            raise FaultSpecError(f"{FAULTS_ENV}: {key}: expected an object")
        if key == "job":
            unknown = set(fault) - set(JOB_FAULTS)
            if unknown:
                raise FaultSpecError(f"{FAULTS_ENV}: job: unknown keys {sorted(unknown)}; expected {list(JOB_FAULTS)}")
            for name, value in fault.items():
                expected, valid = JOB_FAULTS[name]
                if not valid(value):
                    raise FaultSpecError(f"{FAULTS_ENV}: job: {name} must be {expected}, not {value!r}")
        elif fault.get("error") not in (*SERVICE_ERROR_RESPONSES, *CLIENT_SIDE_ERRORS):
            raise FaultSpecError(
                f"{FAULTS_ENV}: {key}: error {fault.get('error')!r} is not one of "
                f"{sorted(SERVICE_ERROR_RESPONSES) + list(CLIENT_SIDE_ERRORS)}"
            )
    return spec


class Faults:
    """The operation faults of one client: decides, request by request, what fails."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.seen: dict[str, int] = {}
        self.random = {key: random.Random(f.get("seed", 0)) for key, f in spec.items() if key != "job"}

    def job(self) -> dict | None:
        return self.spec.get("job")

    def check(self, operation: str, endpoint: str) -> None:
        """Raise the fault due for this request of `operation`, if any."""
        for key in (operation, "*"):
            fault = self.spec.get(key)
            if fault is None:
                continue
            count = self.seen[key] = self.seen.get(key, 0) + 1
            if "times" in fault and count > int(fault["times"]):
                continue
            if "rate" in fault and self.random[key].random() >= float(fault["rate"]):
                continue
            _raise(fault, operation, endpoint)


def _raise(fault: dict, operation: str, endpoint: str) -> None:
    from botocore import exceptions

    code = fault["error"]
    if code in CLIENT_SIDE_ERRORS:
        if code == "CredentialRetrievalError":
            raise exceptions.CredentialRetrievalError(
                provider=fault.get("provider", "assume-role"),
                error_msg=fault.get("message", "the role could not be assumed: the source credentials have expired"),
            )
        if code in ("ReadTimeoutError", "EndpointConnectionError"):
            raise getattr(exceptions, code)(endpoint_url=endpoint)
        raise getattr(exceptions, code)()
    status, template = SERVICE_ERROR_RESPONSES[code]
    extra = {k: fault[k] for k in ("quotaName", "quotaValue") if k in fault} if code == "ExceedsLimitException" else {}
    message = fault.get("message") or template.format(operation=operation, quotaName=extra.get("quotaName", "unknown"))
    raise InjectedServiceError(code, status, message, extra)
