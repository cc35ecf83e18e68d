"""One alert, whatever carries it: a digest, a critical failure, or (immediate mode) one failure.

Each sink renders the same `Alert`: plain text (mail body, the webhook's Slack `text`),
an HTML table (mail), Markdown (files) and JSON (webhook payload). Nothing here holds a
secret: alerts carry run ids, processors, dates and first lines of error messages, which
`backfill.alerts.sentry.scrub_text` has already cleaned of URL passwords.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from backfill.alerts.digest import Digest
from backfill.outcome import ErrorCategory, TaskOutcome


@dataclass(frozen=True)
class Alert:
    kind: str  # season | final | update (digests) | critical | failure
    run_id: str
    scope: str  # season:2023-24, final, critical:<hash>, failure:<task>:<seq>
    digest: Digest | None = None
    failure: dict[str, Any] = field(default_factory=dict)  # processor, category, task_id, dates, message

    @property
    def subject(self) -> str:
        if self.digest is not None:
            return self.digest.title
        f = self.failure
        label = "CRITICAL" if self.kind == ErrorCategory.critical else TaskOutcome.failed
        return f"backfill {self.run_id}: {label}: {f.get('processor')} {f.get('category')} ({f.get('task_id')})"

    def text(self) -> str:
        if self.digest is None:
            f = self.failure
            dates = ", ".join(f.get("dates") or [])
            return (f"{self.subject}\n{f.get('category')} in {f.get('processor')} on {dates}:\n"
                    f"{f.get('message')}\n")
        lines = [self.subject]
        if not self.digest.groups:
            lines.append("no failures and no warnings")
        for g in self.digest.groups:
            counts = ", ".join(f"{n} {label}" for n, label in
                               ((g.failed, TaskOutcome.failed), (g.blocked, TaskOutcome.blocked),
                                (g.partial, TaskOutcome.partial)) if n)
            lines.append(f"- {g.category} / {g.processor}: {g.count} date(s) ({counts}); {g.runs_text()}")
            lines += [f"    {e}" for e in g.examples]
        lines.append(f"details: backfill digest {self.run_id}"
                     + (f" --season {self.digest.season}" if self.digest.season else ""))
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        if self.digest is None:
            return f"<pre>{html.escape(self.text())}</pre>"
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in (
                g.category, g.processor, g.count, g.failed, g.blocked, g.partial, g.runs_text(),
                " | ".join(g.examples))) + "</tr>" for g in self.digest.groups)
        head = "".join(f"<th>{h}</th>" for h in ("category", "processor", "dates", TaskOutcome.failed,
                                                 TaskOutcome.blocked, TaskOutcome.partial, "affected game dates",
                                                 "examples"))
        return (f"<h3>{html.escape(self.subject)}</h3><table border=\"1\" cellpadding=\"4\">"
                f"<tr>{head}</tr>{rows}</table>")

    def markdown(self) -> str:
        if self.digest is None:
            return f"# {self.subject}\n\n```\n{self.text()}```\n"
        out = [f"# {self.subject}", "", "| category | processor | dates | failed | blocked | partial | game dates |",
               "|---|---|---|---|---|---|---|"]
        out += [f"| {g.category} | {g.processor} | {g.count} | {g.failed} | {g.blocked} | {g.partial} | "
                f"{g.runs_text()} |" for g in self.digest.groups]
        for g in self.digest.groups:
            out += ["", f"**{g.category} / {g.processor}**", ""] + [f"- {e}" for e in g.examples]
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "run_id": self.run_id, "scope": self.scope, "subject": self.subject,
                "digest": self.digest.to_json() if self.digest is not None else None,
                "failure": self.failure or None}
