"""Mail for Dagster-launched runs: the right people, once; AutoSys runs are left to AutoSys.

The run-status sensors are evaluated as the daemon evaluates them (`evaluate_tick` from a
cursor over a real instance's event log), and their mail is read from a real SMTP server."""

import dagster as dg
import pytest

from er_assets.defs.definitions import build_definitions
from er_assets.defs.sensors import notify
from er_assets.resources.deployment import history_resource
from er_assets_tests.helpers import seed, write_config


@pytest.fixture
def inbox(smtp, monkeypatch):
    """The real SMTP server's inbox, the mail settings in the environment pointing at it."""
    controller, box = smtp
    monkeypatch.setenv("ER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("ER_SMTP_PORT", str(controller.port))
    monkeypatch.setenv("ER_SMTP_FROM", "er@bank.example")
    return box


def run_pipeline(config, local_env, domain, partition, tags=None):
    job = build_definitions(config).resolve_implicit_global_asset_job_def()
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=partition,
            raise_on_error=False,
            tags=tags or {},
            asset_selection=[dg.AssetKey([domain, s]) for s in ("extract", "matched", "loaded")],
        )
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


def tick(defs: dg.Definitions, sensor_name: str, instance, cursor: str | None = None):
    """One evaluation of a sensor as the daemon runs it: from its cursor, over the instance's
    run-status events, given the definitions' resources it requires (as dagster/_grpc/impl.py's
    get_external_sensor_execution passes them)."""
    sensor = defs.resolve_sensor_def(sensor_name)
    resources = {k: v for k, v in defs.resources.items() if k in sensor.required_resource_keys}
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=resources) as context:
        return sensor.evaluate_tick(context)


OTHER_SENSOR = {"er_success_mail": "er_failure_mail", "er_failure_mail": "er_success_mail"}


@pytest.mark.parametrize(
    "domain, partition, min_records, sensor_name, stage, team",
    [
        ("vendors", "2026-10-01", 1, "er_success_mail", "loaded", "vendor-team@example.com"),
        ("products", "2026-11-22", 5000, "er_failure_mail", "extract", "product-team@example.com"),
    ],
)
def test_the_sensors_mail_each_finished_run_once_with_a_link_to_the_configured_ui(
    domain, partition, min_records, sensor_name, stage, team, local_env, inbox, tmp_path, monkeypatch
):
    """The sensors evaluated as the daemon does (cursor, event log, resources), over a real run
    that succeeds or fails its gate; the UI is somewhere else than localhost:3000, and the link
    in the mail follows ER_DAGSTER_URL. The other sensor reacts to nothing."""
    from er_assets.config import load_config

    monkeypatch.setenv("ER_DAGSTER_URL", "https://dagster.bank.example:8443/er/")
    config = load_config(
        write_config(tmp_path, lambda raw: raw["domains"][domain]["dq"].update(min_records=min_records))
    )
    seed(config.domain(domain), partition, 300, local_env)
    defs = build_definitions(config)
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        started = {name: tick(defs, name, instance) for name in (sensor_name, OTHER_SENSOR[sensor_name])}
        assert all(
            t.dagster_run_reactions == [] and t.cursor for t in started.values()
        )  # the first tick sets the cursor
        result = defs.resolve_job_def(f"ER_{domain}").execute_in_process(
            instance=instance, partition_key=partition, raise_on_error=False
        )
        assert result.success is (sensor_name == "er_success_mail")

        evaluated = tick(defs, sensor_name, instance, started[sensor_name].cursor)
        [reaction] = evaluated.dagster_run_reactions
        assert reaction.error is None, reaction.error  # the body ran and raised nothing
        assert reaction.dagster_run.run_id == result.run_id
        assert (
            tick(
                defs, OTHER_SENSOR[sensor_name], instance, started[OTHER_SENSOR[sensor_name]].cursor
            ).dagster_run_reactions
            == []
        )
        assert tick(defs, sensor_name, instance, evaluated.cursor).dagster_run_reactions == []  # nothing new
        # A daemon that lost the cursor evaluates the run again: the history knows it was mailed.
        [again] = tick(defs, sensor_name, instance, started[sensor_name].cursor).dagster_run_reactions
        assert again.error is None
    [(to, message)] = inbox.messages()
    assert to == sorted([team, "er-admin@example.com"])
    assert f"{domain}/{stage}" in message["Subject"] and partition in message["Subject"]
    body = message.get_content()
    assert f"Run:        https://dagster.bank.example:8443/er/runs/{result.run_id}" in body.splitlines()
    if sensor_name == "er_failure_mail":
        assert "min_records" in body


def test_autosys_runs_are_left_to_autosys(config, local_env, inbox):
    """A run the bridge started for AutoSys: the success sensor's body runs over it, and mails nobody."""
    seed(config.domain("vendors"), "2026-10-01", 300, local_env)
    defs = build_definitions(config)
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        started = tick(defs, "er_success_mail", instance)
        result = defs.resolve_job_def("ER_vendors").execute_in_process(
            instance=instance, partition_key="2026-10-01", tags={"autosys/job_name": "ER_VENDOR_BOX"}
        )
        [reaction] = tick(defs, "er_success_mail", instance, started.cursor).dagster_run_reactions
        assert reaction.error is None and reaction.dagster_run.run_id == result.run_id
    assert inbox.messages() == []


def test_sensors_are_in_the_code_location(config, local_env):
    sensors = {s.name: s for s in build_definitions(config).sensors}
    assert set(sensors) == {"er_failure_mail", "er_success_mail", "er_cancel_mail", "er_late_partitions"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())


def test_a_cancelled_stage_is_mailed_once_whether_the_run_failed_or_was_canceled(config, local_env, inbox, monkeypatch):
    """Interrupted in the middle of its extract (SIGTERM in-process: the run FAILS, the stage is
    CANCELLED), and terminated from the UI (the run is CANCELED): both are mailed, once."""
    from er_assets.history import HistoryStore, Status
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    seed(config.domain("vendors"), "2026-10-01", 50, local_env)

    def interrupted(*args, **kwargs):
        raise dg.DagsterExecutionInterruptedError("interrupted by a signal")

    monkeypatch.setattr(DuckDBWarehouse, "unload_extract", interrupted)
    defs = build_definitions(config)
    with dg.instance_for_test(temp_dir=str(local_env / "dagster_home")) as instance:
        started = {name: tick(defs, name, instance) for name in ("er_failure_mail", "er_cancel_mail")}
        result = defs.resolve_job_def("ER_vendors").execute_in_process(
            instance=instance, partition_key="2026-10-01", raise_on_error=False
        )
        [reaction] = tick(defs, "er_failure_mail", instance, started["er_failure_mail"].cursor).dagster_run_reactions
        assert reaction.error is None and reaction.dagster_run.run_id == result.run_id

        # Terminated from the UI: Dagster ends the run CANCELED, the stage wrote its row.
        canceled = instance.create_run_for_job(
            defs.resolve_job_def("ER_vendors"), tags={"dagster/partition": "2026-10-08"}
        )
        instance.report_run_canceled(canceled)
        with HistoryStore.from_env() as store:
            store.record_start(canceled.run_id, "matched", "vendors", "2026-10-08", "2026-10-08", "ui")
            store.record_end(canceled.run_id, "matched", Status.CANCELLED, error_message="terminated from the UI")
        [reaction] = tick(defs, "er_cancel_mail", instance, started["er_cancel_mail"].cursor).dagster_run_reactions
        assert reaction.error is None and reaction.dagster_run.run_id == canceled.run_id
        assert (
            tick(defs, "er_cancel_mail", instance, started["er_cancel_mail"].cursor).dagster_run_reactions[0].error
            is None
        )
    mails = inbox.messages()
    assert sorted(message["Subject"].split(" ", 3)[2] for _, message in mails) == ["vendors/extract", "vendors/matched"]
    assert all(message["Subject"].startswith("[ER CANCELLED] ") for _, message in mails)
    assert all(" was cancelled for partition " in message.get_content() for _, message in mails)
    assert all(to == sorted(["vendor-team@example.com", "er-admin@example.com"]) for to, _ in mails)
