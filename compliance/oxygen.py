"""The reference-oxygen correction of stack concentrations, and when it cannot be made (pure)."""

from __future__ import annotations

from compliance.context import Context, JudgementError
from schemas.catalogue import Standard

# O2 at or above this is near-ambient air (20.9 %): the source is stopped or purging, the factor
# (21 - ref) / (21 - O2) only multiplies noise, and such hours are not judged
# (docs/reference/standards.md B5). A standard lowers it with `validity: o2_max` (19.5 % for
# boilers and kilns); the rest, sinter and pellet plants (16-18 % reference) among them, stop at
# 20 %, where a stopped sinter machine's 10 mg/m³ of SO2 would otherwise be corrected to 500
# (found by the standards audit). A running pellet machine at 19 % (correction x3) is judged.
O2_CEILING = 20.0


def corrected(standard: Standard, cls: str, value: float, ctx: Context, notes: list[str]) -> tuple[float, str | None]:
    """The value at the class's reference O2 (docs/reference/standards.md B5), and the clause; as is without one."""
    ref = standard.reference_o2.get(cls)
    if ref is None:
        return value, None
    if ctx.o2_pct is None:
        raise JudgementError(
            "missing_o2",
            f"{standard.id} class {cls} judges at {ref.value:g} % O2: give context.o2_pct (measured O2, %)",
        )
    if ctx.o2_pct < 0:
        raise JudgementError("o2_invalid", f"O2 of {ctx.o2_pct:g} % is below 0: not a measurement")
    ceiling = standard.setting("o2_max", O2_CEILING)
    if ctx.o2_pct >= ceiling:
        raise JudgementError(
            "o2_out_of_range",
            f"O2 of {ctx.o2_pct:g} % (≥ {ceiling:g} %) is a stopped or purging source: the correction to "
            f"{ref.value:g} % would multiply the value by {(21 - ref.value) / max(21 - ctx.o2_pct, 1e-9):.1f}",
        )
    o2, ref_o2 = ctx.o2_pct, ref.value
    # 21 × 11 / 7.7 is 30, not the 30.000000000000004 of binary floats: rounded to 12 significant
    # digits (far below any analyser's resolution), a value at the limit stays compliant.
    corrected = float(f"{value * (21 - ref_o2) / (21 - o2):.12g}")
    notes.append(f"corrected to {ref_o2:g} % O2 from measured {o2:g} %: C × (21 − {ref_o2:g}) / (21 − {o2:g})")
    return corrected, ref.clause
