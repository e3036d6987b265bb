"""Display of amounts held in integer fen; the simulators never use floats for money."""

from __future__ import annotations


def format_yuan(amount_minor: int) -> str:
    """`123456` → `1,234.56` (for pages shown to people; never parsed back)."""
    sign = "-" if amount_minor < 0 else ""
    yuan, fen = divmod(abs(amount_minor), 100)
    return f"{sign}{yuan:,}.{fen:02d}"


def yuan_string(amount_minor: int) -> str:
    """`123456` → `1234.56`, the form JSON and CSV dialects put on the wire."""
    sign = "-" if amount_minor < 0 else ""
    yuan, fen = divmod(abs(amount_minor), 100)
    return f"{sign}{yuan}.{fen:02d}"
