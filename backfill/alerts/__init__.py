"""Alerts: failure categories and sinks. Only the Sentry sink exists so far (`alerts.sentry`)."""
