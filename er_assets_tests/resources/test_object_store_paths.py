"""Object-store keys stay inside their store: no `.`, `..` or empty segment reaches S3 or
the local folder, and a local path that resolves outside the folder (a symbolic link
included) is refused before anything is read, written or deleted."""

import pytest

from er_assets.emulator.service import Emulator
from er_assets.layout import UnsafeKey, local_path, split_uri
from er_assets.resources.object_store import LocalObjectStore


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/entity-resolution/../../../tmp/escaped/",
        "s3://bucket/a//b.parquet",
        "s3://bucket//a/",
        "s3://bucket/a/./b/",
        "s3://../a/",
        "s3://bucket/a/\x00/",
        "s3://bucket/..",
    ],
)
def test_traversing_or_empty_segments_are_refused(uri):
    with pytest.raises(UnsafeKey):
        split_uri(uri)


def test_plain_keys_and_prefixes_are_accepted(tmp_path):
    assert split_uri("s3://er-data-lake/entity-resolution/customers/extract/partition=2026-11-28/") == (
        "er-data-lake",
        "entity-resolution/customers/extract/partition=2026-11-28/",
    )
    assert local_path(tmp_path, "s3://b/a/x.parquet") == (tmp_path / "b" / "a" / "x.parquet").resolve()


def test_a_symbolic_link_out_of_the_store_is_refused_and_nothing_is_deleted(tmp_path):
    root, outside = tmp_path / "s3", tmp_path / "outside"
    (root / "bucket").mkdir(parents=True)
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (root / "bucket" / "link").symlink_to(outside)
    store = LocalObjectStore(root=str(root))
    for call in (store.delete_prefix, store.list_files):
        with pytest.raises(UnsafeKey, match="outside the object store folder"):
            call("s3://bucket/link/")
    with pytest.raises(UnsafeKey):
        store.delete_prefix("s3://bucket/../../outside/")
    assert (outside / "precious.txt").read_text() == "keep me"


def test_the_emulator_reads_and_writes_only_inside_the_store(tmp_path, config):
    emulator = Emulator(tmp_path / "state", tmp_path / "s3", config)
    with pytest.raises(UnsafeKey):
        emulator.local_path("s3://bucket/output/../../../../tmp/x/")
    assert emulator.local_path("s3://bucket/output/") == (tmp_path / "s3" / "bucket" / "output").resolve()
