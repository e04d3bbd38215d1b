"""Embedded PostgreSQL and MQTT broker, for the demo and the tests on a machine that runs neither.

`parkwatch serve` never uses them: production needs the real services (docs/deployment.md).
"""
