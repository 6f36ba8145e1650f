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


class GateClosed(PipelineError):
    """An upstream blocking data-quality check failed for this partition."""

    exit_code = exit_codes.DQ_GATE_FAILED


class UpstreamRefused(GateClosed):
    """The upstream stage's output is missing, unreadable, stale (not made from the latest
    upstream) or disagrees with the upstream's own record of it; nothing was written."""


class MissingUpstream(PipelineError):
    """The stage needs an upstream materialisation of this partition that does not exist."""


EXIT_CODES = {cls.__name__: cls.exit_code for cls in
              (PipelineError, MatchingJobFailed, MatchingJobTimeout, ServiceUnavailable, GateClosed, UpstreamRefused,
               MissingUpstream)}
