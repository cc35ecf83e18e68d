"""`celery -A tests.support.celery_conf_app worker`: the real worker with some Celery settings put back.

BACKFILL_TEST_CELERY_CONF holds a JSON object of Celery settings applied over the ones
`workers.factory.create_app` chooses, so a test can show what a choice protects against
(e.g. Celery's own defaults for the connection-loss settings) on an otherwise real worker.
"""

from __future__ import annotations

import json
import os

from backfill.settings import Settings
from workers.factory import create_app

app = create_app(Settings(), worker=True)
app.conf.update(json.loads(os.environ.get("BACKFILL_TEST_CELERY_CONF", "{}") or "{}"))
