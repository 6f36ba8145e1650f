"""No secret reaches a log: failing stages with fake credentials in the history URL (URL and
libpq DSN forms), the Snowflake and the SMTP settings, then every file under ER_DATA_DIR and
DAGSTER_HOME, stdout and stderr are searched for them. The job history records the exit
code the bridge returns."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from er_assets import exit_codes
from er_assets.history import HistoryError, HistoryStore
from er_assets.redact import redact_text, scrub_exception
from er_assets_tests.helpers import seed

BRIDGE = [sys.executable, "-m", "autosys_bridge.cli"]
SECRETS = {
    "SNOWFLAKE_PASSWORD": "Snow-Fl4ke-pw!",
    "SNOWFLAKE_PRIVATE_KEY_PASSWORD": "Key-Phr4se-pw!",
    "ER_SMTP_PASSWORD": "Smtp-M4il-pw!",
}
URL_SECRET, DSN_SECRET = "Sup3r-S3cret-url!", "Sup3r-S3cret-dsn!"


def _leaks(root: Path, *texts: str, secrets) -> list[str]:
    """Where any secret appears: file paths (bytes, any encoding the text may take) or 'output'."""
    found = [f"output: {s}" for s in secrets for text in texts if s in text]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data or s.encode("utf-16-le") in data]
    return found


@pytest.mark.parametrize(
    "url, secret",
    [
        (f"sqlite://er:{URL_SECRET}@dbhost/history.db", URL_SECRET),
        (f"host=127.0.0.1 port=1 user=er password={DSN_SECRET} dbname=history", DSN_SECRET),
    ],
)
def test_a_bridge_run_failing_on_the_history_database_shows_no_secret(local_env, url, secret):
    env = {
        **os.environ,
        **SECRETS,
        "ER_HISTORY_URL": url,
        "ER_SMTP_HOST": "127.0.0.1",
        "ER_SMTP_PORT": "1",
        "ER_SMTP_USER": "er",
    }
    done = subprocess.run(
        [*BRIDGE, "run", "customers", "extract", "--date", "2026-11-28"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == exit_codes.SERVICE_UNAVAILABLE, done.stderr[-2000:]
    assert "***" in done.stderr  # the failure is reported, masked
    report = subprocess.run(
        [*BRIDGE, "report", "-o", str(local_env / "report.html")], capture_output=True, text=True, env=env, timeout=120
    )
    assert report.returncode == exit_codes.SERVICE_UNAVAILABLE and "error" in report.stderr
    assert not _leaks(
        local_env, done.stdout, done.stderr, report.stdout, report.stderr, secrets=[secret, *SECRETS.values()]
    )


def test_a_stage_whose_driver_echoes_credentials_is_masked_everywhere(config, local_env, monkeypatch, capfd):
    """A Snowflake OperationalError quoting the password and the SMTP password, raised from
    a cause quoting the history URL: masked in the event log, compute logs, stderr and the
    history row, which records the bridge's exit code (5), not 1."""
    from snowflake.connector.errors import OperationalError

    from autosys_bridge.cli import main
    from er_assets.resources.warehouses.local import DuckDBWarehouse

    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    history_url = f"sqlite:///{local_env / 'history.db'}"
    monkeypatch.setenv("ER_HISTORY_URL", history_url)
    seed(config.domain("customers"), "2026-11-28", 200, local_env)

    def unload(self, *args, **kwargs):
        try:
            raise ValueError(f"while connecting to postgresql://er:{URL_SECRET}@db/x")
        except ValueError as cause:
            raise OperationalError(
                msg=f"login failed for er with password {SECRETS['SNOWFLAKE_PASSWORD']} "
                f"(smtp: {SECRETS['ER_SMTP_PASSWORD']})",
                errno=250001,
            ) from cause

    monkeypatch.setattr(DuckDBWarehouse, "unload_extract", unload)
    code = main(["run", "customers", "extract", "--date", "2026-11-28"])
    out, err = capfd.readouterr()
    assert code == exit_codes.SERVICE_UNAVAILABLE, err[-2000:]
    assert "OperationalError" in err and "***" in err
    assert not _leaks(local_env, out, err, secrets=[URL_SECRET, *SECRETS.values()])
    with HistoryStore.from_url(history_url) as store:
        (row,) = store.rows()
    assert (row.stage, row.exit_code) == ("extract", code)
    assert "OperationalError" in row.error_message and SECRETS["SNOWFLAKE_PASSWORD"] not in row.error_message


def test_history_errors_mask_themselves_and_scrubbing_reaches_every_cause(monkeypatch):
    monkeypatch.setenv("ER_HISTORY_URL", f"postgresql://er:{URL_SECRET}@db/x")
    assert URL_SECRET not in str(HistoryError(f"cannot use {os.environ['ER_HISTORY_URL']}"))
    # a password with URL syntax in it is still found: it is read from the environment
    monkeypatch.setenv("ER_HISTORY_URL", "postgresql://er:p%40ss%2Fw0rd!@db/x")
    assert "p@ss/w0rd!" not in redact_text("auth failed for p@ss/w0rd!")
    try:
        try:
            raise KeyError(f"password={DSN_SECRET}")
        except KeyError:
            raise RuntimeError("outer") from None
    except RuntimeError as exc:
        outer = exc
    outer.__context__ = KeyError(f"password={DSN_SECRET}")
    assert scrub_exception(outer) and DSN_SECRET not in repr(outer.__context__)


def test_an_exception_that_cannot_be_masked_in_place_is_replaced_keeping_its_exit_code(monkeypatch):
    from snowflake.connector import errors as snowflake_errors

    from er_assets.errors import PipelineError, ServiceUnavailable, masked_error

    class Stubborn(Exception):
        def __str__(self):
            return f"password={DSN_SECRET}"

    class OperationalError(Stubborn):
        pass

    assert not scrub_exception(OperationalError())
    replacement = masked_error(OperationalError())
    # Only the name is Snowflake's: an error of unknown origin is a failed stage.
    assert type(replacement) is PipelineError and DSN_SECRET not in str(replacement)
    assert str(replacement) == "OperationalError: password=***"

    class Unreachable(Stubborn, snowflake_errors.OperationalError):
        pass

    replacement = masked_error(Unreachable())
    assert isinstance(replacement, ServiceUnavailable) and DSN_SECRET not in str(replacement)


def test_a_replacement_keeps_the_exit_code_of_any_coded_error_in_the_chain():
    from er_assets.errors import CODED, exit_code_of, masked_error

    for cls in CODED:
        try:
            try:
                raise cls(f"password={DSN_SECRET}")
            except cls as inner:
                raise RuntimeError("the client library wrapped it") from inner
        except RuntimeError as exc:
            outer = exc
        replacement = masked_error(outer)
        assert type(replacement).exit_code == exit_code_of(outer) == cls.exit_code, cls
        assert exit_code_of(replacement) == cls.exit_code


def test_a_mail_server_error_echoing_the_password_is_masked_before_the_sensor_logs_it(config, tmp_path, monkeypatch):
    from er_assets.resources.notifications import RunOutcome, notify_run

    monkeypatch.setenv("ER_SMTP_PASSWORD", SECRETS["ER_SMTP_PASSWORD"])

    class EchoingServer:
        def send(self, message):
            raise OSError(f"535 authentication failed for er:{SECRETS['ER_SMTP_PASSWORD']}")

    with HistoryStore.from_url(f"sqlite:///{tmp_path / 'h.db'}") as store, pytest.raises(OSError) as info:
        notify_run(
            config,
            RunOutcome("customers", "extract", "2026-11-28", "run-1", "FAILURE", "x"),
            store=store,
            mailer=EchoingServer(),
        )
    assert SECRETS["ER_SMTP_PASSWORD"] not in str(info.value) and "***" in str(info.value)


def test_an_error_named_after_a_token_keeps_its_message_and_a_token_value_is_still_masked():
    from er_assets.redact import redact_text

    assert redact_text("ExpiredTokenException: The security token included in the request is expired") == (
        "ExpiredTokenException: The security token included in the request is expired"
    )
    assert redact_text("CredentialRetrievalError: Error when retrieving credentials") == (
        "CredentialRetrievalError: Error when retrieving credentials"
    )
    assert redact_text("session_token=abcdef123456 password: hunter22x") == "session_token=*** password: ***"
