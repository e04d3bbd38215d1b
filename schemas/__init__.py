"""Data contracts: SQL migrations, code tables, the MQTT message and registry formats."""
