"""Ingest: MQTT readings in, validated, batched and written durably to PostgreSQL."""
