"""The Dagster UI in a real browser: headless Chromium, driven by Selenium, against the real
webserver serving this code location.

What a new user checks in the first hour, on an instance filled as the demo fills it (seeded
data, a run through the bridge): the asset graph shows one group per domain, a partition's
checks are listed (a check that could not judge is a warning, not a pass), a partition its
blocking checks stopped shows as failed (not materialised), launching one partition from the
UI succeeds as a run of the domain's job with its tags, and a run the bridge started for
AutoSys is on the job's page.

The webserver launches runs itself: its instance uses DefaultRunCoordinator (no daemon; see
DESIGN, verified facts). Chromium and chromedriver are Debian's (`make system-deps`); without
them the tests skip, except under CI, where they fail. ER_SCREENSHOTS=DIR saves the pages
the README shows (`ER_SCREENSHOTS=docs pytest er_assets_tests/defs/test_ui_browser.py`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from er_assets import exit_codes
from er_assets.history import LatePartition
from er_assets.pipeline import checks
from er_assets.pipeline.lateness import due_at
from er_assets_tests.helpers import REPO, free_port

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# Flags that work on a root CI machine with no display, no GPU and no network beyond localhost.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 1
# The webserver launches runs itself: there is no daemon to dequeue them.
run_coordinator:
  module: dagster.core.run_coordinator
  class: DefaultRunCoordinator
"""
DOMAINS = ("customers", "products", "vendors")
WAIT = 60  # seconds for any one thing to appear: generous for a loaded CI machine

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
    pytest.skip("chromium and chromedriver are not installed (make system-deps)", allow_module_level=True)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the process group (the webserver and its code server), SIGKILL after 10 s."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(grace)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def site():
    """The webserver on a demo-like instance: the latest customers partition seeded and run
    by the bridge as AutoSys would, the one before seeded for the UI to launch, and the one
    before that an empty feed whose extract its checks blocked."""
    from autosys_bridge.demo import recent_partitions
    from er_assets.config import load_config
    from er_assets.ops.sample_data import seed_partition

    data = Path(tempfile.mkdtemp(prefix="er-ui-"))
    env = {**os.environ, "ER_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home")}
    for name in ("ER_DEPLOYMENT", "ER_CONFIG", "AUTO_JOB_NAME", "AUTORUN"):
        env.pop(name, None)
    (data / "dagster_home").mkdir(parents=True)
    (data / "dagster_home" / "dagster.yaml").write_text(DAGSTER_YAML)
    # Create the instance's storages once, before two processes open them at the same time.
    dg.DagsterInstance.from_config(str(data / "dagster_home")).dispose()
    port = free_port()
    # The child keeps its own copy of the log descriptor; this process needs none.
    with open(data / "webserver.log", "wb") as log:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("dagster-webserver")),
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        # Fill the instance while the webserver starts.
        customers = load_config().domain("customers")
        overdue, blocked, to_launch, latest = recent_partitions(customers, 4)
        seed_partition(customers, blocked, 300, data / "warehouse.duckdb", defect="missing_feed")
        for partition in (to_launch, latest):
            seed_partition(customers, partition, 300, data / "warehouse.duckdb")

        def bridge(stage: str, partition: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "autosys_bridge.cli", "run", "customers", stage, "--date", partition]
                + ["--check-interval", "1"],
                env={**env, "AUTO_JOB_NAME": "ER_CUSTOMER_BOX", "AUTORUN": "11"},
                capture_output=True,
                text=True,
                timeout=300,
            )

        empty = bridge("extract", blocked)
        assert empty.returncode == exit_codes.DQ_GATE_FAILED, empty.stderr[-2000:]
        good = bridge("all", latest)
        assert good.returncode == 0, good.stderr[-2000:]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + WAIT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    # Refused connections are expected while it starts; its log says why it never came up.
                    raise RuntimeError(
                        f"the webserver did not come up: {(data / 'webserver.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.5)
        with dg.DagsterInstance.from_config(str(data / "dagster_home")) as instance:
            [bridge_run] = instance.get_runs(dg.RunsFilter(tags={"dagster/partition": latest}))
            # What the er_late_partitions sensor reports of a partition that never ran
            # (test_lateness.py runs the sensor itself).
            late = LatePartition("customers", overdue, due_at(customers, overdue), "never started")
            instance.report_runless_asset_event(checks.overdue(customers, late))
        yield {
            "url": url,
            "data": data,
            "blocked": blocked,
            "overdue": overdue,
            "to_launch": to_launch,
            "latest": latest,
            "bridge_run": bridge_run.run_id,
        }
    finally:
        _stop(server)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(site):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="er-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.get(site["url"] + "/runs")
        # Dagster's first-visit "join the community" dialog covers the page until skipped.
        skip = wait_for(driver, lambda d: d.find_elements("xpath", "//button[normalize-space()='Skip']"))
        skip[0].click()
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, condition, timeout: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(condition)


def page_text(driver) -> str:
    return driver.find_element("tag name", "body").text


def screenshot(driver, name: str) -> None:
    folder = os.environ.get("ER_SCREENSHOTS")
    if folder:
        driver.save_screenshot(str(Path(folder) / name))


def open_page(driver, site, path: str, shows: str) -> str:
    driver.get(site["url"] + path)
    wait_for(driver, lambda d: shows in page_text(d))
    return page_text(driver)


def test_the_asset_graph_shows_one_group_per_domain(browser, site):
    browser.get(site["url"] + "/asset-groups")
    groups = "return Array.from(document.querySelectorAll('svg foreignObject.group')).map(e => e.textContent)"

    def three_groups(driver):
        names = sorted(name for text in driver.execute_script(groups) for name in DOMAINS if text.startswith(name))
        return names if len(names) == 3 else None

    assert wait_for(browser, three_groups) == ["customers", "products", "vendors"]
    wait_for(browser, lambda d: "fetching statuses" not in page_text(d))
    screenshot(browser, "ui-asset-graph.png")
    # A group's own page lays out its stages and their checks.
    text = open_page(browser, site, "/locations/er_assets/asset-groups/customers", "Asset checks")
    assert all(stage in text for stage in ("source", "extract", "matched", "loaded")), text
    wait_for(browser, lambda d: "Loading" not in page_text(d))
    screenshot(browser, "ui-customers-group.png")


def test_a_partitions_checks_are_listed_and_an_unjudged_one_is_a_warning(browser, site):
    text = open_page(browser, site, "/assets/customers/extract?view=checks", "Latest execution")
    listed = ("min_records", "record_count_anomaly", "required_fields", "source_schema", "unique_ids", "value_formats")
    assert all(name in text for name in listed), text
    assert site["latest"] in text  # the latest execution's partition
    browser.find_element("xpath", "//*[normalize-space(text())='record_count_anomaly']").click()
    wait_for(browser, lambda d: "not judged: 0 of 5 partitions of history" in page_text(d))
    # Not "Passed": a failed WARN check, which Dagster badges with its warning sign, blocking nothing.
    latest = page_text(browser).split("Latest execution")[1].split("Plots")[0]
    assert "Failed" in latest and "Passed" not in latest and re.search(r"judged\s+false", latest), latest
    screenshot(browser, "ui-partition-checks.png")


def test_a_partition_its_checks_blocked_shows_as_failed_not_materialized(browser, site):
    text = open_page(browser, site, "/assets/customers/extract?view=partitions", "Partitions Selected")
    # The empty feed's extract failed its blocking checks; the latest partition's passed.
    assert "Failed (1)" in text and "Materialized (1)" in text, text
    for status in ("Materialized", "Missing"):  # leave only the failed partitions listed
        browser.find_element("xpath", f"//label[starts-with(normalize-space(), '{status} (')]").click()

    def listed(driver) -> str:  # the partitions list and the selected one, below the filters
        return page_text(driver).split("Partitions Selected")[1]

    wait_for(browser, lambda d: site["latest"] not in listed(d))
    assert site["blocked"] in listed(browser), listed(browser)
    screenshot(browser, "ui-partitions-failed.png")
    # The asset graph says so on the extract's node too.
    text = open_page(browser, site, "/locations/er_assets/asset-groups/customers", "1 failed")
    extract = text.split("\nextract\n")[1].split("\nloaded\n")[0]
    assert "(1 failed)" in extract, extract


def test_an_overdue_partition_shows_on_the_loaded_assets_delivered_check(browser, site):
    open_page(browser, site, "/assets/customers/loaded?view=checks", "Latest execution")
    browser.find_element("xpath", "//*[normalize-space(text())='delivered']").click()
    wait_for(browser, lambda d: "overdue: not delivered" in page_text(d))
    latest = page_text(browser).split("Latest execution")[1]
    assert site["overdue"] in latest and "never started" in latest, latest
    screenshot(browser, "ui-overdue.png")


def test_launching_one_partition_from_the_ui_runs_the_domains_job(browser, site):
    from selenium.webdriver.common.keys import Keys

    open_page(browser, site, "/assets/customers/extract", "Latest materialization")
    browser.find_element("xpath", "//button[contains(normalize-space(), 'Materialize')]").click()
    box = wait_for(browser, lambda d: d.find_elements("xpath", "//*[@role='dialog']//input[@type='text']"))[0]
    box.click()
    box.send_keys(site["to_launch"], Keys.ENTER)
    launch = wait_for(
        browser, lambda d: d.find_elements("xpath", "//*[@role='dialog']//button[normalize-space()='Launch 1 run']")
    )
    launch[0].click()

    def finished_run(_):
        with dg.DagsterInstance.from_config(str(site["data"] / "dagster_home")) as instance:
            runs = [r for r in instance.get_runs() if r.tags.get("dagster/partition") == site["to_launch"]]
            return runs[0] if runs and runs[0].is_finished else None

    run = wait_for(browser, finished_run, timeout=120)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.job_name == "ER_customers"  # the domain's job, so it is on the job page and the timeline
    assert {k: run.tags.get(k) for k in ("domain", "stage", "process_date", "er/trigger")} == {
        "domain": "customers",
        "stage": "extract",
        "process_date": site["to_launch"],
        "er/trigger": "ui",
    }


def test_a_bridge_run_is_on_the_job_page(browser, site):
    text = open_page(browser, site, "/locations/er_assets/jobs/ER_customers/runs", site["bridge_run"][:8])
    assert "No runs found" not in text
