"""Which store ``--db`` names, and opening it: a file (the embedded provider) or a
``postgresql://`` URL (the PostgreSQL provider). ``--db`` may be left out when the environment
variable ``REVENTLESS_DB`` holds it, so that a password need not sit in the shell's history;
a URL is never printed with its password (``shown_db``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from reventless.errors import UsageError, ValidationError

__all__ = ("DB_ENV", "db_default", "is_postgres", "open_store", "shown_db")

DB_ENV = "REVENTLESS_DB"
_SCHEMES = ("postgresql://", "postgres://")
# The options of the embedded engine that the PostgreSQL engine has no use for.
_LOCAL_ONLY = ("workers", "lease_ttl", "read_only")


def db_default() -> dict[str, Any]:
    """``add_argument`` keywords of ``--db``: the environment's value as its default."""
    value = os.environ.get(DB_ENV) or None
    return {
        "default": value,
        "required": value is None,
        "help": f"the store: a file, or a postgresql:// URL (default: ${DB_ENV})",
    }


def is_postgres(db: str) -> bool:
    return db.startswith(_SCHEMES)


def shown_db(db: str) -> str:
    """``db`` as it may be printed: a URL without its password."""
    if not is_postgres(db):
        return db
    parts = urlsplit(db)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    query = f"?{parts.query}" if parts.query and "password" not in parts.query else ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}{query}"


def check_url(db: str) -> str:
    """A ``postgresql://`` URL that parses (its port a number); refused naming ``--db``
    without the password."""
    try:
        urlsplit(db).port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValidationError(
            "--db",
            shown_db(db.split("@")[-1]),
            "a postgresql://USER@HOST:PORT/DATABASE URL",
            message=f"--db {shown_db(db.split('@')[-1])!r}: not a postgresql:// URL that parses",
        ) from None
    return db


@asynccontextmanager
async def open_store(db: str, **options: Any) -> AsyncIterator[Any]:
    """The provider of ``db``, with the embedded provider's keyword arguments (those the
    PostgreSQL provider has no use for are left out there)."""
    if not is_postgres(db):
        import reventless.local

        async with reventless.local.provider(db, **options) as local:
            yield local
        return
    try:
        import reventless.postgres
    except ImportError as exc:  # pragma: no cover - the extra not installed
        raise UsageError(
            "a postgresql:// store needs the PostgreSQL extra: pip install 'reventless[postgres]'"
        ) from exc
    kept = {key: value for key, value in options.items() if key not in _LOCAL_ONLY}
    async with reventless.postgres.provider(db, **kept) as provider:
        yield provider
