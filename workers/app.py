"""The entry module for `celery -A workers.app worker|flower|purge|control ...`.

It builds the app from Settings() (BACKFILL_* variables) when Celery imports it. Nothing in
`backfill` imports this module: the CLI builds its own app with `workers.factory.create_app`.
"""

from backfill.settings import Settings
from workers.factory import create_app

app = create_app(Settings(), worker=True)
