"""Merchant API routes for payments (placeholder)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
