"""Object stores: S3 in production, a local folder laid out like the bucket everywhere else.

Assets and metadata always speak in `s3://bucket/key` URIs, so a path recorded by a local
run reads exactly like one from production; only the resource maps it to bytes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from er_assets.layout import local_path, split_uri
from er_assets.resources.entity_resolution import RETRY_CONFIG

# Bytes of objects this process has read: what S3 sent for GetObject (downloads and ranged
# reads alike) and what local copies handed out to be read here. Stages record the difference
# over their run, so the metadata shows how much record data came through the orchestrator.
_bytes_read = 0


def bytes_read() -> int:
    return _bytes_read


def count_read(size: int) -> None:
    global _bytes_read
    _bytes_read += int(size or 0)


class ObjectStore(dg.ConfigurableResource):
    """What the stages need of an object store. URIs passed in end with '/' for prefixes."""

    def list_files(self, prefix_uri: str) -> list[str]:
        raise NotImplementedError

    def delete_prefix(self, prefix_uri: str) -> int:
        raise NotImplementedError

    @contextmanager
    def local_copy(self, prefix_uri: str) -> Iterator[Path]:
        """A local folder holding the objects under the prefix, for bulk reads with DuckDB in this
        process (counted in `bytes_read`). The local store only: S3 has none on purpose, since
        record data is read where it lies (Snowflake over the stage), never downloaded here."""
        raise NotImplementedError
        yield  # pragma: no cover


class LocalObjectStore(ObjectStore):
    """Buckets as folders under `root`: s3://bucket/key is root/bucket/key."""

    root: str

    def path(self, uri: str) -> Path:
        return local_path(self.root, uri)

    def list_files(self, prefix_uri: str) -> list[str]:
        base = self.path(prefix_uri)
        if not base.is_dir():
            return []
        return sorted(
            f"{prefix_uri.rstrip('/')}/{p.relative_to(base).as_posix()}" for p in base.rglob("*") if p.is_file()
        )

    def delete_prefix(self, prefix_uri: str) -> int:
        base = self.path(prefix_uri)
        if not base.exists():
            return 0
        count = sum(1 for p in base.rglob("*") if p.is_file())
        shutil.rmtree(base)
        return count

    @contextmanager
    def local_copy(self, prefix_uri: str) -> Iterator[Path]:
        base = self.path(prefix_uri)
        if base.is_dir():
            count_read(sum(p.stat().st_size for p in base.rglob("*") if p.is_file()))
        yield base


def _count_get_object(parsed: dict, **_) -> None:
    count_read(parsed.get("ContentLength", 0))


class S3ObjectStore(ObjectStore):
    """Production: the bucket itself, through the boto3 client of dagster-aws's S3Resource
    (botocore's "standard" retries, as the other AWS clients here) with the deployment's
    credentials."""

    region_name: str | None = None
    profile_name: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = RETRY_CONFIG["max_attempts"]  # botocore's retries per call; fewer when `doctor` probes

    def client(self):
        """The boto3 S3 client of this store's profile, region and endpoint, every GetObject it
        makes counted in `bytes_read`: the one way to the bucket, for this module and others."""
        from dagster_aws.s3 import S3Resource  # imported when a stage reaches S3, not with the definitions

        client = S3Resource(
            region_name=self.region_name,
            profile_name=self.profile_name,
            endpoint_url=self.endpoint_url,
            max_attempts=self.max_attempts,
        ).get_client()
        client.meta.events.register("after-call.s3.GetObject", _count_get_object)
        return client

    def _keys(self, client, prefix_uri: str) -> list[str]:
        bucket, prefix = split_uri(prefix_uri)
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def list_files(self, prefix_uri: str) -> list[str]:
        bucket, _ = split_uri(prefix_uri)
        return [f"s3://{bucket}/{key}" for key in self._keys(self.client(), prefix_uri)]

    def delete_prefix(self, prefix_uri: str) -> int:
        client = self.client()
        bucket, _ = split_uri(prefix_uri)
        keys = self._keys(client, prefix_uri)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)
