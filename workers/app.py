"""The entry module for `celery -A workers.app worker|flower|inspect|purge|control ...`.

It builds the app from Settings() (BACKFILL_* variables) when Celery imports it, and finds the
same Redis as the CLI: `BACKFILL_REDIS_URL` when exported, else the CLI's local Redis recorded
under the home directory (`.backfill/redis/` in the current directory, or `BACKFILL_HOME`).
When that Redis does not answer or holds no backfill runs, one line on stderr says so (an
empty `inspect ping` then means "wrong Redis", not "dead workers"). Nothing in `backfill`
imports this module: the CLI builds its own app with `workers.factory.create_app`.
"""

import sys

from backfill.localredis import celery_settings
from backfill.settings import Settings
from workers.factory import create_app

settings, note = celery_settings(Settings())
if note:
    print(note, file=sys.stderr)
app = create_app(settings, worker=True)
