# The worker and Flower image used by docker-compose.yml: the package with its BigQuery and
# Sentry extras, running as an unprivileged user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BACKFILL_HOME=/data

WORKDIR /app
COPY setup.py ./
COPY backfill ./backfill
COPY workers ./workers
COPY pipelines ./pipelines
RUN pip install ".[bigquery,sentry]" \
    && useradd --create-home --uid 10001 backfill \
    && mkdir -p /data && chown backfill /data

USER backfill
CMD ["backfill", "worker"]
