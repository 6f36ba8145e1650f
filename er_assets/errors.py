"""Errors the stages raise for expected failures, each tied to a bridge exit code.

The bridge reads the class name back from the Dagster event log, so AutoSys can tell a
timeout from a broken credential without parsing messages.
"""

from er_assets import exit_codes
from er_assets.redact import Redacting


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


# Class names of errors raised by clients rather than by our stages that still mean "a service is
# unreachable or the credentials are wrong": botocore's, the job history's, Snowflake's connection errors.
UNAVAILABLE_ERROR_CLASSES = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "TokenRetrievalError",
        "HistoryError",
        "OperationalError",
        "ForbiddenError",
        "UnauthorizedSSOTokenError",
        "SSOTokenLoadError",
        "CredentialRetrievalError",
        "ReadTimeoutError",
        "ConnectionClosedError",
    }
)
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
# Exit code by exception class name: the bridge reads names back from the Dagster event log,
# the job history from the exception itself, and both walk the chain of causes the same way.
EXIT_CODES = {
    **dict.fromkeys(UNAVAILABLE_ERROR_CLASSES, exit_codes.SERVICE_UNAVAILABLE),
    **{cls.__name__: cls.exit_code for cls in CODED},
}
# The class of ours that replaces an exception of each exit code (`masked_error`): from the
# same classes as EXIT_CODES, so the bridge reading the replacement's name and the history
# reading the original's chain give the same code.
_STAND_IN = {code: next(cls for cls in CODED if cls.exit_code == code) for code in set(EXIT_CODES.values())}


def masked_error(exc: BaseException) -> PipelineError:
    """One of ours in place of `exc`, with its text masked and the same exit code."""
    return _STAND_IN[exit_code_of(exc)](f"{type(exc).__name__}: {exc}")


def exit_code_of(exc: BaseException) -> int:
    """The exit code the bridge gives a stage that raised `exc`: that of the first exception
    in the chain (the exception, then what it was raised from) whose class has one."""
    node, seen = exc, set()
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if type(node).__name__ in EXIT_CODES:
            return EXIT_CODES[type(node).__name__]
        node = node.__cause__ or node.__context__
    return exit_codes.STAGE_FAILED
