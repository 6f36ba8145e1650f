"""The object-store layout has one home, er_assets.layout: every place in the bucket is named
there, and what the stages write and find lies where it says."""

import ast
import sys
from pathlib import Path

import pytest

from er_assets import layout
from er_assets.layout import split_uri
from er_assets.resources.match_output import find_output
from er_assets.resources.object_store import LocalObjectStore


def test_every_place_of_a_domain_lies_under_its_bucket_and_prefix(config):
    domain = config.domain("customers")
    base = f"s3://{domain.bucket}/{domain.prefix}/"
    extract = layout.extract_uri(domain, "2026-11-28", "r1")
    assert extract == f"{base}extract/partition=2026-11-28/run=r1/"
    assert extract.startswith(layout.partition_prefix(domain, "2026-11-28"))
    assert layout.probe_prefix(domain, "t").startswith(layout.extract_prefix(domain) + "/")
    assert layout.output_prefix(domain) == f"{base}output"
    for uri in (extract, layout.probe_prefix(domain, "t"), layout.output_prefix(domain) + "/"):
        bucket, key = split_uri(uri)  # a key the object stores accept
        assert bucket == domain.bucket and key.startswith(f"{domain.prefix}/")
    assert split_uri(layout.extract_prefix(domain))[1] == layout.extract_key(domain)
    assert split_uri(layout.output_prefix(domain))[1] == layout.output_key(domain)


def test_an_empty_job_output_is_where_the_layout_puts_it_with_its_error_folder_beside(tmp_path):
    store = LocalObjectStore(root=str(tmp_path))
    found = find_output(store.list_files, "s3://b/er/output/", "wf", "job1", records_processed=0)
    assert found.success_uri == layout.success_uri(layout.job_folder("s3://b/er/output", "wf", "job1"))
    assert found.success_uri == "s3://b/er/output/wf/job1/success/"
    assert found.error_uri == "s3://b/er/output/wf/job1/error/" == layout.error_uri(found.success_uri)


@pytest.mark.parametrize(
    "name, data",
    [
        ("part-00000.csv", True),
        ("part-0", True),
        ("nested/part-1.csv.gz", True),
        ("_SUCCESS", False),
        (".part-0.crc", False),
        ("nested/_temporary", False),
        ("success/", False),
    ],
)
def test_data_files_are_told_from_markers_and_folder_placeholders(tmp_path, name, data):
    assert layout.is_data_file(f"s3://b/out/job/success/{name}") is data
    folder = tmp_path / "success"
    if not name.endswith("/"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("x")
        assert layout.data_files(folder) == ([str(folder / name)] if data else [])


def test_the_layout_imports_only_the_configuration_and_the_standard_library():
    tree = ast.parse(Path(layout.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported - {"__future__"} - set(sys.stdlib_module_names) == {"er_assets.config"}
