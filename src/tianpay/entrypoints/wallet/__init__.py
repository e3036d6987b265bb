"""The wallet pages (``/wallet``): sign-up, sign-in, real name, balance, history, top-up, paying."""

from .routes import router

__all__ = ["router"]
