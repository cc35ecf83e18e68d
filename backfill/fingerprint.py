"""A processor's code fingerprint, stamped on every run-history row (`code_version`).

The executor stamps it when a task writes; `backfill gaps --stale` compares it with the
current spec to find partitions written by code that has changed since. It is core (spec data
in, a string out) so the executor needs nothing of the validation package to stamp it.
"""

from __future__ import annotations

import hashlib
import json

from backfill.spec import Processor


def code_version(proc: Processor) -> str:
    """A fingerprint of everything that decides what a processor writes.

    Its code (SQL text, or the python / http reference and options) and the spec entry parts
    that shape the output (target, partition, columns, key, upstream windows). Descriptions,
    estimates, batch sizes, `expect:` and `acceptance:` change no row, so they are left out:
    editing them marks nothing stale.
    """
    sql = ""
    if proc.sql is not None:
        try:
            sql = proc.sql.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            sql = "<unreadable>"
    parts = {"sql": sql, "python": proc.python, "http": proc.http, "options": dict(proc.options),
             "target": proc.target, "partition": proc.partition, "key": list(proc.key),
             "columns": [[c.name, c.type] for c in proc.columns],
             "depends_on": [[d.source, d.window.describe()] for d in proc.depends_on]}
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]
