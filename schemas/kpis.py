"""The names of the KPIs that carry a target and of the assessment's indicators (docs/kpis.md)."""

from __future__ import annotations

# The figures a park has a target for; the defaults are settings, a park's registry entry may
# set its own.
TARGET_NAMES = ("treatment_rate", "treated_water_compliance_rate", "solid_waste_rate", "effective_transmission_rate")
# The assessment's indicators, which PARKWATCH_ASSESSMENT_WEIGHTS may weigh.
ASSESSMENT_INDICATORS = (
    "monitoring_coverage",
    "treatment_rate",
    "treated_water_compliance_rate",
    "compliance_rate",
    "within_caps",
    "solid_waste_rate",
    "effective_transmission_rate",
    "facility_coverage",
    "energy_intensity",
)
