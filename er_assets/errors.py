"""Errors the stages raise for expected failures, each tied to a bridge exit code.

`exit_code_of` decides a failure's code once, where the stage fails; the code travels with
the failure into the Dagster event log (`pipeline/recording.py`, `failure_exit_code`), so
AutoSys can tell a timeout from a broken credential without parsing messages or names.
"""

from er_assets import exit_codes
from er_assets.redact import Redacting

# The metadata key of a failed stage's `dg.Failure` that holds its exit code.
EXIT_CODE_METADATA = "exit_code"


class PipelineError(Redacting):
    """Messages are masked of secrets when made (they reach logs, mails and the history)."""

    exit_code = exit_codes.STAGE_FAILED


class MatchingJobFailed(PipelineError):
    """The matching job ended FAILED; the message carries the service's errorMessage."""


class MatchingJobTimeout(PipelineError):
    exit_code = exit_codes.TIMEOUT


class ServiceUnavailable(PipelineError):
    """Unreachable endpoint, missing or expired credentials, access denied, missing resource."""

    exit_code = exit_codes.SERVICE_UNAVAILABLE


class QuotaExceeded(PipelineError):
    """An AWS quota other than the one-job-per-region slot was exceeded; waiting will not help."""


class ConfigurationRejected(PipelineError):
    """The service rejected the workflow or request as invalid (ValidationException) before
    anything ran: the configuration or the deployed workflow must be fixed."""

    exit_code = exit_codes.USAGE


class MatchOutputMissing(PipelineError):
    """A SUCCEEDED job whose output folder holds no data file."""


class GateClosed(PipelineError):
    """An upstream blocking data-quality check failed for this partition."""

    exit_code = exit_codes.DQ_GATE_FAILED


class UpstreamRefused(GateClosed):
    """The upstream stage's output is missing, unreadable, stale (not made from the latest
    upstream) or disagrees with the upstream's own record of it; nothing was written."""


class MissingUpstream(PipelineError):
    """The stage needs an upstream materialisation of this partition that does not exist."""


# Our classes; for each exit code the most general comes first (it stands in for foreign errors).
CODED = (
    PipelineError,
    ServiceUnavailable,
    MatchingJobTimeout,
    ConfigurationRejected,
    GateClosed,
    MatchingJobFailed,
    QuotaExceeded,
    MatchOutputMissing,
    UpstreamRefused,
    MissingUpstream,
)
# The class of ours that replaces an exception of each exit code (`masked_error`).
_STAND_IN = {
    code: next(cls for cls in CODED if cls.exit_code == code)
    for code in {*(cls.exit_code for cls in CODED), exit_codes.SERVICE_UNAVAILABLE}
}


def masked_error(exc: BaseException) -> PipelineError:
    """One of ours in place of `exc`, with its text masked and the same exit code."""
    return _STAND_IN[exit_code_of(exc)](f"{type(exc).__name__}: {exc}")


def _unavailable_types() -> tuple[type[BaseException], ...]:
    """Client errors that mean "a service is unreachable or the credentials are wrong", by
    their own classes (never by name: any library may call an error OperationalError):
    botocore's credential and connection errors; the Snowflake connector's OperationalError
    (its connection and login failures, e.g. 250001 "Could not connect to Snowflake backend")
    and ForbiddenError. The job history's HistoryError says so itself (`exit_code`)."""
    from botocore import exceptions as boto

    found: list[type[BaseException]] = [
        boto.NoCredentialsError,
        boto.PartialCredentialsError,
        boto.CredentialRetrievalError,
        boto.TokenRetrievalError,
        boto.UnauthorizedSSOTokenError,
        boto.SSOTokenLoadError,
        boto.EndpointConnectionError,
        boto.ConnectTimeoutError,
        boto.ReadTimeoutError,
        boto.ConnectionClosedError,
    ]
    try:
        from snowflake.connector import errors as snowflake
    except ImportError:  # a deployment without the connector cannot raise its errors
        pass
    else:
        found += [snowflake.OperationalError, snowflake.ForbiddenError]
    return tuple(found)


def exit_code_of(exc: BaseException) -> int:
    """The exit code the bridge gives a stage that raised `exc`: that of the first exception
    in the chain (the exception, then what it was raised from) that has one: ours carry it
    (`exit_code`), a known client error maps by its type."""
    unavailable = _unavailable_types()
    node: BaseException | None = exc
    seen: set[int] = set()
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        code = getattr(type(node), "exit_code", None)
        if isinstance(node, Redacting) and isinstance(code, int):
            return code
        if isinstance(node, unavailable):
            return exit_codes.SERVICE_UNAVAILABLE
        node = node.__cause__ or node.__context__
    return exit_codes.STAGE_FAILED
