"""Which store ``--db`` names, and opening it: a file (the embedded provider) or a
``postgresql://`` URL (the PostgreSQL provider). ``--db`` may be left out when the environment
variable ``REVENTLESS_DB`` holds it, so that a password need not sit in the shell's history;
a URL is never printed with its password (``shown_db``).

On PostgreSQL, ``--schema NAME`` (or ``$REVENTLESS_SCHEMA``) names the schema of the store
(default ``reventless``, as the provider's); with a store file, ``--schema`` is refused and
the environment variable is not used."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from reventless.errors import UsageError, ValidationError

__all__ = (
    "DB_ENV",
    "SCHEMA_ENV",
    "add_schema_option",
    "db_default",
    "is_postgres",
    "open_store",
    "schema_of",
    "shown_db",
)

DB_ENV = "REVENTLESS_DB"
SCHEMA_ENV = "REVENTLESS_SCHEMA"
_SCHEMES = ("postgresql://", "postgres://")
_EXTRA = "a postgresql:// store needs the PostgreSQL extra: pip install 'reventless[postgres]'"
# The options of the embedded engine that the PostgreSQL engine has no use for.
_LOCAL_ONLY = ("workers", "lease_ttl")


def db_default() -> dict[str, Any]:
    """``add_argument`` keywords of ``--db``: the environment's value as its default."""
    value = os.environ.get(DB_ENV) or None
    return {
        "default": value,
        "required": value is None,
        "help": f"the store: a file, or a postgresql:// URL (default: ${DB_ENV})",
    }


def add_schema_option(parser: argparse.ArgumentParser) -> None:
    """``--schema``, beside ``--db``; checked by ``schema_of``."""
    parser.add_argument(
        "--schema",
        help=f"on PostgreSQL, the store's schema (default: ${SCHEMA_ENV}, else reventless)",
    )


def schema_of(db: str, option: str | None) -> str | None:
    """The schema a ``postgresql://`` store is opened in: ``--schema``, else
    ``$REVENTLESS_SCHEMA``, else None (the provider's default); checked as the provider
    checks it, under the name it was given by. With a store file, ``--schema`` is refused."""
    if not is_postgres(db):
        if option is not None:
            raise ValidationError(
                "--schema",
                option,
                "nothing with a store file (a schema is a PostgreSQL store's)",
                message=f"--schema {option!r} is for a postgresql:// --db; {db!r} is a store "
                "file, which has no schemas: leave --schema out",
            )
        return None
    flag, value = ("--schema", option) if option is not None else (f"${SCHEMA_ENV}", None)
    if value is None:
        value = os.environ.get(SCHEMA_ENV) or None
        if value is None:
            return None
    try:
        from reventless.postgres._schema import quote_schema
    except ImportError as exc:  # pragma: no cover - the extra not installed
        raise UsageError(_EXTRA) from exc
    try:
        quote_schema(value)
    except ValidationError as exc:
        raise ValidationError(flag, value, exc.allowed) from None
    return value


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
async def open_store(db: str, schema: str | None = None, **options: Any) -> AsyncIterator[Any]:
    """The provider of ``db``, with the embedded provider's keyword arguments (those the
    PostgreSQL provider has no use for are left out there); on PostgreSQL in ``schema``
    (``schema_of``; None: the provider's default)."""
    if not is_postgres(db):
        import reventless.local

        async with reventless.local.provider(db, **options) as local:
            yield local
        return
    try:
        import reventless.postgres
    except ImportError as exc:  # pragma: no cover - the extra not installed
        raise UsageError(_EXTRA) from exc
    kept = {key: value for key, value in options.items() if key not in _LOCAL_ONLY}
    if schema is not None:
        kept["schema"] = schema
    async with reventless.postgres.provider(db, **kept) as provider:
        yield provider
