"""Compliance alerts and operator notifications (built by the alerting issue; nothing here yet)."""
