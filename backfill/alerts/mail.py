"""The mail sink: one message per alert over SMTP, plain text plus an HTML table.

STARTTLS when `smtp_starttls` (the default; port 587) and login when a user is set. The
password is a SecretStr read only here, at login.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from backfill.alerts.message import Alert
from backfill.settings import Settings


class MailSink:
    name = "mail"

    def __init__(self, settings: Settings, ssl_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.recipients = [a.strip() for a in settings.smtp_to.split(",") if a.strip()]
        self.ssl_context = ssl_context

    def build(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = alert.subject
        msg["From"] = self.settings.smtp_from
        msg["To"] = ", ".join(self.recipients)
        msg["X-Backfill-Run"] = alert.run_id
        msg["X-Backfill-Alert"] = f"{alert.kind} {alert.scope}"
        msg.set_content(alert.text())
        msg.add_alternative(f"<html><body>{alert.html()}</body></html>", subtype="html")
        return msg

    def send(self, alert: Alert) -> None:
        s = self.settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout) as smtp:
            if s.smtp_starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password.get_secret_value())
            smtp.send_message(self.build(alert))
