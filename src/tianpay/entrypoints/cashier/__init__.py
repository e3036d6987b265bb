"""The hosted cashier pages (``/cashier``): bank choice, redirect to the bank, and the result."""

from .routes import router

__all__ = ["router"]
