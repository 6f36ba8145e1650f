"""Exit codes of `autosys-bridge`, documented in the README for AutoSys operators.

`dagster asset materialize` returns 1 for every failure; AutoSys needs to tell a bad DQ gate
from a timeout from a broken credential, so the bridge maps each to its own code.
"""

OK = 0
STAGE_FAILED = 1  # a stage raised an error (bad data, a FAILED matching job, a bug)
USAGE = 2  # bad arguments or bad configuration; nothing ran
DQ_GATE_FAILED = 3  # a blocking data-quality check failed; downstream stages did not run
TIMEOUT = 4  # the matching job outlived EXECUTION_TIMEOUT (it may still be running at AWS)
SERVICE_UNAVAILABLE = 5  # a service is unreachable, or credentials are missing or expired
TERMINATED = 143  # SIGTERM (KILLJOB, term_run_time): the run was cancelled cleanly

DESCRIPTIONS = {
    OK: "success",
    STAGE_FAILED: "stage failed",
    USAGE: "bad usage or configuration",
    DQ_GATE_FAILED: "data-quality gate failed",
    TIMEOUT: "matching job timed out",
    SERVICE_UNAVAILABLE: "service unreachable or credentials invalid",
    TERMINATED: "terminated by SIGTERM; run cancelled",
}
