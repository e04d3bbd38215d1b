"""Compliance: the national standards as data, judged with the regulators' windows and rules."""
