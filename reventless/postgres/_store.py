"""Opening the PostgreSQL store: the schema made or upgraded (``upgrade``), or, for a provider
opened read-only, only checked (``check_readable``): see ``_schema``."""

from __future__ import annotations

from typing import Any

import asyncpg

from reventless.errors import CorruptDataError, UsageError, ValidationError
from reventless.postgres._event_log import translating
from reventless.postgres._schema import (
    APPLICATION,
    SCHEMA_VERSION,
    TABLES,
    ddl,
    quote_schema,
    upgrade_lock_key,
)

__all__ = ("check_readable", "upgrade")

_TABLES_OF = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
)


async def upgrade(pool: asyncpg.Pool, schema: str, where: str) -> None:
    """Bring ``schema`` to the current version in one transaction, under an advisory lock (so
    that processes opening a new database at once make it once): a new or empty schema gets
    every table. Another application's tables are refused (ValidationError), a newer release's
    schema or a damaged one too (CorruptDataError); nothing is written to them."""
    quote_schema(schema)
    async with translating(where), pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", upgrade_lock_key(schema)
        )
        tables = {row[0] for row in await conn.fetch(_TABLES_OF, schema)}
        if not tables:
            for statement in ddl(schema):
                await conn.execute(statement)
            return
        _check_complete(await _version(conn, schema, where, tables), tables, where)


async def check_readable(pool: asyncpg.Pool, schema: str, where: str) -> None:
    """Check, writing nothing, that ``schema`` holds a store this release reads as it is: none
    there yet is a ValidationError saying how one is made; an older version, a UsageError
    saying it needs the upgrade that opening without ``read_only`` makes; another
    application's tables, a newer release's schema or a damaged one as ``upgrade`` says."""
    async with translating(where), pool.acquire() as conn:
        tables = {row[0] for row in await conn.fetch(_TABLES_OF, schema)}
        if not tables:
            raise ValidationError(
                "schema",
                schema,
                "a schema that holds a reventless store when read_only=True",
                message=f"PostgreSQL store {where}: there is no store there yet (the schema "
                "has no tables); it is made by `reventless run`, by an application (the "
                "provider opened without read_only), or by `reventless schedules create ... "
                "--new-scheduler`",
            )
        version = await _version(conn, schema, where, tables)
        if 1 <= version < SCHEMA_VERSION:
            raise UsageError(
                f"PostgreSQL store {where}: schema version {version} needs an upgrade to "
                f"version {SCHEMA_VERSION}, which a read-only open does not make; open it "
                "without read_only once (`reventless run`, or the application) to upgrade it"
            )
        _check_complete(version, tables, where)


async def _version(conn: Any, schema: str, where: str, tables: set[str]) -> int:
    """The schema version of a schema that holds tables; refused when they are not a
    reventless store's, or when it is newer than this release."""
    quoted = quote_schema(schema)
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
    return version


def _check_complete(version: int, tables: set[str], where: str) -> None:
    """A store of the current version that lacks a table, or of no version, is damaged."""
    missing = TABLES - tables
    if version < 1 or missing:
        raise CorruptDataError(
            f"PostgreSQL store {where}: damaged (schema version {version}, missing tables: "
            f"{', '.join(sorted(missing)) or 'none'})"
        )
