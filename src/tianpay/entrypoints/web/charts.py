"""Charts as inline SVG rendered on the server: no script, so a strict CSP holds and tests can read them.

Every bar carries ``data-value`` (the exact integer it stands for) and a ``<title>`` tooltip, so a
browser test compares the drawn numbers with the API's and a reader sees the figure on hover. Colours
are presentation attributes, not ``style``: the CSP forbids inline styles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#0b5cab", "#2e9c6a", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d")


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int


def column_chart(
    bars: Sequence[Bar], *, name: str, format_value: Callable[[int], str], width: int = 720, height: int = 220
) -> Markup:
    """Vertical bars over time (e.g. 30 days of volume); every fifth label is written under the axis."""
    top, bottom, left = 12, 28, 8
    plot_h = height - top - bottom
    peak = max((bar.value for bar in bars), default=0) or 1
    step = (width - left * 2) / max(len(bars), 1)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" data-chart="{escape(name)}" '
        f'aria-label="{escape(name)}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - left}" y2="{top + plot_h}" stroke="#d1d5db"/>',
    ]
    for index, bar in enumerate(bars):
        bar_h = round(plot_h * bar.value / peak, 1)
        x = round(left + index * step + step * 0.15, 1)
        y = round(top + plot_h - bar_h, 1)
        tip = f"{bar.label}: {format_value(bar.value)}"
        parts.append(
            f'<rect class="bar" x="{x}" y="{y}" width="{round(step * 0.7, 1)}" height="{bar_h}" fill="{PALETTE[0]}" '
            f'data-label="{escape(bar.label)}" data-value="{bar.value}"><title>{escape(tip)}</title></rect>'
        )
        if index % 5 == 0 or index == len(bars) - 1:
            parts.append(
                f'<text x="{round(x + step * 0.35, 1)}" y="{height - 8}" font-size="11" text-anchor="middle" '
                f'fill="#6b7280">{escape(bar.label[-5:])}</text>'
            )
    parts.append("</svg>")
    # Every piece of text above went through escape(); the rest is markup this module wrote.
    return Markup("".join(parts))  # noqa: S704


def bar_list(bars: Sequence[Bar], *, name: str, format_value: Callable[[int], str], width: int = 340) -> Markup:
    """Horizontal bars, one labelled row each (e.g. volume by bank), largest first."""
    row_h, label_w, value_w = 28, 96, 104
    ordered = sorted(bars, key=lambda bar: (-bar.value, bar.label))
    peak = max((bar.value for bar in ordered), default=0) or 1
    height = max(row_h * len(ordered), row_h)
    plot_w = width - label_w - value_w
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" data-chart="{escape(name)}" '
        f'aria-label="{escape(name)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    if not ordered:
        parts.append('<text x="0" y="18" font-size="12" fill="#9ca3af">—</text>')
    for index, bar in enumerate(ordered):
        y = index * row_h
        bar_w = round(plot_w * bar.value / peak, 1)
        shown = format_value(bar.value)
        parts.append(
            f'<text x="0" y="{y + 18}" font-size="12" fill="#1f2a37">{escape(bar.label)}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 6}" width="{bar_w}" height="16" rx="3" '
            f'fill="{PALETTE[index % len(PALETTE)]}" data-label="{escape(bar.label)}" data-value="{bar.value}">'
            f"<title>{escape(bar.label)}: {escape(shown)}</title></rect>"
            f'<text x="{width}" y="{y + 18}" font-size="12" text-anchor="end" fill="#1f2a37">{escape(shown)}</text>'
        )
    parts.append("</svg>")
    # Every piece of text above went through escape(); the rest is markup this module wrote.
    return Markup("".join(parts))  # noqa: S704
