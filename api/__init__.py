"""The HTTP API: registry, readings, dead letters and health."""
