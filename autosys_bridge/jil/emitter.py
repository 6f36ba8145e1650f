"""The AutoSys 12 JIL that runs the configured domains, derived from the domain configuration.

Per domain: a BOX on the domain's schedule holding EXTRACT -> PROCESS -> LOAD command jobs
that call the bridge. The PROCESS jobs of all domains claim one unit of a renewable resource
of amount 1 with `FREE=A`, so AWS's one-matching-job-per-region quota is never exceeded and a
failed or killed PROCESS gives the unit back. ER_ON_DEMAND is an unscheduled BOX of the same
three stages for any domain and date handed over in AutoSys globals; only its PROCESS claims
the unit, and the globals reach the bridge as environment variables (`envvars`), never as
command-line text. Monthly domains run on a calendar, written separately in `autocal_asc`
import format (`emit_calendars`). docs/jil.md lists every attribute written here and why.

Output is deterministic (same configuration, same bytes) and every attribute is checked
against `attributes.VALIDATORS`: a configuration that would produce JIL AutoSys rejects is
refused with a JilEmitError naming the domain and the value.
"""

from __future__ import annotations

import calendar as gregorian
import datetime as dt
import math
import posixpath
import re

from autosys_bridge.jil.attributes import (
    CONDITION_ATTRIBUTES,
    DAY_CODES,
    JOB_NAME,
    JOB_NAME_RULE,
    VALIDATORS,
)
from autosys_bridge.jil.conditions import ConditionError, parse_condition
from autosys_bridge.jil.model import Statement
from er_assets.config import WEEKDAYS, AutosysJob, Configuration, Domain, unsafe_characters
from er_assets.stages import JOBS, box_job, command_job

ON_DEMAND_JOB = "ER_ON_DEMAND"
DOMAIN_GLOBAL, DATE_GLOBAL = "ER_DOMAIN", "ER_PROCESS_DATE"
# AutoSys sets AUTORUN (the run number, shared by every job of one box run) in each job's
# environment and expands it in std_out_file/std_err_file: one log pair per box run.
RUN_LOG_SUFFIX = ".$AUTORUN"
# Permissions that let any user of the instance edit a job, and so change the command it runs
# as its owner: never emitted.
WORLD_EDIT = frozenset({"we"})
# Minutes AutoSys lets EXTRACT and LOAD run before it kills them (KILLJOB, exit 143).
EXTRACT_LOAD_MINUTES = 120
# PROCESS gets EXECUTION_TIMEOUT plus this grace: the bridge must reach its own timeout and
# exit TIMEOUT (4), naming the matching job, before AutoSys terminates it with no explanation.
PROCESS_GRACE_MINUTES = 15
MUST_LIMIT_MINUTES = 71 * 60 + 59  # the latest absolute must_complete_times, 71:59
CALENDAR_YEARS = 10  # monthly run calendars cover this many years from schedule.start_date
WEEKDAY_CODES = dict(zip(WEEKDAYS, DAY_CODES))  # schedule.day_of_week -> days_of_week
# The command is not quoted (the agent would pass the quotes to the shell); these are.
_UNQUOTED = frozenset({"command", "resources", *CONDITION_ATTRIBUTES})
# The agent hands `command` to a shell: only words that need no quoting and expand to
# themselves, or an AutoSys global ($$NAME), which AutoSys substitutes before the shell runs.
_SHELL_WORD = r"(\$\$[A-Za-z0-9_]+|[A-Za-z0-9_+,@%=./-]+)"
_SAFE_COMMAND = re.compile(rf"{_SHELL_WORD}( {_SHELL_WORD})*")
# The configuration field each emitted attribute comes from, to name it in a refusal.
_SOURCE_FIELDS = {
    "machine": "autosys.machine",
    "owner": "autosys.owner",
    "permission": "autosys.permission",
    "profile": "autosys.profile",
    "command": "autosys.command",
    "std_out_file": "autosys.log_dir",
    "std_err_file": "autosys.log_dir",
    "notification_msg": "autosys.log_dir",
    "timezone": "schedule.timezone",
    "notification_emailaddress": "notifications.emails",
    "notification_emailaddress_on_failure": "notifications.on_failure or settings.admin_emails",
    "notification_emailaddress_on_success": "notifications.on_success",
    "resources": "settings.autosys_resource",
    "run_calendar": "settings.autosys_calendar_prefix",
}


class JilEmitError(Exception):
    """The configuration cannot be expressed as valid JIL; the message says where and why."""


def job_names(domain: Domain) -> dict[str, str]:
    prefix = domain.autosys.job_prefix
    return {"box": box_job(prefix), **{stage: command_job(prefix, stage) for stage in JOBS}}


def calendar_name(config: Configuration, domain: Domain) -> str:
    return f"{config.settings.autosys_calendar_prefix}{domain.name.upper()}_MONTHLY"


def selected_domains(config: Configuration, names: list[str] | None) -> list[Domain]:
    """The domains to emit, in configuration order; an unknown name raises ConfigError."""
    if not names:
        return list(config.domains.values())
    wanted = {config.domain(name).name for name in names}
    return [domain for domain in config.domains.values() if domain.name in wanted]


def build_statements(config: Configuration, domains: list[str] | None = None) -> list[Statement]:
    """The resource, each domain's box and jobs, and ER_ON_DEMAND, validated."""
    chosen = selected_domains(config, domains)
    for domain in config.domains.values():
        # Checked here, not by the attribute validators: ER_ON_DEMAND needs their common parent.
        if not posixpath.isabs(domain.autosys.log_dir):
            raise JilEmitError(
                f"{config.path}: domain '{domain.name}': autosys.log_dir '{domain.autosys.log_dir}' "
                "is not an absolute path"
            )
    statements = [_resource(config)]
    for domain in chosen:
        statements += _domain_jobs(config, domain)
    # ER_ON_DEMAND serves every domain, whichever ones this emission selects.
    statements += _on_demand(config, list(config.domains.values()))
    _validate(config, statements)
    return statements


def emit_jil(config: Configuration, domains: list[str] | None = None) -> str:
    return render_jil(config, build_statements(config, domains))


def render_jil(config: Configuration, statements: list[Statement]) -> str:
    """The JIL file for these statements: a header, and each statement under its banner.

    Reading the file back gives the same statements, so `render_jil(config,
    parse_jil(emit_jil(config)).statements)` is byte-identical to `emit_jil(config)`.
    """
    header = (
        "/* AutoSys JIL for entity resolution, generated by `autosys-bridge jil` from the domain\n"
        "   configuration. Do not edit: change the configuration, regenerate, and check drift\n"
        "   with `autosys-bridge diff`. Import the run calendars first (`autosys-bridge jil\n"
        "   --calendars -o er.cal; autocal_asc -I er.cal`), then load with `jil < FILE`. */\n"
    )
    blocks = []
    for statement in statements:
        comment = _banner(config, statement)
        blocks.append((comment + "\n" if comment else "") + render_statement(statement))
    return header + "\n" + "\n\n".join(blocks) + "\n"


def build_calendars(config: Configuration, domains: list[str] | None = None) -> list[Statement]:
    calendars = []
    for domain in selected_domains(config, domains):
        if domain.schedule.cadence != "monthly":
            continue
        name = calendar_name(config, domain)
        if not JOB_NAME.match(name):
            raise JilEmitError(f"{config.path}: domain '{domain.name}': calendar name '{name}' is not valid AutoSys")
        calendars.append(Statement("calendar", name, dates=_monthly_dates(domain)))
    return calendars


def emit_calendars(config: Configuration, domains: list[str] | None = None) -> str:
    """The run calendars of monthly domains in `autocal_asc` import format (no comments)."""
    return "\n".join(render_statement(c) + "\n" for c in build_calendars(config, domains))


def render_statement(statement: Statement) -> str:
    """One statement in canonical JIL: lower-case keywords, `autorep -q` header form."""
    attributes = list(statement.attributes)
    header = f"{statement.subcommand}: {statement.name}"
    if attributes and attributes[0].name == "job_type":
        header += f"   job_type: {attributes.pop(0).value}"
    lines = [header]
    lines += [f"{a.name}: {render_value(a.name, a.value)}" for a in attributes]
    lines += statement.dates
    return "\n".join(lines)


def render_value(name: str, value: str) -> str:
    if name == "command":
        return value.replace(":", "\\:")
    if name in _UNQUOTED or not value or not (":" in value or any(c.isspace() for c in value)):
        return value
    if '"' in value:
        raise JilEmitError(f"{name}: a value with spaces or colons cannot also contain '\"': {value!r}")
    return f'"{value}"'


# ---- the statements ---------------------------------------------------------------------


def _resource(config: Configuration) -> Statement:
    resource = Statement("insert_resource", config.settings.autosys_resource)
    resource.add("res_type", "R")  # renewable: a unit returns when the holding job ends
    resource.add("amount", "1")
    resource.add("description", "One AWS Entity Resolution matching job at a time (per-region quota)")
    return resource


def _claim(config: Configuration) -> str:
    # For a renewable resource FREE=Y returns the unit only when the job succeeds and N never;
    # A returns it however the job ends (failure, KILLJOB, term_run_time). One failed PROCESS
    # holding the unit would stop every domain's matching.
    return f"({config.settings.autosys_resource},QUANTITY=1,FREE=A)"


def _domain_jobs(config: Configuration, domain: Domain) -> list[Statement]:
    names = job_names(domain)
    schedule = domain.schedule
    box = _box(names["box"], domain.autosys)
    box.add("date_conditions", "1")
    if schedule.cadence == "monthly":
        box.add("run_calendar", calendar_name(config, domain))
    elif schedule.cadence == "weekly":
        assert schedule.day_of_week is not None  # Schedule requires it of a weekly schedule
        box.add("days_of_week", WEEKDAY_CODES[schedule.day_of_week])
    else:
        box.add("days_of_week", "all")
    box.add("start_times", schedule.time)
    if domain.autosys.condition:
        box.add("condition", domain.autosys.condition)
        try:
            box.conditions["condition"] = parse_condition(domain.autosys.condition)
        except ConditionError as exc:
            raise JilEmitError(
                f"{config.path}: domain '{domain.name}': autosys.condition {domain.autosys.condition!r}: {exc}"
            ) from None
    # AutoSys raises MUST_COMPLETE_ALARM when the box has not completed by then, whether it
    # failed, still runs or never started (held, waiting for its condition, AutoSys down).
    try:
        box.add("must_complete_times", must_complete_time(schedule.time, schedule.sla_minutes))
    except ValueError as exc:
        raise JilEmitError(f"{config.path}: domain '{domain.name}': schedule.sla_minutes: {exc}") from None
    box.add("timezone", schedule.timezone)
    box.add(
        "description",
        f"Entity resolution for {domain.name}: extract, match, load ({_when(domain)})",
    )
    box.add("alarm_if_fail", "1")
    notifications = domain.notifications
    failure = _unique(notifications.on_failure + config.settings.admin_emails)
    jobs = [box]
    for stage in JOBS:
        job = _stage_job(
            config,
            domain.autosys,
            names,
            stage,
            f"{domain.autosys.command} run {domain.name} {stage}",
            domain.autosys.log_dir,
        )
        job.add("description", f"Entity resolution {domain.name}: {stage} stage")
        # Only LOAD reports success (the pipeline is done); every stage reports failure.
        success = notifications.on_success if stage == "load" else []
        message = f"Entity resolution {domain.name} {stage} ({job.name}); logs in {domain.autosys.log_dir}"
        _notify(job, "y" if stage == "load" else "f", message, notifications.emails, failure, success)
        jobs.append(job)
    return jobs


def _box(name: str, autosys: AutosysJob) -> Statement:
    box = Statement("insert_job", name)
    box.add("job_type", "BOX")
    box.add("owner", autosys.owner)
    box.add("permission", autosys.permission)
    return box


def _stage_job(
    config: Configuration,
    autosys: AutosysJob,
    names: dict[str, str],
    stage: str,
    command: str,
    log_dir: str,
) -> Statement:
    """One command job of a box: the attributes every stage job shares, in canonical order."""
    job = Statement("insert_job", names[stage])
    job.add("job_type", "CMD")
    job.add("box_name", names["box"])
    job.add("command", command)
    job.add("machine", autosys.machine)
    job.add("owner", autosys.owner)
    job.add("permission", autosys.permission)
    job.add("profile", autosys.profile)
    previous = JOBS.index(stage) - 1
    if previous >= 0:
        after = names[JOBS[previous]]
        job.add("condition", f"s({after})")
        job.conditions["condition"] = parse_condition(f"s({after})")
    if stage == "process":
        job.add("resources", _claim(config))
    job.add("std_out_file", posixpath.join(log_dir, f"{job.name}{RUN_LOG_SUFFIX}.out"))
    job.add("std_err_file", posixpath.join(log_dir, f"{job.name}{RUN_LOG_SUFFIX}.err"))
    minutes = _process_minutes(config) if stage == "process" else EXTRACT_LOAD_MINUTES
    job.add("term_run_time", str(minutes))
    job.add("alarm_if_fail", "1")
    job.add("alarm_if_terminated", "1")
    return job


def on_demand_names() -> dict[str, str]:
    return {"box": ON_DEMAND_JOB, **{s: command_job(ON_DEMAND_JOB, s) for s in JOBS}}


def _on_demand(config: Configuration, domains: list[Domain]) -> list[Statement]:
    """An unscheduled BOX running the stages of the domain and date set in two globals.

    Three jobs, so only PROCESS holds the matching slot. The globals are handed to the bridge
    as environment variables (`envvars`), where their values never become shell syntax;
    `autosys-bridge on-demand` validates them before use, and asks `autostatus -G` if an
    agent left `$$NAME` unsubstituted (autosys_bridge/on_demand.py, docs/on-demand.md).
    """
    first = domains[0].autosys
    log_dir = posixpath.commonpath([d.autosys.log_dir for d in domains])
    names = on_demand_names()
    box = _box(ON_DEMAND_JOB, first)
    box.add("date_conditions", "0")
    box.add("description", "Entity resolution on demand: any domain and date (docs/on-demand.md)")
    box.add("alarm_if_fail", "1")
    jobs = [box]
    for stage in JOBS:
        job = _stage_job(config, first, names, stage, f"{first.command} on-demand {stage}", log_dir)
        for variable in (DOMAIN_GLOBAL, DATE_GLOBAL):
            job.add("envvars", f"{variable}=$${variable}")
        job.add("description", f"Entity resolution on demand: {stage} stage")
        # The requester hears when the run is done (LOAD) and when any stage fails.
        _notify(
            job,
            "y" if stage == "load" else "f",
            f"Entity resolution on demand {stage} ({job.name}); logs in {log_dir}",
            config.settings.admin_emails,
            [],
            [],
        )
        jobs.append(job)
    return jobs


def _notify(
    job: Statement,
    send: str,
    message: str,
    everyone: list[str],
    failure: list[str],
    success: list[str],
) -> None:
    if not (everyone or failure or success):
        job.add("send_notification", "n")
        return
    job.add("send_notification", send)
    job.add("notification_msg", message)
    # AE takes one address per statement: repeat the attribute for each recipient.
    for address in everyone:
        job.add("notification_emailaddress", address)
    for address in failure:
        job.add("notification_emailaddress_on_failure", address)
    for address in success:
        job.add("notification_emailaddress_on_success", address)


# ---- helpers ------------------------------------------------------------------------------


def _process_minutes(config: Configuration) -> int:
    return math.ceil(config.settings.execution_timeout / 60) + PROCESS_GRACE_MINUTES


def must_complete_time(start: str, sla_minutes: int) -> str:
    """The box's deadline: its start time plus the SLA, as an absolute time (so it also fires
    for a box that never started; a `+minutes` deadline counts from the start). AE allows
    absolute times up to 71:59, two days past the start day (Broadcom KB000057246 on
    must_start_times; must_complete_times takes the same forms)."""
    hours, minutes = map(int, start.split(":"))
    deadline = hours * 60 + minutes + sla_minutes
    if deadline > MUST_LIMIT_MINUTES:
        raise ValueError(
            f"{sla_minutes} minutes after {start} is past 71:59, the latest must_complete_times AutoSys accepts"
        )
    return f"{deadline // 60:02d}:{deadline % 60:02d}"


def _when(domain: Domain) -> str:
    schedule = domain.schedule
    if schedule.cadence == "weekly":
        assert schedule.day_of_week is not None  # Schedule requires it of a weekly schedule
        day = f"{schedule.day_of_week.capitalize()}s "
    elif schedule.cadence == "monthly":
        day = f"day {schedule.day_of_month} of each month "
    else:
        day = "daily "
    return f"{day}at {schedule.time} {schedule.timezone}"


def _monthly_dates(domain: Domain) -> list[str]:
    start = domain.schedule.start_date
    day = domain.schedule.day_of_month
    assert day is not None  # Schedule sets it on every monthly schedule
    dates = []
    for year in range(start.year, start.year + CALENDAR_YEARS):
        for month in range(1, 13):
            date = dt.date(year, month, min(day, gregorian.monthrange(year, month)[1]))
            if date >= start:
                dates.append(f"{date:%m/%d/%Y} 00:00")
    return dates


def _unique(addresses: list[str]) -> list[str]:
    return list(dict.fromkeys(addresses))


def _banner(config: Configuration, statement: Statement) -> str | None:
    for domain in config.domains.values():
        if statement.name == job_names(domain)["box"]:
            return f"/* ---- {domain.name}: {_when(domain)} ---- */"
    if statement.subcommand == "insert_resource":
        return "/* ---- serialises matching jobs across all domains ---- */"
    if statement.name == ON_DEMAND_JOB:
        # Read by the bridge from the environment and validated: never shell syntax.
        return (
            "/* ---- on demand, any domain and date:\n"
            f'   sendevent -E SET_GLOBAL -G "{DOMAIN_GLOBAL}=products"\n'
            f'   sendevent -E SET_GLOBAL -G "{DATE_GLOBAL}=2024-06-30"\n'
            f"   sendevent -E STARTJOB -J {ON_DEMAND_JOB} ---- */"
        )
    return None


def _validate(config: Configuration, statements: list[Statement]) -> None:
    for statement in statements:
        where = f"{config.path}: {statement.subcommand} '{statement.name}'"
        permission = {p.strip().lower() for p in (statement.get("permission") or "").split(",")}
        if permission & WORLD_EDIT:
            raise JilEmitError(
                f"{where}: permission {statement.get('permission')!r} lets every user of the "
                "AutoSys instance edit the job (and the command it runs as its owner); "
                "drop 'we' from autosys.permission"
            )
        if not JOB_NAME.match(statement.name):
            raise JilEmitError(f"{where}: name is not valid AutoSys ({JOB_NAME_RULE})")
        for attribute in statement.attributes:
            check = VALIDATORS.get(attribute.name)
            if check is None:
                raise JilEmitError(f"{where}: attribute '{attribute.name}' has no AE 12 validator")
            reason = _unsafe(attribute.name, attribute.value) or check(attribute.value)
            if reason is not None:
                raise JilEmitError(
                    f"{where}{_source(config, statement, attribute.name)}: "
                    f"{attribute.name} {attribute.value!r}: {reason}"
                )
            render_value(attribute.name, attribute.value)


def _unsafe(name: str, value: str) -> str | None:
    """A second line of defence behind validation: a value that could end its JIL line or
    reach the shell as syntax is never written, whatever built the configuration."""
    if unsafe_characters(value):
        return "contains control characters (none can be emitted)"
    if name == "command" and not _SAFE_COMMAND.fullmatch(value):
        return "holds shell syntax (only plain words and $$GLOBAL references are emitted)"
    return None


def _source(config: Configuration, statement: Statement, attribute: str) -> str:
    """` (domain 'customers', autosys.machine)`: where in the configuration a value came from."""
    domain = next((d.name for d in config.domains.values() if statement.name in job_names(d).values()), None)
    field = _SOURCE_FIELDS.get(attribute)
    parts = ([f"domain '{domain}'"] if domain else []) + ([field] if field else [])
    return f" ({', '.join(parts)})" if parts else ""
