"""Opening the PostgreSQL store: the pool, and the schema made or checked (``_schema``)."""

from __future__ import annotations

import asyncpg

from reventless.errors import CorruptDataError, ValidationError
from reventless.postgres._event_log import translating
from reventless.postgres._schema import (
    APPLICATION,
    SCHEMA_VERSION,
    TABLES,
    ddl,
    quote_schema,
    upgrade_lock_key,
)

__all__ = ("upgrade",)

_TABLES_OF = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
)


async def upgrade(pool: asyncpg.Pool, schema: str, where: str) -> None:
    """Bring ``schema`` to the current version in one transaction, under an advisory lock (so
    that processes opening a new database at once make it once): a new or empty schema gets
    every table. Another application's tables are refused (ValidationError), a newer release's
    schema or a damaged one too (CorruptDataError); nothing is written to them."""
    quoted = quote_schema(schema)
    async with translating(where), pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", upgrade_lock_key(schema)
        )
        tables = {row[0] for row in await conn.fetch(_TABLES_OF, schema)}
        if not tables:
            for statement in ddl(schema):
                await conn.execute(statement)
            return
        meta = (
            {row[0]: row[1] for row in await conn.fetch(f"SELECT key, value FROM {quoted}.meta")}
            if "meta" in tables
            else {}
        )
        if meta.get("application") != APPLICATION:
            raise ValidationError(
                "schema",
                schema,
                "a schema that holds a reventless store or nothing (this one holds other "
                f"tables: {', '.join(sorted(tables)[:5])})",
            )
        version = int(meta.get("schema_version", "0"))
        if version > SCHEMA_VERSION:
            raise CorruptDataError(
                f"PostgreSQL store {where}: schema version {version} was written by a newer "
                f"release of reventless; this one reads version {SCHEMA_VERSION}"
            )
        missing = TABLES - tables
        if version < 1 or missing:
            raise CorruptDataError(
                f"PostgreSQL store {where}: damaged (schema version {version}, missing tables: "
                f"{', '.join(sorted(missing)) or 'none'})"
            )
