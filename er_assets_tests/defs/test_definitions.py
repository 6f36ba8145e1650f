"""The code location: assets, checks, jobs and schedules derived from the configuration."""

import subprocess
import sys

import dagster as dg

from er_assets.defs.definitions import build_definitions, domain_job
from er_assets.partitions import partitions_def
from er_assets.stages import job_name


def test_assets_checks_jobs_and_schedules(config, local_env):
    defs = build_definitions(config)
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    stages = sorted(k for k in specs if not k.endswith("/source"))
    assert stages == sorted(f"{d}/{s}" for d in config.domains for s in ("extract", "matched", "loaded"))
    assert sorted(k for k in specs if k.endswith("/source")) == [f"{d}/source" for d in config.domains]
    check_keys = defs.resolve_asset_graph().asset_check_keys
    assert {(c.asset_key.to_user_string(), c.name) for c in check_keys} >= {
        ("customers/extract", "min_records"),
        ("customers/matched", "match_rate"),
        ("vendors/loaded", "row_count"),
    }
    for name, domain in config.domains.items():
        assert specs[f"{name}/extract"].group_name == name
        assert specs[f"{name}/matched"].deps[0].asset_key == dg.AssetKey([name, "extract"])
        assert defs.resolve_job_def(job_name(name)).partitions_def == partitions_def(domain)
        schedule = defs.resolve_schedule_def(f"{name}_schedule")
        assert schedule.execution_timezone == domain.schedule.timezone
        assert schedule.cron_schedule == partitions_def(domain).get_cron_schedule()
    assert defs.resolve_schedule_def("customers_schedule").cron_schedule == "0 3 * * *"
    assert defs.resolve_schedule_def("products_schedule").cron_schedule == "0 5 * * 0"
    assert defs.resolve_schedule_def("vendors_schedule").cron_schedule == "0 2 1 * *"


def test_the_bridge_builds_the_one_domain_job_it_runs(config):
    """The same job as the code location's, with only its domain's steps, checks and resources."""
    for name in config.domains:
        alone, located = domain_job(config, name), build_definitions(config).resolve_job_def(job_name(name))
        assert alone.name == located.name and set(alone.graph.node_dict) == set(located.graph.node_dict)
        assert all(node.startswith(f"{name}__") for node in alone.graph.node_dict)
        assert set(alone.resource_defs) == set(located.resource_defs)
        assert alone.executor_def.name == located.executor_def.name == "in_process"


def test_one_code_location_name_everywhere():
    """make dev, dagster dev's pyproject loader and the tag in-process runs carry agree, so the
    UI's /locations/er_assets/ pages show the assets and every run."""
    import tomllib
    import yaml

    from er_assets.defs.location import CODE_LOCATION, location_tags
    from er_assets_tests.helpers import REPO as repo

    [entry] = yaml.safe_load((repo / "workspace.yaml").read_text())["load_from"]
    assert entry["python_module"] == {"module_name": "er_assets.defs.definitions", "location_name": CODE_LOCATION}
    tool = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["dagster"]
    assert tool == {"module_name": "er_assets.defs.definitions", "code_location_name": CODE_LOCATION}
    assert "dagster dev -w workspace.yaml" in (repo / "Makefile").read_text()
    assert location_tags() == {".dagster/repository": "__repository__@er_assets"}


def test_matching_is_serialised_in_one_pool(config, local_env):
    defs = build_definitions(config)
    pools = {defs.resolve_assets_def(dg.AssetKey([d, "matched"])).op.pool for d in config.domains}
    assert pools == {config.settings.concurrency_pool}


def test_the_local_path_never_imports_snowflake(local_env):
    # (The bare `snowflake` namespace is pre-imported by snowpark's .pth file; it costs nothing.)
    code = (
        "import sys, er_assets.defs.definitions; "
        "print([m for m in sys.modules if m.startswith(('dagster_snowflake', 'snowflake.'))])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_dagster_cli_loads_and_materialises_one_stage(config, local_env):
    """What the README shows: `dagster dev`'s loader accepts the location, and the plain
    `dagster asset materialize` runs one stage for one partition into DAGSTER_HOME."""
    from pathlib import Path

    from er_assets_tests.helpers import seed

    dagster = str(Path(sys.executable).with_name("dagster"))
    subprocess.run(
        [dagster, "definitions", "validate", "-m", "er_assets.defs.definitions"], check=True, capture_output=True
    )
    seed(config.domain("customers"), "2026-11-28", 200, local_env)
    done = subprocess.run(
        [
            dagster,
            "asset",
            "materialize",
            "-m",
            "er_assets.defs.definitions",
            "--select",
            "customers/extract",
            "--partition",
            "2026-11-28",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(local_env / "dagster_home")) as instance:
        [run] = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == "2026-11-28"
