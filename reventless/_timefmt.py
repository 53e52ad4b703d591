"""Instants as text, the same on every platform and in every year."""

from __future__ import annotations

from datetime import date

__all__ = ("strftime",)


def strftime(value: date, pattern: str) -> str:
    """``value.strftime(pattern)`` with ``%Y`` always four digits: the C library prints year 1
    as ``1`` (``1-01-01``), which no reader takes for a date."""
    return value.strftime(pattern.replace("%Y", f"{value.year:04d}"))
