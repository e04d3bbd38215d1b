"""Simulated stations, the demo fleet and the benchmark."""
