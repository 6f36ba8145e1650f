"""Errors the stages raise for expected failures, each tied to a bridge exit code.

The bridge reads the class name back from the Dagster event log, so AutoSys can tell a
timeout from a broken credential without parsing messages.
"""

from autosys_bridge import exit_codes


class PipelineError(Exception):
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


class MissingUpstream(PipelineError):
    """The stage needs an upstream materialisation of this partition that does not exist."""


EXIT_CODES = {cls.__name__: cls.exit_code for cls in
              (PipelineError, MatchingJobFailed, MatchingJobTimeout, ServiceUnavailable, QuotaExceeded,
               ConfigurationRejected, MatchOutputMissing, GateClosed, MissingUpstream)}
