"""Alerts: exceedances and data problems raised, followed through their lifecycle, and notified (docs/alerts.md)."""
