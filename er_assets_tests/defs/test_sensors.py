"""Mail for Dagster-launched runs: the right people, once; AutoSys runs are left to AutoSys."""

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from er_assets.defs.definitions import build_definitions
from er_assets.resources.deployment import history_resource
from er_assets.defs.sensors import notify
from er_assets_tests.helpers import Inbox, free_port, seed, write_config


@pytest.fixture
def inbox(monkeypatch):
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    monkeypatch.setenv("ER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ER_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("ER_SMTP_FROM", "er@bank.example")
    yield box
    controller.stop()


def run_pipeline(config, local_env, domain, partition, tags=None):
    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        result = job.execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False, tags=tags or {},
            asset_selection=[dg.AssetKey([domain, s]) for s in ("extract", "matched", "loaded")])
        return result, instance.get_run_by_id(result.run_id)


def test_final_success_mails_the_team_once(config, local_env, inbox):
    seed(config.domain("vendors"), "2026-10-01", 300, local_env)
    result, run = run_pipeline(config, local_env, "vendors", "2026-10-01")
    assert result.success
    history = history_resource(config)
    assert notify(config, history, run, failed=False) == [("loaded", "SUCCEEDED")]
    assert notify(config, history, run, failed=False) == []  # the sensor re-evaluated: nothing new
    [(to, message)] = inbox.messages()
    assert to == sorted(["vendor-team@example.com", "er-admin@example.com"])
    assert "vendors" in message["Subject"] and "2026-10-01" in message["Subject"]
    assert f"/runs/{run.run_id}" in message.get_content()


def test_a_failed_gate_mails_the_failure_with_its_reason(config, local_env, inbox, tmp_path, monkeypatch):
    path = write_config(tmp_path, lambda raw: raw["domains"]["products"]["dq"].update(min_records=5000))
    monkeypatch.setenv("ER_CONFIG", str(path))
    from er_assets.config import load_config

    config = load_config()
    seed(config.domain("products"), "2026-11-22", 200, local_env)
    result, run = run_pipeline(config, local_env, "products", "2026-11-22")
    assert not result.success
    assert notify(config, history_resource(config), run, failed=True) == [("extract", "DQ_FAILED")]
    [(to, message)] = inbox.messages()
    assert to == sorted(["product-team@example.com", "er-admin@example.com"])
    assert "min_records" in message.get_content()


def test_autosys_runs_are_left_to_autosys(config, local_env, inbox):
    seed(config.domain("vendors"), "2026-10-01", 300, local_env)
    _, run = run_pipeline(config, local_env, "vendors", "2026-10-01", tags={"autosys/job_name": "ER_VENDOR_BOX"})
    assert notify(config, history_resource(config), run, failed=False) == []
    assert inbox.messages() == []


@pytest.mark.parametrize("domain, partition, min_records, sensor_name, stage", [
    ("vendors", "2026-10-01", 1, "er_success_mail", "loaded"),
    ("products", "2026-11-22", 5000, "er_failure_mail", "extract"),
])
def test_the_sensors_mail_with_a_link_to_the_configured_ui(domain, partition, min_records, sensor_name, stage,
                                                          local_env, inbox, tmp_path, monkeypatch):
    """The sensors' own bodies, invoked as the daemon does, with the UI somewhere else than
    localhost:3000: the link in the mail follows ER_DAGSTER_URL."""
    from er_assets.config import load_config

    monkeypatch.setenv("ER_DAGSTER_URL", "https://dagster.bank.example:8443/er/")
    config = load_config(write_config(tmp_path, lambda raw: raw["domains"][domain]["dq"].update(min_records=min_records)))
    seed(config.domain(domain), partition, 300, local_env)
    defs = build_definitions(config)
    sensor = defs.resolve_sensor_def(sensor_name)
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        result = defs.resolve_job_def(f"ER_{domain}").execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False)
        event = result.get_run_failure_event() if sensor_name == "er_failure_mail" else result.get_run_success_event()
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor_name, dagster_event=event, dagster_instance=instance, dagster_run=result.dagster_run,
            resources={"history": history_resource(config)})
        if sensor_name == "er_failure_mail":
            context = context.for_run_failure()
        sensor(context)
        sensor(context)  # a re-evaluation sends nothing new
    [(_, message)] = inbox.messages()
    assert f"{domain}/{stage}" in message["Subject"]
    assert f"Run:        https://dagster.bank.example:8443/er/runs/{result.run_id}" in message.get_content().splitlines()


def test_sensors_are_in_the_code_location(config, local_env):
    sensors = {s.name: s for s in build_definitions(config).sensors}
    assert set(sensors) == {"er_failure_mail", "er_success_mail"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
