"""The webhook sink: a JSON POST per alert, Slack-compatible (`text`), with the data under `backfill`.

The URL often carries its token (Slack's hooks.slack.com/services/T../B../secret), so it is
a SecretStr and never appears in logs or `status`: only the sink's name does.
"""

from __future__ import annotations

import json
import urllib.request

from backfill.alerts.message import Alert


class WebhookSink:
    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self._url = url
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        body = json.dumps({"text": alert.text(), "backfill": alert.to_json()}).encode()
        request = urllib.request.Request(self._url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - configured URL
            if response.status >= 300:
                raise RuntimeError(f"webhook answered HTTP {response.status}")

    def __repr__(self) -> str:
        return "WebhookSink(***)"
