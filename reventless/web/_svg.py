"""The week-ahead timeline as SVG: one band per scheduler, one bar per hour, its height the
number of fires in that hour (scaled per band), each bar titled with its count."""

from __future__ import annotations

from datetime import timedelta
from html import escape

from markupsafe import Markup

from reventless.web._model import Timeline

__all__ = ("timeline_svg",)

_LABEL = 160
_HOUR = 5  # pixels per hour: 168 hours, 840 pixels
_BAND = 48
_AXIS = 28
_COLOURS = ("#2f6db5", "#b5552f", "#2f9b5b", "#8a4fb5", "#b59a2f", "#2fa6b5")


def timeline_svg(timeline: Timeline) -> Markup:
    """Every text in it is escaped here (scheduler names are checked names, but still)."""
    names = sorted(timeline.counts)
    width = _LABEL + 168 * _HOUR + 10
    height = _AXIS + max(1, len(names)) * _BAND + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-labelledby="timeline-title">',
        '<title id="timeline-title">Fires per hour per scheduler, the week ahead (UTC)</title>',
    ]
    for day in range(8):
        x = _LABEL + day * 24 * _HOUR
        label = (timeline.start + timedelta(days=day)).strftime("%a %d %b")
        parts.append(f'<line x1="{x}" y1="{_AXIS - 6}" x2="{x}" y2="{height}" stroke="#bbb"/>')
        if day < 7:
            parts.append(
                f'<text x="{x + 3}" y="{_AXIS - 10}" font-size="11" fill="#333">'
                f"{escape(label)}</text>"
            )
    if not names:
        parts.append(
            f'<text x="{_LABEL}" y="{_AXIS + 24}" font-size="13" fill="#555">'
            "no active schedules</text>"
        )
    for row, name in enumerate(names):
        hours = timeline.counts[name]
        top = _AXIS + row * _BAND
        peak = max(hours) or 1
        colour = _COLOURS[row % len(_COLOURS)]
        parts.append(
            f'<text x="4" y="{top + _BAND // 2 + 4}" font-size="12" fill="#111">'
            f"{escape(name[:24])} ({sum(hours)})</text>"
        )
        parts.append(
            f'<line x1="{_LABEL}" y1="{top + _BAND - 4}" x2="{_LABEL + 168 * _HOUR}" '
            f'y2="{top + _BAND - 4}" stroke="#ddd"/>'
        )
        for hour, count in enumerate(hours):
            if not count:
                continue
            bar = max(2, round((_BAND - 10) * count / peak))
            at = (timeline.start + timedelta(hours=hour)).strftime("%a %H:00")
            parts.append(
                f'<rect x="{_LABEL + hour * _HOUR}" y="{top + _BAND - 4 - bar}" '
                f'width="{_HOUR - 1}" height="{bar}" fill="{colour}">'
                f"<title>{escape(name)}: {count} fires {escape(at)} UTC</title></rect>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))
