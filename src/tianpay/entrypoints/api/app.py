"""Builds the ASGI application served by ``tianpay serve`` (placeholder until the API lands)."""

from __future__ import annotations

from fastapi import FastAPI

from tianpay.bootstrap import Container

from .events import router as events_router
from .payments import router as payments_router


def create_app(container: Container) -> FastAPI:
    app = FastAPI(title="Tianpay merchant API", version="1")
    app.state.container = container
    app.include_router(payments_router)
    app.include_router(events_router)
    return app
