"""The merchant portal (``/merchant``): sign-in, dashboard, payments, refunds, keys and webhooks."""

from .routes import router

__all__ = ["router"]
