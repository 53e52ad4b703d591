"""The translation of PostgreSQL's errors into the ReventlessError tree: one table of SQLSTATE
codes (or their two-character classes), walked by a test; anything not listed, and every failure
to reach the server, is a BackendUnavailableError."""

from __future__ import annotations

from reventless.errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    PermissionDeniedError,
    ReventlessError,
    UsageError,
)

__all__ = ("ERROR_TABLE", "translate_sqlstate")

# SQLSTATE (five characters) or class (two) -> the error to raise and what it means. A code is
# looked up before its class.
ERROR_TABLE: tuple[tuple[str, type[ReventlessError], str], ...] = (
    ("08", BackendUnavailableError, "the connection to the server failed"),
    ("53", BackendUnavailableError, "the server is out of resources (disk, memory, connections)"),
    ("57P01", BackendUnavailableError, "the server is shutting down"),
    ("57P02", BackendUnavailableError, "the server crashed"),
    ("57P03", BackendUnavailableError, "the server is starting up or shutting down"),
    ("57014", BackendUnavailableError, "the statement was cancelled or timed out"),
    ("55P03", BackendUnavailableError, "a lock could not be taken in time"),
    ("25006", BackendUnavailableError, "the session is read-only (a standby, or read_only=True)"),
    ("40001", ConflictError, "a concurrent transaction conflicted (serialization failure)"),
    ("40P01", ConflictError, "a concurrent transaction deadlocked with this one"),
    ("23505", ConflictError, "a concurrent writer wrote the same key first"),
    ("42501", PermissionDeniedError, "the database role lacks a privilege"),
    ("28", PermissionDeniedError, "the server refused the credentials"),
    ("3D000", UsageError, "the database does not exist"),
    ("3F000", UsageError, "the schema does not exist"),
    ("XX001", CorruptDataError, "the server found damaged data"),
    ("XX002", CorruptDataError, "the server found a damaged index"),
)


def translate_sqlstate(sqlstate: str | None, message: str, where: str) -> ReventlessError:
    """The error for a server error with this SQLSTATE (use with ``raise ... from exc``);
    ``where`` names the store (schema and database) for the message."""
    code = sqlstate or ""
    for key in (code, code[:2]):
        for prefix, error_type, meaning in ERROR_TABLE:
            if key and prefix == key:
                return error_type(f"PostgreSQL store {where}: {meaning} ({code}: {message})")
    return BackendUnavailableError(f"PostgreSQL store {where}: {code or 'error'}: {message}")
