"""Each sink against a real server: SMTP with STARTTLS and login (aiosmtpd), a webhook, files."""

from __future__ import annotations

import email
import email.policy
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from backfill.alerts.categories import Issue
from backfill.alerts.digest import build_digest
from backfill.alerts.files import FileSink
from backfill.alerts.mail import MailSink
from backfill.alerts.message import Alert
from backfill.alerts.sinks import deliver, secrets_of
from backfill.settings import Settings
from tests.conftest import free_port

controller = pytest.importorskip("aiosmtpd.controller")
PASSWORD = "PLANTED-SMTP-PASSWORD-5d1"


def _alert() -> Alert:
    issues = [Issue("processor_error", "p", d, "failed", "boom") for d in ("2023-11-01", "2023-11-02")]
    return Alert("season", "RUN", "season:2023-24",
                 digest=build_digest("RUN", "season", "2023-24", issues, {"p": ["2023-11-01", "2023-11-02"]}))


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def test_mail_goes_through_starttls_and_login(tls_files: tuple[Path, Path]) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = tls_files
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    received: list[Any] = []
    logins: list[tuple[bytes, bytes]] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append((session.ssl is not None, email.message_from_bytes(envelope.content,
                                                                              policy=email.policy.default)))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == PASSWORD.encode())

    port = free_port()
    smtp = controller.Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=server_tls,
                                 require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    smtp.start()
    try:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=port, smtp_user="ops", smtp_password=SecretStr(PASSWORD),
                            smtp_to="a@example.com, b@example.com")
        client_tls = ssl.create_default_context(cafile=str(cert))
        MailSink(settings, ssl_context=client_tls).send(_alert())
        assert logins == [(b"ops", PASSWORD.encode())]
        ((encrypted, message),) = received
        assert encrypted
        assert message["To"] == "a@example.com, b@example.com"
        assert "processor_error / p: 2 date(s)" in message.get_body(("plain",)).get_content()
        # A wrong password is a sink failure: retried, then recorded without the password.
        bad = settings.model_copy(update={"smtp_password": SecretStr(PASSWORD + "x"), "smtp_timeout": 1.0})
        failures: list[tuple[str, str]] = []
        took = deliver(_alert(), [MailSink(bad, ssl_context=client_tls)], attempts=2, backoff=0.01,
                       secrets=secrets_of(bad), on_failure=lambda s, e: failures.append((s, e)))
        assert took == [] and len(failures) == 1 and failures[0][0] == "mail"
        assert PASSWORD not in failures[0][1] and logins[-1] == (b"ops", (PASSWORD + "x").encode())
    finally:
        smtp.stop()


def test_file_sink_writes_markdown_under_the_runs_folder(tmp_path: Path) -> None:
    FileSink(tmp_path).send(_alert())
    (path,) = (tmp_path / "runs" / "RUN" / "alerts").glob("*.md")
    assert "season-season_2023-24" in path.name
    assert "| processor_error | p | 2 | 2 | 0 | 0 | 2023-11-01..2023-11-02 |" in path.read_text()
