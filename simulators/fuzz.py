"""`parkwatch fuzz`: hostile input at every edge for a budget; counts crashes, hangs, memory and losses.

Each edge has a generator of mutated inputs (simulators/fuzz_inputs.py) and a check that feeds
one input to the real code and says whether it was accepted or refused; an exception is a
crash, a broken invariant (something neither kept nor refused, a value out of bounds) a
violation, an input slower than HANG_SECONDS a hang. Failing inputs are saved for replay.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from parkwatch.settings import Settings
from simulators.fuzz_edges import PURE_EDGES, Edge, ViolationError

# One input taking longer than this is a hang (a parser gone quadratic, a regex backtracking).
HANG_SECONDS = 2.0
# Memory is measured after this share of the budget (caches filled), and again at the end.
WARMUP_SHARE = 0.1
# Growth beyond this over a run is unbounded growth, not a cache filling up.
MEMORY_BOUND_MB = 64.0
# Failing inputs kept per edge.
KEEP_FAILURES = 20
SERVICE_EDGES = ("api", "pipeline")
EDGES = (*PURE_EDGES, *SERVICE_EDGES)


@dataclass
class EdgeReport:
    """What one edge's run found."""

    edge: str
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    crashes: int = 0
    violations: int = 0
    hangs: int = 0
    lost: int = 0
    slowest_s: float = 0.0
    seconds: float = 0.0
    rss_growth_mb: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """No crash, violation, hang or loss, and memory bounded."""
        return not (self.crashes or self.violations or self.hangs or self.lost) and self.rss_growth_mb < MEMORY_BOUND_MB


def rss_mb() -> float:
    """The resident memory of this process, after garbage is collected and freed heap returned.

    Without the trim, one large input (a 1 MiB registry whose anchors expand to two million
    values) can leave glibc's heap at its high-water mark, which would read as growth though
    nothing is held (docs/testing.md#fuzzing).
    """
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") else None  # glibc only


_LIBC = _libc()


def save_failure(out: Path | None, report: EdgeReport, case: Any, what: str) -> None:
    """Keep a failing input for replay (the first KEEP_FAILURES per edge) and name it in the report."""
    if len(report.failures) >= KEEP_FAILURES:
        return
    name = f"{report.edge}-{report.inputs}"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{name}.txt").write_text(f"{what}\n\ninput: {case!r}"[:2_000_000])
    report.failures.append(f"{name}: {what.strip().splitlines()[-1][:300]}")


def run_edge(name: str, edge: Edge, *, inputs: int, seconds: float, out: Path | None) -> EdgeReport:
    """Feed one edge until `inputs` inputs or `seconds` have passed."""
    generate, check = edge
    report = EdgeReport(name)
    logging.disable(logging.CRITICAL)  # refusals log; a million of them would be the run
    started = time.monotonic()
    base: float | None = None
    try:
        while report.inputs < inputs and time.monotonic() - started < seconds:
            if base is None and report.inputs >= WARMUP_SHARE * inputs:
                base = rss_mb()
            case = generate()
            report.inputs += 1
            t0 = time.perf_counter()
            try:
                outcome = check(case)
            except ViolationError as exc:
                report.violations += 1
                save_failure(out, report, case, f"violation: {exc}")
                continue
            except Exception:
                report.crashes += 1
                save_failure(out, report, case, traceback.format_exc())
                continue
            finally:
                elapsed = time.perf_counter() - t0
                report.slowest_s = max(report.slowest_s, elapsed)
                if elapsed > HANG_SECONDS:
                    report.hangs += 1
                    save_failure(out, report, case, f"hang: {elapsed:.1f} s")
            report.accepted += outcome.accepted
            report.refused += outcome.refused
    finally:
        logging.disable(logging.NOTSET)
    report.seconds = time.monotonic() - started
    report.rss_growth_mb = max(0.0, rss_mb() - base) if base is not None else 0.0
    return report


def fuzz(
    edges: list[str],
    *,
    inputs: int,
    seconds: float,
    seed: int,
    out: Path | None,
    settings: Settings | None = None,
    progress: Callable[[EdgeReport], None] | None = None,
) -> list[EdgeReport]:
    """Run each edge in turn; the service edges need settings (their own database is made and dropped)."""
    reports = []
    for name in edges:
        if name in PURE_EDGES:
            report = run_edge(name, PURE_EDGES[name](seed), inputs=inputs, seconds=seconds, out=out)
        else:
            from simulators.fuzz_services import run_service_edge  # noqa: PLC0415 - needs the services

            if settings is None:
                raise ValueError(f"the {name} edge needs settings")
            report = run_service_edge(name, settings, inputs=inputs, seconds=seconds, seed=seed, out=out)
        reports.append(report)
        if progress is not None:
            progress(report)
    return reports


def _line(r: EdgeReport) -> str:
    return (
        f"{r.edge:<9} {r.inputs:>10,} inputs  {r.accepted:>9,} accepted  {r.refused:>9,} refused  "
        f"crashes {r.crashes}  violations {r.violations}  hangs {r.hangs}  lost {r.lost}  "
        f"slowest {r.slowest_s * 1000:.0f} ms  memory +{r.rss_growth_mb:.1f} MB  ({r.seconds:.0f} s)"
    )


def run(
    settings: Settings, *, edges: list[str], inputs: int, seconds: float, seed: int, out: Path, json_path: Path | None
) -> int:
    """The `parkwatch fuzz` command: prints one line per edge; exit 1 if any edge is not clean."""
    print(f"fuzzing {', '.join(edges)}: up to {inputs:,} inputs or {seconds:g} s per edge, seed {seed}", flush=True)
    reports = fuzz(edges, inputs=inputs, seconds=seconds, seed=seed, out=out, settings=settings,
                   progress=lambda r: print(_line(r), flush=True))  # fmt: skip
    for r in reports:
        for failure in r.failures:
            print(f"  {failure}")
    if any(r.failures for r in reports):
        print(f"failing inputs saved in {out}")
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(r) for r in reports], indent=2))
    return 0 if all(r.clean for r in reports) else 1
