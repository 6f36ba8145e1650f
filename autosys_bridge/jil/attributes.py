"""What AutoSys Workload Automation AE 12 accepts: subcommands, attribute names, value rules.

The parser uses the names to split `autorep -q` header lines (`insert_job: X   job_type: CMD`)
and to flag words that are not JIL (the old guide's `notification:` and `define_variable:`).
The linter (`lint.py`) applies `JIL_RULES`, what `jil` itself rejects, to any JIL; the
emitter validates every attribute it writes against `VALIDATORS` (those rules and its own
policies), so a configuration can never produce JIL that `jil` would reject.

Sources checked (Broadcom TechDocs "AutoSys Workload Automation 12.0.01/12.1", JIL job
definitions, as quoted by public material found with the project's search tool):
- `send_notification: y | n | f` (y: on every completion, f: on failure only, n: never);
- `notification_emailaddress`, `notification_emailaddress_on_failure`, `..._on_success`,
  `..._on_terminated`, `..._on_alarm`: one address per statement, repeated for several
  recipients; `notification_msg`: up to 255 characters;
- `alarm_if_fail` / `alarm_if_terminated`: y|n or 1|0;
- `insert_resource` with `res_type` D (depletable), R (renewable) or T (threshold) and
  `amount`; jobs claim units with `resources: (NAME,QUANTITY=n,FREE=Y|N|A)`, where FREE
  applies to renewable resources: Y frees the unit when the job succeeds, N never (an operator
  frees it), A always, however the job ends. There is no `V` resource type: a "virtual resource" in
  AutoSys terms is any of these (they are not tied to a machine), and a renewable one of
  amount 1 is the mutex that serialises jobs;
- the subcommand inventory of the JIL reference, plus the `autocal_asc` export statements
  (`calendar`, `cycle`, `extended_calendar`), which are read by `autocal_asc`, not `jil`.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Callable

from autosys_bridge.jil.conditions import ConditionError, parse_condition

JOB_SUBCOMMANDS = frozenset({"insert_job", "update_job", "override_job", "delete_job", "delete_box", "rename_job"})
OTHER_SUBCOMMANDS = frozenset(
    {
        "insert_machine",
        "update_machine",
        "delete_machine",
        "insert_resource",
        "update_resource",
        "delete_resource",
        "insert_xinst",
        "update_xinst",
        "delete_xinst",
        "insert_blob",
        "delete_blob",
        "insert_glob",
        "delete_glob",
        "insert_global",
        "delete_global",
        "insert_monbro",
        "update_monbro",
        "delete_monbro",
        "insert_job_type",
        "update_job_type",
        "delete_job_type",
        "insert_connectionprofile",
        "update_connectionprofile",
        "delete_connectionprofile",
    }
)
# autocal_asc export/import statements; `ext_calendar` is a spelling seen in the wild.
CALENDAR_STATEMENTS = frozenset({"calendar", "cycle", "extended_calendar", "ext_calendar"})
STATEMENT_KEYWORDS = JOB_SUBCOMMANDS | OTHER_SUBCOMMANDS | CALENDAR_STATEMENTS
# A key of this shape that is not a known subcommand is reported, never folded into the
# previous statement as an attribute: that would silently merge two definitions.
SUBCOMMAND_SHAPE = re.compile(r"^(insert|update|delete|override|rename)_\w+$")

# The one-letter legacy spellings of job_type; anything else is upper-cased as written.
JOB_TYPE_ALIASES = {"c": "CMD", "b": "BOX", "f": "FW"}
KNOWN_JOB_TYPES = frozenset(
    {
        "CMD",
        "BOX",
        "FW",
        "FT",
        "FTP",
        "SFTP",
        "SCP",
        "SQL",
        "DBMON",
        "DBTRIG",
        "DBPROC",
        "HTTP",
        "I5",
        "JMSPUB",
        "JMSSUB",
        "JMXMAG",
        "JMXMAS",
        "JMXMC",
        "JMXML",
        "JMXMOP",
        "JMXSUB",
        "OMCPU",
        "OMD",
        "OMEL",
        "OMIP",
        "OMP",
        "OMS",
        "OMTF",
        "PS",
        "SAPBDC",
        "SAPBWIP",
        "SAPBWPC",
        "SAPDA",
        "SAPEVT",
        "SAPJM",
        "SAPPM",
        "SAPHANA",
        "SNMPGET",
        "SNMPSET",
        "SNMPSUB",
        "SNMPTRAP",
        "WBSV",
        "WOL",
        "WSDOC",
        "ZOSDST",
        "ZOSJOB",
        "ZOSM",
        "MICROFOCUS",
        "CONTAINER",
        "CONTAINERJOB",
        "OAC",
        "OACOPY",
        "OAREQSET",
        "OASET",
        "OASG",
        "ENTYBEAN",
        "POJO",
        "RESTAPI",
        "SQLAGENT",
        "INFORMATICA",
        "AWSBATCH",
        "AZUREDF",
        "GCPDF",
        "AWSLAMBDA",
        "AZUREFUNC",
        "HADOOP",
        "SPARK",
    }
)

# Attribute names of job definitions (all job types the bridge may meet in an estate).
JOB_ATTRIBUTES = frozenset(
    {
        # common to all job types
        "job_type",
        "box_name",
        "owner",
        "permission",
        "machine",
        "description",
        "group",
        "application",
        "date_conditions",
        "days_of_week",
        "start_times",
        "start_mins",
        "run_calendar",
        "exclude_calendar",
        "run_window",
        "timezone",
        "condition",
        "must_start_times",
        "must_complete_times",
        "term_run_time",
        "max_run_alarm",
        "min_run_alarm",
        "alarm_if_fail",
        "alarm_if_terminated",
        "auto_delete",
        "auto_hold",
        "job_load",
        "priority",
        "n_retrys",
        "box_terminator",
        "job_terminator",
        "status",
        "send_notification",
        "notification_msg",
        "notification_emailaddress",
        "notification_emailaddress_on_alarm",
        "notification_emailaddress_on_failure",
        "notification_emailaddress_on_success",
        "notification_emailaddress_on_terminated",
        "notification_alarm_types",
        "notification_template",
        "service_desk",
        "svcdesk_attr",
        "svcdesk_desc",
        "svcdesk_imp",
        "svcdesk_pri",
        "svcdesk_sev",
        "resources",
        "avg_runtime",
        "job_class",
        "retry_on_failure_count",
        "retry_on_failure_delay",
        "retry_on_failure_details",
        "heartbeat_interval",
        "chk_files",
        "ulimit",
        "interactive",
        "elevated",
        "external_os_user",
        "os_user",
        "continuous",
        # box jobs
        "box_success",
        "box_failure",
        # command jobs
        "command",
        "profile",
        "std_in_file",
        "std_out_file",
        "std_err_file",
        "envvars",
        "success_codes",
        "fail_codes",
        "max_exit_success",
        "shell",
        "fail_message",
        "success_message",
        "fail_severity",
        "success_severity",
        # file watchers and file triggers
        "watch_file",
        "watch_file_type",
        "watch_file_min_size",
        "watch_interval",
        "watch_no_change",
        "watch_file_change_type",
        "watch_file_change_value",
        "watch_file_groupname",
        "watch_file_owner",
        "watch_file_recursive",
        "watch_file_win_user",
        # file transfer
        "ftp_compression",
        "ftp_local_name",
        "ftp_local_user",
        "ftp_remote_name",
        "ftp_server_name",
        "ftp_server_port",
        "ftp_transfer_direction",
        "ftp_transfer_type",
        "ftp_use_ssl",
        "ftp_user_type",
        "scp_local_name",
        "scp_local_user",
        "scp_protocol",
        "scp_remote_dir",
        "scp_remote_name",
        "scp_server_name",
        "scp_server_port",
        "scp_target_os",
        "scp_transfer_direction",
        "scp_transfer_mode",
        "scp_create_targetdir",
        "scp_delete_sourcedir",
        "scp_delete_sourcefile",
        "scp_rename_sourcefile",
        # database jobs
        "connect_string",
        "sql_command",
        "sp_name",
        "sp_arg",
        "tablename",
        "dbtype",
        "trigger_type",
        "trigger_cond",
        "monitor_cond",
        "monitor_type",
        "monitor_mode",
        "result_type",
        "destination_file",
        "user_role",
        # monitoring, web services and other agent job types
        "url",
        "method_name",
        "port",
        "service_name",
        "provider_url",
        "connection_factory",
        "destination_name",
        "process_name",
        "process_status",
        "cpu_usage",
        "disk_drive",
        "disk_space",
        "disk_format",
        "ip_host",
        "ip_port",
        "ip_status",
        "snmp_host",
        "snmp_oid",
        "mac_address",
        "broadcast_address",
        "poll_interval",
        "inside_range",
        "lower_boundary",
        "upper_boundary",
        "text_file_name",
        "text_file_filter",
        "text_file_mode",
        "text_file_filter_exists",
        "time_format",
        "time_position",
        "win_log_name",
        "win_event_type",
        "win_event_id",
        "win_event_source",
        "win_service_name",
        "win_service_status",
        "i5_name",
        "i5_action",
        "i5_lib",
        "i5_params",
        "i5_job_desc",
        "i5_job_queue",
        "jcl_library",
        "jcl_member",
        "zos_jobname",
        "zos_dataset",
        "ps_process_name",
        "ps_process_type",
        "ps_run_cntrl_id",
        "sap_job_name",
        "sap_client",
        "sap_lang",
        "sap_office",
        "job_criteria",
        "encoding",
        "success_pattern",
        "filter",
        "headers",
    }
)
MACHINE_ATTRIBUTES = frozenset(
    {
        "type",
        "node_name",
        "max_load",
        "factor",
        "opsys",
        "agent_name",
        "port",
        "character_code",
        "encryption_type",
        "key_to_agent",
        "heartbeat_attempts",
        "heartbeat_freq",
        "description",
        "machine",
    }
)
RESOURCE_ATTRIBUTES = frozenset({"res_type", "amount", "machine", "description"})
XINST_ATTRIBUTES = frozenset(
    {"xtype", "xmachine", "xport", "xmanager", "xcrypt_type", "xkey_to_manager", "xcomm_alias"}
)
OTHER_ATTRIBUTES = frozenset(
    {
        "new_name",
        "blob_input",
        "blob_file",
        "blob_mode",
        "value",
        "server",
        "job_type_name",
        "job_name",
        "monbro_name",
        "mode",
        "alarm",
        "all_events",
        "all_status",
        "currun",
        "job_filter",
        "sound",
        "status",
        "success",
        "failure",
        "running",
        "starting",
        "terminated",
        "suspended",
        "alarm_verif",
        "profile_name",
        "connectionprofile_type",
        "description",
    }
)
CALENDAR_ATTRIBUTES = frozenset(
    {
        "description",
        "start_date",
        "end_date",
        "workday",
        "non_workday",
        "holiday",
        "holcal",
        "cyccal",
        "adjust",
        "condition",
        "datetimes",
        "days",
        "dates",
    }
)
KNOWN_ATTRIBUTES = (
    JOB_ATTRIBUTES
    | MACHINE_ATTRIBUTES
    | RESOURCE_ATTRIBUTES
    | XINST_ATTRIBUTES
    | OTHER_ATTRIBUTES
    | CALENDAR_ATTRIBUTES
)
# Words people put in JIL that AutoSys does not know, with what to write instead.
NOT_JIL = {
    "notification": "use send_notification and notification_emailaddress*",
    "define_variable": 'set a global with `sendevent -E SET_GLOBAL -G "NAME=value"`',
}
# Attributes whose value is a comma-separated list that may continue on the next lines
# without a continuation character (AE documents this for start_times and its relatives).
LIST_VALUED = frozenset(
    {
        "start_times",
        "start_mins",
        "must_start_times",
        "must_complete_times",
        "days_of_week",
        "datetimes",
        "days",
        "dates",
        "success_codes",
        "fail_codes",
        "permission",
        "workday",
        "envvars",
    }
)
# Job attributes whose value is a condition expression (parsed into a tree).
CONDITION_ATTRIBUTES = ("condition", "box_success", "box_failure")

# AE 12: 1-64 characters of A-Z a-z 0-9 . _ - : # (the colon is legal, and is escaped or
# quoted wherever it appears in a value).
JOB_NAME = re.compile(r"^[A-Za-z0-9._:#-]{1,64}$")
JOB_NAME_RULE = "1-64 of A-Za-z0-9 . _ - : #"
MAX_NOTIFICATION_MSG = 255


@functools.lru_cache(maxsize=256)  # an estate spells its job types a handful of ways
def normalise_job_type(value: str) -> str:
    return JOB_TYPE_ALIASES.get(value.strip().lower(), value.strip().upper())


# ---- which job types accept an attribute, and which attributes exclude each other
#
# Sources. Every attribute page of Broadcom's "AutoSys Workload Automation 12.0.01" reference
# (techdocs.broadcom.com, Reference > AE Job Information Language > JIL Job Definitions) has a
# "Supported Job Types" line naming the job types the attribute is valid for; `jil` refuses it
# on any other type. The lines used here were read as quoted, page by page, in the Javadoc of
# SOS GmbH's JS7 AutoSys converter (package com.sos.js7.converter.autosys.common.v12.job, found
# with the project's search tool), and where noted cross-checked against the AE 12.x dossier of
# the public dsl41 project (docs/autosys-semantics.md, docs/decision-log.md).
#
# Only the job types whose attribute sets those pages settle are checked (CHECKED_JOB_TYPES):
# the agent plug-in types (SAP, z/OS, web services, ...) gain attributes from release to
# release, and the sources disagree on them, so an attribute on one of those is never reported.
# Left unrestricted for want of a page saying otherwise (a false error is worse than a miss):
# std_in_file, std_out_file, std_err_file, envvars, watch_file_min_size, watch_file_type,
# watch_no_change, owner (its page excepts FT jobs without saying how), priority (its page
# says "not for box jobs", yet `autorep -q` exports of boxes carry it) and every attribute its
# page calls "optional for all job types" (job_terminator, box_terminator, n_retrys, ...).
CHECKED_JOB_TYPES = frozenset({"CMD", "BOX", "FW", "FT"})


def _for(*job_types: str) -> tuple[frozenset[str], str]:
    return frozenset(job_types), ", ".join(job_types)


# attribute -> (the job types it is valid for, how a message names them)
ATTRIBUTE_JOB_TYPES: dict[str, tuple[frozenset[str], str]] = {
    # "box_success Attribute - Define Criteria for Box Job Success" and "box_failure Attribute -
    # Define Criteria for Box Job Failure": valid only for the BOX job type.
    "box_success": _for("BOX"),
    "box_failure": _for("BOX"),
    # "command Attribute - Specify a Command or Script to Run": required for the Command (CMD)
    # type, the only type the page lists (dsl41 DL-32 reads it the same way for FW).
    "command": _for("CMD"),
    # "profile Attribute - Specify a Job Profile": optional for Command (CMD) and File Watcher (FW).
    "profile": _for("CMD", "FW"),
    # "max_exit_success Attribute - Specify Maximum Exit Code for Success": CMD, i5/OS, Micro Focus.
    "max_exit_success": _for("CMD", "I5", "MICROFOCUS"),
    # "fail_codes Attribute - Define Exit Codes to Indicate Job Failure" (success_codes: the same
    # list): CMD, HTTP, i5/OS, Micro Focus, Remote Execution, Web Service Document; dsl41 DL-33
    # reads Command, i5/OS, Micro Focus and z/OS. No reading lists BOX, FW or FT.
    "fail_codes": _for("CMD", "HTTP", "I5", "MICROFOCUS", "WSDOC"),
    "success_codes": _for("CMD", "HTTP", "I5", "MICROFOCUS", "WSDOC"),
    # "heartbeat_interval Attribute - Set the Monitoring Frequency for a Job": the CMD type.
    "heartbeat_interval": _for("CMD"),
    # "interactive Attribute - Specify Whether to Run a Command Job in Interactive Mode on
    # Windows": the Command (CMD) type (ignored on UNIX).
    "interactive": _for("CMD"),
    # "ulimit Attribute - Specify UNIX Resource Limits": the CMD type on UNIX.
    "ulimit": _for("CMD"),
    # "watch_file Attribute": required for the FW and FT types.
    "watch_file": _for("FW", "FT"),
    # "watch_interval Attribute - Specify the Frequency to Monitor a File": the FW type.
    "watch_interval": _for("FW"),
    # "machine Attribute - Define the Client Where a Job Runs": required for all job types, and
    # does not apply to BOX jobs.
    "machine": (KNOWN_JOB_TYPES - {"BOX"}, "every job type but BOX"),
}

# job type -> the attributes (of ATTRIBUTE_JOB_TYPES) it does not accept, for the checked types
ATTRIBUTES_NOT_FOR: dict[str, frozenset[str]] = {
    job_type: frozenset(name for name, (types, _) in ATTRIBUTE_JOB_TYPES.items() if job_type not in types)
    for job_type in CHECKED_JOB_TYPES
}

# (attribute, attribute, why): `jil` refuses a job definition that has both. Source: the
# start_times/start_mins and days_of_week/run_calendar pages of the 12.0.01 reference, as
# recorded by the dsl41 dossier (docs/autosys-semantics.md SEM-31, marked verified against
# TechDocs 12.x: "both -> JIL error").
EXCLUSIVE_ATTRIBUTES: tuple[tuple[str, str, str], ...] = (
    ("start_times", "start_mins", "a job starts at clock times or at minutes past every hour, not both"),
    ("days_of_week", "run_calendar", "a job runs on days of the week or on a calendar's days, not both"),
)
# must_start_times: absolute times ("hh:mm") need date_conditions and start_times in the job,
# and with start_mins only +minutes is allowed: Broadcom KB000057246 ("What parameter can I use
# to make sure a job runs at X time?", quoting the must_start_times page: "You will get an error
# if you define absolute times with start_mins"). Nothing read says the same of
# must_complete_times, which is left alone.
ABSOLUTE_MUST_START_NEEDS = ("date_conditions", "start_times")


# ---- value validators used by the emitter (and its test): None = valid, else the reason

Validator = Callable[[str], "str | None"]

_BOOLEAN = {"0", "1", "y", "n", "yes", "no", "true", "false"}
# The days_of_week codes, Sunday first as er_assets.config.WEEKDAYS.
DAY_CODES = ("su", "mo", "tu", "we", "th", "fr", "sa")
_PERMISSIONS = {"gx", "ge", "wx", "we", "mx", "me", "ex", "ee"}
_EMAIL = re.compile(r"^[^@\s,;\"]+@[^@\s,;\"]+\.[^@\s,;\"]+$")
_ENVVAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S.*$")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
_DEADLINE = re.compile(r"^([0-6]?\d|7[01]):[0-5]\d$")
_RUN_WINDOW = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d\s*-\s*([01]?\d|2[0-3]):[0-5]\d$")
_RESOURCE_CLAIM = re.compile(
    r"^\((?P<name>[A-Za-z0-9._#-]{1,64}),\s*QUANTITY=(?P<qty>\d+)(,\s*FREE=(?P<free>[YNA]))?\)$"
)
# Several claims are joined with AND (or a comma): (A,QUANTITY=1) AND (B,QUANTITY=2,FREE=A).
_CLAIM = re.compile(r"\([^()]*\)")
_CLAIMS_RULE = "expected (NAME,QUANTITY=n[,FREE=Y|N|A]) [AND (...)]"
# POSIX TZ strings (`EST5EDT`, `CST6CDT,M3.2.0,M11.1.0`, `<+0530>-5:30`), which AE accepts
# besides the names in its timezone table.
_POSIX_TZ = re.compile(
    r"^(?:[A-Za-z]{3,}|<[+-]?[A-Za-z0-9]+>)[+-]?\d{1,2}(?::\d{2}){0,2}"
    r"(?:(?:[A-Za-z]{3,}|<[+-]?[A-Za-z0-9]+>)(?:[+-]?\d{1,2}(?::\d{2}){0,2})?"
    r"(?:,[JM]?[\d.]+(?:/[+-]?\d{1,3}(?::\d{2}){0,2})?,[JM]?[\d.]+(?:/[+-]?\d{1,3}(?::\d{2}){0,2})?)?)?$"
)
# Names of AE's shipped timezone table that are not IANA names (the US/Canadian zone words
# and common abbreviations); IANA names (`America/New_York`, `US/Eastern`) are accepted too,
# in any case. A site's own entries (added with `autotimezone`) are declared to the linter
# with `--timezone NAME`.
AE_TIMEZONE_NAMES = frozenset(
    name.lower()
    for name in (
        "Eastern",
        "Central",
        "Mountain",
        "Pacific",
        "Alaska",
        "Hawaii",
        "Atlantic",
        "Newfoundland",
        "Arizona",
        "Aleutian",
        "EST",
        "EDT",
        "CST",
        "CDT",
        "MST",
        "MDT",
        "PST",
        "PDT",
        "AKST",
        "HST",
        "AST",
        "NST",
        "GMT",
        "UTC",
        "UCT",
        "WET",
        "CET",
        "MET",
        "EET",
        "BST",
        "IST",
        "JST",
        "KST",
        "HKT",
        "SGT",
        "AEST",
        "ACST",
        "AWST",
        "NZST",
    )
)


def _valid_job_name(value: str) -> str | None:
    return None if JOB_NAME.match(value) else f"not a job name ({JOB_NAME_RULE})"


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "empty"


def _boolean(value: str) -> str | None:
    return None if value.lower() in _BOOLEAN else "expected 1/0 or y/n"


def _one_of(*choices: str) -> Validator:
    return lambda value: None if value.lower() in choices else f"expected one of {', '.join(choices)}"


def _integer(low: int, high: int) -> Validator:
    def check(value: str) -> str | None:
        if not value.isdigit() or not low <= int(value) <= high:
            return f"expected a whole number {low}..{high}"
        return None

    return check


def _days_of_week(value: str) -> str | None:
    if value.lower() == "all":
        return None
    days = [d.strip().lower() for d in value.split(",")]
    return None if days and all(d in DAY_CODES for d in days) else "expected all or su,mo,...,sa"


def _start_times(value: str) -> str | None:
    times = [t.strip() for t in value.split(",")]
    return None if all(_HHMM.match(t) for t in times) else "expected HH:MM[, HH:MM...]"


def _iana_names() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def timezone_problem(value: str, extra: frozenset[str] = frozenset()) -> str | None:
    """None if AE accepts `value` as a timezone: an IANA name, a name of AE's table (or of
    the site's, `extra`), or a POSIX TZ string."""
    name = value.strip()
    if name.lower() in AE_TIMEZONE_NAMES or name.lower() in extra or _POSIX_TZ.match(name):
        return None
    if name.lower() in _IANA:
        return None
    return "unknown time zone (not an IANA name, an AE timezone table name or a POSIX TZ string)"


def _timezone(value: str) -> str | None:
    return timezone_problem(value)


_IANA = _iana_names()


def _deadline_times(value: str) -> str | None:
    # must_start_times / must_complete_times: clock times up to 71:59 (two days past the start
    # day, Broadcom KB000057246), or +minutes after the start time.
    if re.fullmatch(r"\+\d{1,4}", value.strip()):
        return None
    times = [t.strip() for t in value.split(",")]
    ok = all(_DEADLINE.match(t) for t in times)
    return None if ok else "expected HH:MM[, HH:MM...] (up to 71:59) or +minutes"


def absolute_deadline(value: str) -> bool:
    """True for a valid must_start_times/must_complete_times of clock times (not +minutes)."""
    return all(_DEADLINE.match(t.strip()) for t in value.split(","))


def _start_mins(value: str) -> str | None:
    minutes = [m.strip() for m in value.split(",")]
    ok = all(m.isdigit() and int(m) <= 59 for m in minutes)
    return None if ok else "expected minutes 0-59[, ...]"


def _run_window(value: str) -> str | None:
    return None if _RUN_WINDOW.match(value.strip()) else 'expected "hh:mm-hh:mm"'


def _resource_claims(value: str) -> str | None:
    text, position, claims = value.strip(), 0, 0
    for claim in _CLAIM.finditer(text):
        # Nothing before the first claim; AND or a comma between two.
        between = text[position : claim.start()].strip().lower()
        if between not in (("",) if claims == 0 else (",", "and")):
            return _CLAIMS_RULE
        match = _RESOURCE_CLAIM.match(claim.group(0).replace(" ", ""))
        if match is None or int(match["qty"]) < 1:
            return _CLAIMS_RULE
        position, claims = claim.end(), claims + 1
    return None if claims and not text[position:].strip() else _CLAIMS_RULE


def _permission(value: str) -> str | None:
    if not value.strip():
        return None  # `permission:` with no value: owner only (seen in production exports)
    parts = [p.strip().lower() for p in value.split(",")]
    return None if all(p in _PERMISSIONS for p in parts) else "expected gx,ge,wx,we,mx,me"


def _email(value: str) -> str | None:
    return None if _EMAIL.match(value) else "not a single email address"


def _message(value: str) -> str | None:
    return None if 0 < len(value) <= MAX_NOTIFICATION_MSG else "1-255 characters"


def _absolute_path(value: str) -> str | None:
    return None if value.startswith("/") else "expected an absolute path"


def _envvar(value: str) -> str | None:
    return None if _ENVVAR.match(value) else "expected NAME=value"


def _condition(value: str) -> str | None:
    try:
        parse_condition(value)
    except ConditionError as exc:
        return str(exc)
    return None


# What AE's `jil` itself rejects, attribute by attribute: the linter applies these to any
# JIL; the emitter applies them plus its own policies (VALIDATORS).
JIL_RULES: dict[str, Validator] = {
    "job_type": lambda v: None if normalise_job_type(v) in KNOWN_JOB_TYPES else "unknown job type",
    "box_name": _valid_job_name,
    "permission": _permission,
    "timezone": _timezone,
    "date_conditions": _boolean,
    "alarm_if_fail": _boolean,
    "alarm_if_terminated": _boolean,
    "box_terminator": _boolean,
    "job_terminator": _boolean,
    "auto_hold": _boolean,
    "days_of_week": _days_of_week,
    "start_times": _start_times,
    "must_start_times": _deadline_times,
    "must_complete_times": _deadline_times,
    "start_mins": _start_mins,
    "run_window": _run_window,
    "n_retrys": _integer(0, 20),
    "term_run_time": _integer(0, 527040),
    "max_run_alarm": _integer(0, 527040),
    "min_run_alarm": _integer(0, 527040),
    "send_notification": _one_of("y", "n", "f"),
    "notification_msg": _message,
    "resources": _resource_claims,
    "res_type": _one_of("d", "r", "t"),
    "amount": _integer(0, 2_147_483_647),
}
# Times must be quoted (or their colons escaped): `jil` rejects `start_times: 10:30`.
TIME_ATTRIBUTES = frozenset({"start_times", "must_start_times", "must_complete_times", "run_window"})

# The emitter's rules: everything `jil` rejects, and what the bridge's own JIL must be
# (absolute paths, one address per attribute, a parsable condition).
VALIDATORS: dict[str, Validator] = {
    **JIL_RULES,
    "run_calendar": _valid_job_name,  # the emitter's calendar names follow job-name rules
    "owner": _non_empty,
    "machine": _non_empty,
    "description": lambda v: None if len(v) <= 500 else "at most 500 characters",
    "condition": _condition,
    "command": _non_empty,
    "profile": _absolute_path,
    "std_out_file": _absolute_path,
    "std_err_file": _absolute_path,
    "notification_emailaddress": _email,
    "notification_emailaddress_on_failure": _email,
    "notification_emailaddress_on_success": _email,
    "notification_emailaddress_on_terminated": _email,
    "notification_emailaddress_on_alarm": _email,
    "envvars": _envvar,
}
