"""Run notifications through a real SMTP server (aiosmtpd) on localhost."""

from __future__ import annotations

import datetime as dt
import ssl

import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from er_assets.config import DEFAULT_CONFIG_PATH, load_config
from er_assets.history import HistoryStore
from er_assets.resources.notifications import (
    PrintMailer,
    RunOutcome,
    SmtpSettings,
    compose,
    mailer_from_env,
    notify_run,
    recipients,
)
from er_assets_tests.helpers import Inbox, free_port

RUN = "0b9e6f1c-3f5a-4c2e-9d7e-5a1f2b3c4d5e"
TEAM, ONCALL, BUSINESS, ADMIN = (
    "customer-team@example.com",
    "oncall@example.com",
    "business@example.com",
    "er-admin@example.com",
)


def outcome(stage: str, run_id: str, status: str, error: str | None = None) -> RunOutcome:
    """How `stage` of the customers partition 2025-03-01 ended in run `run_id`."""
    return RunOutcome("customers", stage, "2025-03-01", run_id, status, error)


@pytest.fixture
def env(smtp):
    controller, _ = smtp
    return {
        "ER_SMTP_HOST": "127.0.0.1",
        "ER_SMTP_PORT": str(controller.port),
        "ER_SMTP_FROM": "er@bank.example",
        "ER_DAGSTER_URL": "https://dagster.bank.example/",
    }


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    """The shipped configuration, with failure and success lists that overlap on purpose."""
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["settings"]["admin_emails"] = [ADMIN, TEAM.upper()]
    raw["domains"]["customers"]["notifications"] = {
        "emails": [TEAM],
        "on_failure": [ONCALL, TEAM],
        "on_success": [BUSINESS, ADMIN],
    }
    path = tmp_path_factory.mktemp("config") / "domains.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


@pytest.fixture
def store(tmp_path):
    with HistoryStore.from_url(f"sqlite:///{tmp_path}/history.db") as store:
        yield store


def test_recipients_per_outcome(config):
    assert recipients(config, "customers", "matched", "FAILED") == [TEAM, ONCALL, ADMIN]
    assert recipients(config, "customers", "extract", "DQ_FAILED") == [TEAM, ONCALL, ADMIN]
    assert recipients(config, "customers", "loaded", "TIMEOUT") == [TEAM, ONCALL, ADMIN]
    assert recipients(config, "customers", "loaded", "SUCCEEDED") == [TEAM, BUSINESS, ADMIN]
    assert recipients(config, "customers", "loaded", "SUCCESS") == [TEAM, BUSINESS, ADMIN]  # Dagster's name
    assert recipients(config, "customers", "matched", "SUCCEEDED") == []  # only the final stage's success
    assert recipients(config, "customers", "loaded", "CANCELED") == [TEAM, ONCALL, ADMIN]  # not delivered either
    assert recipients(load_config(), "vendors", "extract", "FAILURE") == ["vendor-team@example.com", ADMIN]


def test_failure_mail_reaches_the_failure_list_once_with_everything_needed(config, env, smtp, store):
    _, inbox = smtp
    store.record_start(
        RUN,
        "matched",
        "customers",
        "2025-03-01",
        "2025-03-01",
        "autosys:ER_CUSTOMER_PROCESS",
        autosys_job_name="ER_CUSTOMER_PROCESS",
    )
    store.record_end(RUN, "matched", "FAILED", record_count=1234, error_message="boom")
    error = "Matching job 7f3a timed out after 10800 s\nTraceback: ...\nsecret=Zx9-very-secret"
    for _ in range(3):  # a sensor re-evaluating the same run
        notify_run(config, outcome("matched", RUN, "FAILURE", error), store=store, env=env)

    ((to, message),) = inbox.messages()
    assert to == sorted([TEAM, ONCALL, ADMIN])
    assert message["To"] == f"{TEAM}, {ONCALL}, {ADMIN}"
    assert message["From"] == "er@bank.example"
    assert message["Subject"] == "[ER FAILED] customers/matched partition 2025-03-01"
    body = message.get_content()
    for expected in (
        "Domain:     customers",
        "Stage:      matched",
        "Partition:  2025-03-01",
        f"Run id:     {RUN}",
        f"Run:        https://dagster.bank.example/runs/{RUN}",
        "Records:    1,234",
        "AutoSys:    ER_CUSTOMER_PROCESS",
        "Matching job 7f3a timed out after 10800 s",
    ):
        assert expected in body
    assert "Zx9-very-secret" not in body and "secret=***" in body
    assert [n["status"] for n in store.notifications(RUN)] == ["FAILED"]


def test_final_success_goes_to_the_success_list_and_earlier_successes_to_nobody(config, env, smtp, store):
    _, inbox = smtp
    assert not notify_run(config, outcome("extract", "run-e", "SUCCEEDED"), store=store, env=env)
    assert not notify_run(config, outcome("matched", "run-m", "SUCCEEDED"), store=store, env=env)
    assert notify_run(config, outcome("loaded", "run-l", "SUCCESS"), store=store, env=env)
    assert not notify_run(config, outcome("loaded", "run-l", "SUCCEEDED"), store=store, env=env)
    ((to, message),) = inbox.messages()
    assert to == sorted([TEAM, BUSINESS, ADMIN])
    assert message["Subject"] == "[ER SUCCEEDED] customers/loaded partition 2025-03-01"
    assert "Error" not in message.get_content()


def test_each_status_of_a_run_is_told_once(config, env, smtp, store):
    _, inbox = smtp
    assert notify_run(config, outcome("loaded", "run-x", "DQ_FAILED", "rows differ"), store=store, env=env)
    assert notify_run(config, outcome("loaded", "run-x", "FAILED", "crash"), store=store, env=env)
    assert not notify_run(config, outcome("loaded", "run-x", "DQ_FAILED", "rows differ"), store=store, env=env)
    assert [m["Subject"].split("]")[0] for _, m in inbox.messages()] == ["[ER DQ_FAILED", "[ER FAILED"]


def test_a_failed_send_is_retried_by_the_next_evaluation(config, env, smtp, store):
    _, inbox = smtp
    down = dict(env, ER_SMTP_PORT=str(free_port()))  # nothing listens there
    with pytest.raises(OSError):
        notify_run(config, outcome("extract", "run-r", "FAILURE", "x"), store=store, env=down)
    assert store.notifications("run-r") == []
    assert notify_run(config, outcome("extract", "run-r", "FAILURE", "x"), store=store, env=env)
    assert len(inbox.messages()) == 1


def test_unknown_domain_is_named(config, env, store):
    with pytest.raises(Exception, match="Domain 'xyz' not found"):
        notify_run(config, RunOutcome("xyz", "extract", "2025-03-01", "r", "FAILURE"), store=store, env=env)


def test_default_store_comes_from_the_environment(config, env, smtp, tmp_path):
    _, inbox = smtp
    env = dict(env, ER_HISTORY_URL=f"sqlite:///{tmp_path}/from-env.db")
    assert notify_run(config, outcome("extract", "run-env", "FAILURE"), env=env)
    assert not notify_run(config, outcome("extract", "run-env", "FAILURE"), env=env)
    assert len(inbox.messages()) == 1


def test_without_a_host_messages_are_printed(config, capsys, store):
    env = {"ER_DAGSTER_URL": "http://dagster:3000"}
    assert isinstance(mailer_from_env(env), PrintMailer)
    assert notify_run(config, outcome("extract", "run-p", "FAILURE", "bad data"), store=store, env=env)
    out = capsys.readouterr().out
    assert "not sent" in out and "http://dagster:3000/runs/run-p" in out and "bad data" in out


def test_settings_from_environment():
    assert SmtpSettings.from_env({}).host is None
    assert SmtpSettings.from_env({"ER_SMTP_HOST": "h", "ER_SMTP_SECURITY": "ssl"}).port == 465
    auth = SmtpSettings.from_env({"ER_SMTP_HOST": "h", "ER_SMTP_USER": "u", "ER_SMTP_PASSWORD": "p4ssw0rd!"})
    assert (auth.security, auth.port) == ("starttls", 587)
    assert "p4ssw0rd!" not in repr(auth)
    with pytest.raises(ValueError, match="ER_SMTP_SECURITY"):
        SmtpSettings.from_env({"ER_SMTP_SECURITY": "tls"})
    with pytest.raises(ValueError, match="ER_SMTP_PORT"):
        SmtpSettings.from_env({"ER_SMTP_PORT": "smtp"})


def test_message_link_quotes_the_run_id(config):
    message = compose(config, outcome("extract", "a/b c", "FAILED"), env={})
    assert "http://localhost:3000/runs/a%2Fb%20c" in message.get_content()


def _self_signed(tmp_path):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def test_starttls_and_login(config, store, tmp_path, monkeypatch):
    cert, key = _self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts our test CA, and verifies it
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins = []

    def authenticate(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret-pw")

    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=server_tls,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        env = {
            "ER_SMTP_HOST": "127.0.0.1",
            "ER_SMTP_PORT": str(controller.port),
            "ER_SMTP_SECURITY": "starttls",
            "ER_SMTP_USER": "er-mailer",
            "ER_SMTP_PASSWORD": "s3cret-pw",
        }
        assert notify_run(config, outcome("extract", "run-tls", "FAILURE"), store=store, env=env)
    finally:
        controller.stop()
    assert logins == [(b"er-mailer", b"s3cret-pw")]
    assert len(inbox.messages()) == 1
