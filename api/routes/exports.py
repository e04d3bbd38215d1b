"""Streaming exports of readings, verdicts and alerts (CSV, XLSX) within the caller's scope."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["exports"])
