"""A real, throw-away PostgreSQL server for tests.

`postgres_server` (session) runs initdb into a temporary directory and starts the server on
a free 127.0.0.1 port, its unix socket inside that directory, durability switched off for
speed; it is stopped and deleted at session end. `postgres_url` (per test) points at a
fresh schema on it, so tests never see each other's rows. `postgres_home` (per test) is a
DAGSTER_HOME of the production instance as documented (docs/dagster.yaml) on a fresh
database of that server, its compute logs in `moto_s3`, the job history in a fresh schema.

Binaries are looked up in /usr/lib/postgresql/*/bin (where Debian's `postgresql` package
puts them; newest version first), then on PATH. Missing binaries skip the tests, except
under CI (env CI set), where they fail: CI must test Postgres for real.

initdb and postgres refuse to run as root; as root the server runs as the `postgres` user
(created by the Debian package) through `runuser`.

Use from a test module: `pytest_plugins = ["er_assets_tests.postgres"]`. Registering it as a
plugin (rather than importing the fixtures) keeps one server for the whole session: an
imported fixture is a separate definition, and so a separate server, in every module.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from er_assets_tests.helpers import DOCS_DAGSTER_YAML, LOG_BUCKET

SERVER_USER = "postgres"
START_ATTEMPTS = 3  # the free port we picked may be taken before the server binds it


def _version_key(path: str) -> tuple[int, ...]:
    parts = Path(path).parent.name.split(".")
    return tuple(int(p) for p in parts if p.isdigit())


def find_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if all(os.access(Path(bindir, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(bindir)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        # /usr/local/bin may hold symlinks into the real bin directory; postgres itself
        # must sit next to pg_ctl, so follow them.
        return Path(pg_ctl).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.as_other_user = os.geteuid() == 0
        # Not pytest's tmp_path: it lives under a root-only 0700 directory the server
        # user could not enter.
        self.root = Path(tempfile.mkdtemp(prefix="er-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        if self.as_other_user:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as "
                    "(install the Debian postgresql package, or run the tests as a normal user)"
                ) from None
            os.chown(self.root, user.pw_uid, user.pw_gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_other_user:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        done = self._run(
            "initdb", "-D", str(self.data), "-U", "er", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        for _ in range(START_ATTEMPTS):
            self.port = _free_port()
            options = (
                f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            done = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "30", "start"
            )
            if done.returncode == 0:
                return
        log = self.log.read_text() if self.log.exists() else ""
        raise RuntimeError(f"pg_ctl start failed:\n{done.stdout}{done.stderr}\n{log[-2000:]}")

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://er@127.0.0.1:{self.port}/{database}"

    def fresh_schema(self) -> str:
        """A URL whose connections work in a new, empty schema. A schema takes a
        millisecond; CREATE DATABASE copies a template and takes half a second."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")  # generated name, not input
        return f"{self.url()}?options=-csearch_path%3D{name}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_binaries()
    if bindir is None:
        reason = "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin or PATH); apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the PostgreSQL tests: {reason}", pytrace=False)
        pytest.skip(reason)
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.fresh_schema()


@pytest.fixture
def moto_s3(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=LOG_BUCKET)
    yield s3
    server.stop()


@pytest.fixture
def postgres_home(local_env, postgres_server, moto_s3, monkeypatch):
    """DAGSTER_HOME holding a link to docs/dagster.yaml, its variables pointing at a fresh
    database; the job history in a fresh schema of the same server."""
    import psycopg

    database = f"dagster_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {database}")  # generated name, not input
    home = local_env / "dagster_home"
    (home / "dagster.yaml").unlink()
    (home / "dagster.yaml").symlink_to(DOCS_DAGSTER_YAML)
    for name, value in {
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(postgres_server.port),
        "DAGSTER_PG_DB": database,
        "DAGSTER_PG_USER": "er",
        "DAGSTER_PG_PASSWORD": "",
        "DAGSTER_COMPUTE_LOG_BUCKET": LOG_BUCKET,
        "DAGSTER_COMPUTE_LOG_PREFIX": "compute-logs",
        "ER_HISTORY_URL": postgres_server.fresh_schema(),
    }.items():
        monkeypatch.setenv(name, value)
    return home
