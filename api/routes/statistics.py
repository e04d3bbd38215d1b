"""Placeholder being filled in this session (see docs/kpis.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["statistics"])
