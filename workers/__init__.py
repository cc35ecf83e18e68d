"""Celery runner code: the app factory, the tasks, and the dispatcher the engine sends work through."""
