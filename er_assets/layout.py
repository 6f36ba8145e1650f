"""Where things live in the bucket: the one home of the object-store layout.

Per domain, under `s3://<bucket>/<prefix>/`:

    extract/partition=<key>/run=<run id>/   one run's parquet extract of a partition (every
                                            run its own prefix: S3 has no atomic rename):
                                            the slice's records, and in context_*.parquet the
                                            known entities' records its job is given as context
    extract/_doctor/<token>/                the doctor's scratch unload, removed at once
    output/                                 the workflow's outputS3Path; the service writes
                                            each job to <workflowName>/<jobId>/success/ and
                                            error/ under it (found by listing, match_output)

URIs end in `/` when they name a prefix; `split_uri` and `local_path` refuse any key that could
reach outside its bucket or the local store's folder. Imports only `er_assets.config`, for the
Domain type.
"""

from __future__ import annotations

import re
from pathlib import Path

from er_assets.config import Domain

EXTRACT, OUTPUT = "extract", "output"
# The job folder's sub-folders (user guide, "Viewing the output of a matching workflow").
SUCCESS, ERROR = "success", "error"
# A data file is any object of success/ (or error/) that is not a folder placeholder or a
# marker such as `_SUCCESS` or `.part.crc`: the rule the loaders list by, and, as Snowflake's
# PATTERN (matched against the file's path), the files Snowflake counts and copies.
DATA_FILE_PATTERN = "(.*/)?[^/_.][^/]*"
# The extract's context records (entity registry): read by the job with the slice's records
# (the Glue table takes every file of the prefix), told apart by the stages by this name.
CONTEXT_FILE = "context_0.parquet"
CONTEXT_FILE_PATTERN = "(.*/)?context_[^/]*[.]parquet"


def extract_key(domain: Domain) -> str:
    """The extract prefix as a key in the domain's bucket (no scheme, no trailing `/`)."""
    return f"{domain.prefix}/{EXTRACT}"


def output_key(domain: Domain) -> str:
    return f"{domain.prefix}/{OUTPUT}"


def extract_prefix(domain: Domain) -> str:
    return f"s3://{domain.bucket}/{extract_key(domain)}"


def output_prefix(domain: Domain) -> str:
    """The workflow's outputS3Path."""
    return f"s3://{domain.bucket}/{output_key(domain)}"


def partition_prefix(domain: Domain, partition_key: str) -> str:
    return f"{extract_prefix(domain)}/partition={partition_key}/"


def extract_uri(domain: Domain, partition_key: str, run_id: str) -> str:
    """Where one run's extract of a partition goes. Every run writes its own prefix, so
    an extract that fails halfway never mixes files into the one the last checked
    materialisation points at (S3 has no atomic rename)."""
    return f"{partition_prefix(domain, partition_key)}run={run_id}/"


def probe_prefix(domain: Domain, token: str) -> str:
    """A scratch prefix under the extract prefix, where the doctor proves the stage is writable."""
    return f"{extract_prefix(domain)}/_doctor/{token}/"


def job_folder(output_path: str, workflow_name: str, job_id: str) -> str:
    """Where the service puts a job's output today; nothing promises it (match_output lists)."""
    return f"{output_path.rstrip('/')}/{workflow_name}/{job_id}/"


def success_uri(job_folder_uri: str) -> str:
    return f"{job_folder_uri}{SUCCESS}/"


def error_uri(success: str) -> str:
    """The error/ folder beside a job's success/ folder."""
    return success[: -len(f"{SUCCESS}/")] + f"{ERROR}/"


def is_data_file(key: str) -> bool:
    return re.fullmatch(DATA_FILE_PATTERN, key) is not None


def data_files(folder: Path) -> list[str]:
    """The data files under a local copy of a success/ or error/ folder, in name order."""
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.rglob("*") if p.is_file() and is_data_file(p.name))


class UnsafeKey(ValueError):
    """An object-store URI that could reach outside its bucket or prefix."""


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key").

    Keys are built from validated configuration parts; this is the check behind that: no
    `.` or `..` segment and no empty one (`a//b`; a trailing `/` marks a prefix), so a key
    means the same object in S3 and in the local folder, and never one outside the bucket."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or bucket in (".", "..") or "\\" in bucket:
        raise UnsafeKey(f"{uri!r} names no usable bucket")
    segments = key.split("/")
    if segments[-1] == "":
        segments.pop()  # a prefix
    if any(segment in ("", ".", "..") for segment in segments) or "\x00" in key:
        raise UnsafeKey(f"{uri!r}: object keys may hold no empty, '.' or '..' segment")
    return bucket, key


def local_path(root: str | Path, uri: str) -> Path:
    """Where a local object store keeps `uri`: root/bucket/key, refused unless it resolves
    (symbolic links followed) to a place inside root."""
    bucket, key = split_uri(uri)
    base = Path(root).resolve()
    path = (base / bucket / key).resolve()
    if not path.is_relative_to(base):
        raise UnsafeKey(f"{uri!r} resolves outside the object store folder {base}")
    return path
