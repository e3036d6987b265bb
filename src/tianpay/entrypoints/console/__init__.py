"""The operator console (``/console``): the platform's own staff, with roles enforced on the server."""

from .routes import router

__all__ = ["router"]
