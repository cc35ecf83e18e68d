"""The file sink: each alert as a Markdown file under the run's folder, `<home>/runs/<run>/alerts/`.

A local, always-available record of what was sent (and the only sink of a laptop run).
File names start with the time and carry the scope, so `ls` lists them in order.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from backfill.alerts.message import Alert


class FileSink:
    name = "file"

    def __init__(self, home: Path) -> None:
        self.home = Path(home)

    def folder(self, run_id: str) -> Path:
        return self.home / "runs" / run_id / "alerts"

    def send(self, alert: Alert) -> None:
        folder = self.folder(alert.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        scope = re.sub(r"[^A-Za-z0-9_.-]+", "_", alert.scope)[:80]
        path = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{alert.kind}-{scope}.md"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(alert.markdown(), encoding="utf-8")
        tmp.replace(path)
