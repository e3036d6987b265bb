"""Merchant API routes for events (placeholder)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
