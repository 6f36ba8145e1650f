"""Every job of an AutoSys box run works on what the run's first job chose, however late it is
restarted; ER_ON_DEMAND's globals are validated before use and pinned for its box run."""

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import pytest

from autosys_bridge import box_run, cli
from er_assets import exit_codes, partitions
from er_assets_tests.helpers import seed

EASTERN = dt.timezone(dt.timedelta(hours=-5))
REAL_LATEST = partitions.latest_complete_partition


@pytest.fixture
def autosys(local_env, monkeypatch):
    """The environment AutoSys gives a job, and a clock the test moves."""
    monkeypatch.delenv("AUTOSERV", raising=False)
    clock = {"now": None}
    monkeypatch.setattr(
        partitions,
        "latest_complete_partition",
        lambda domain, now=None: REAL_LATEST(domain, now or clock["now"]),
    )

    def job(name: str, run: int, now: dt.datetime, *argv: str) -> int:
        clock["now"] = now
        monkeypatch.setenv("AUTO_JOB_NAME", name)
        monkeypatch.setenv("AUTORUN", str(run))
        return cli.main(list(argv))

    return job


def partitions_run(local_env, stage_asset: str) -> list[str]:
    with dg.DagsterInstance.from_config(str(local_env / "dagster_home")) as instance:
        return [
            r.tags["dagster/partition"]
            for r in reversed(instance.get_runs())
            if r.asset_selection and stage_asset in {k.to_user_string() for k in r.asset_selection}
        ]


def test_a_process_restarted_after_the_next_schedule_time_processes_its_own_box_run(config, local_env, autosys):
    customers = config.domain("customers")
    for day in ("2026-11-27", "2026-11-28"):
        seed(customers, day, 300, local_env)
    # Box run 100 starts on the 28th at 03:00 Eastern: its EXTRACT takes the 27th.
    first_day = dt.datetime(2026, 11, 28, 3, 5, tzinfo=EASTERN)
    assert autosys("ER_CUSTOMER_EXTRACT", 100, first_day, "run", "customers", "extract") == 0
    # Its PROCESS fails, nobody looks; the next day's box run 101 extracts the 28th.
    next_day = dt.datetime(2026, 11, 29, 3, 5, tzinfo=EASTERN)
    assert autosys("ER_CUSTOMER_EXTRACT", 101, next_day, "run", "customers", "extract") == 0
    # Hours later the operator restarts run 100's PROCESS: it matches the 27th, not the 28th.
    later = dt.datetime(2026, 11, 29, 11, 0, tzinfo=EASTERN)
    assert REAL_LATEST(customers, later) == "2026-11-28"
    assert autosys("ER_CUSTOMER_PROCESS", 100, later, "run", "customers", "process") == 0
    assert partitions_run(local_env, "customers/extract") == ["2026-11-27", "2026-11-28"]
    assert partitions_run(local_env, "customers/matched") == ["2026-11-27"]


def test_pins_are_per_box_run_domain_and_instance(local_env, monkeypatch):
    monkeypatch.setenv("AUTORUN", "7")
    assert box_run.pinned("customers", lambda: {"partition": "A"}) == {"partition": "A"}
    assert box_run.pinned("customers", lambda: {"partition": "B"}) == {"partition": "A"}
    assert box_run.pinned("products", lambda: {"partition": "C"}) == {"partition": "C"}
    monkeypatch.setenv("AUTOSERV", "PRD")
    assert box_run.pinned("customers", lambda: {"partition": "D"}) == {"partition": "D"}
    monkeypatch.setenv("AUTORUN", "8")
    assert box_run.pinned("customers", lambda: {"partition": "E"}, record=False) == {"partition": "E"}
    assert box_run.pinned("customers", lambda: {"partition": "F"}) == {"partition": "F"}
    monkeypatch.delenv("AUTORUN")  # outside AutoSys nothing is pinned
    assert box_run.pinned("customers", lambda: {"partition": "G"}) == {"partition": "G"}


def test_an_unreadable_instance_is_one_line_and_exit_five(local_env, monkeypatch, capsys):
    (local_env / "dagster_home" / "dagster.yaml").write_text("storage: {postgres: {}}\n")
    monkeypatch.setenv("AUTORUN", "9")
    assert cli.main(["run", "customers", "extract", "--dry-run"]) == (exit_codes.SERVICE_UNAVAILABLE)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read the box-run record" in err[0]


BRIDGE = [sys.executable, "-m", "autosys_bridge.cli"]


def on_demand(local_env, stage, **globals_):
    env = {k: v for k, v in os.environ.items() if k not in ("ER_DOMAIN", "ER_PROCESS_DATE")}
    return subprocess.run(
        [*BRIDGE, "on-demand", stage, "--dry-run"],
        capture_output=True,
        text=True,
        env={**env, **globals_},
        timeout=120,
    )


@pytest.mark.parametrize(
    ("globals_", "message"),
    [
        ({"ER_DOMAIN": "customers; touch {canary}", "ER_PROCESS_DATE": "2026-11-27"}, "ER_DOMAIN 'customers; touch"),
        ({"ER_DOMAIN": "customers", "ER_PROCESS_DATE": "$(touch {canary})"}, "ER_PROCESS_DATE '$(touch"),
        ({"ER_DOMAIN": "customers", "ER_PROCESS_DATE": "2026-11-27`touch {canary}`"}, "is not a date YYYY-MM-DD"),
        ({"ER_DOMAIN": "customers\nproducts", "ER_PROCESS_DATE": "2026-11-27"}, "is not a domain name"),
        ({"ER_DOMAIN": "$$ER_DOMAIN", "ER_PROCESS_DATE": "2026-11-27"}, "ER_DOMAIN is not set"),
        ({"ER_PROCESS_DATE": "2026-11-27"}, "ER_DOMAIN is not set"),
        ({"ER_DOMAIN": "nope", "ER_PROCESS_DATE": "2026-11-27"}, "Domain 'nope' not found"),
        ({"ER_DOMAIN": "customers", "ER_PROCESS_DATE": "2026-02-30"}, "is not a date"),
    ],
)
def test_on_demand_refuses_hostile_or_missing_globals(local_env, tmp_path, globals_, message):
    canary = tmp_path / "pwned"
    globals_ = {k: v.format(canary=canary) for k, v in globals_.items()}
    done = on_demand(local_env, "extract", **globals_)
    assert done.returncode == exit_codes.USAGE, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not canary.exists()


def test_on_demand_stages_keep_the_domain_their_box_run_started_with(local_env):
    first = on_demand(local_env, "extract", ER_DOMAIN="products", ER_PROCESS_DATE="2026-11-25", AUTORUN="55")
    assert first.returncode == 0, first.stderr
    assert '"partition_key": "2026-11-22"' in first.stdout  # the week containing the 25th
    # A dry run records nothing, so the EXTRACT of run 55 is simulated by recording its pin
    # directly, for another week than the dry run saw: a dry run that recorded would win.
    os.environ["AUTORUN"] = "55"
    try:
        box_run.pinned("ER_ON_DEMAND", lambda: {"domain": "products", "date": "2026-11-18"})
    finally:
        del os.environ["AUTORUN"]
    # Someone sets the globals for another request while run 55 is still matching.
    later = on_demand(local_env, "load", ER_DOMAIN="customers", ER_PROCESS_DATE="2026-11-01", AUTORUN="55")
    assert later.returncode == 0, later.stderr
    assert '"domain": "products"' in later.stdout and '"partition_key": "2026-11-15"' in later.stdout
    assert "recorded by its first job" in later.stderr


def fake_autostatus(folder, answers: dict[str, str]):
    """An `autostatus` on PATH answering `-G NAME` as AutoSys's client does."""
    script = folder / "autostatus"
    cases = "".join(f'  {name}) printf "%s\\n" {value!r};;\n' for name, value in answers.items())
    script.write_text(f'#!/bin/sh\n[ "$1" = -G ] || exit 2\ncase "$2" in\n{cases}  *) exit 1;;\nesac\n')
    script.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_unsubstituted_globals_are_asked_of_autostatus_and_validated_too(local_env, tmp_path):
    path = fake_autostatus(tmp_path, {"ER_DOMAIN": "vendors", "ER_PROCESS_DATE": "2026-10-15"})
    done = on_demand(local_env, "extract", ER_DOMAIN="$$ER_DOMAIN", ER_PROCESS_DATE="$$ER_PROCESS_DATE", PATH=path)
    assert done.returncode == 0, done.stderr
    assert '"domain": "vendors"' in done.stdout and '"partition_key": "2026-10-01"' in done.stdout

    canary = tmp_path / "pwned"
    path = fake_autostatus(tmp_path, {"ER_DOMAIN": f"vendors;touch {canary}"})
    done = on_demand(local_env, "extract", ER_PROCESS_DATE="2026-10-15", PATH=path)
    assert done.returncode == exit_codes.USAGE and "is not a domain name" in done.stderr
    assert not canary.exists()
