"""The PostgreSQL store's schema (made once, in the schema the user names, refused when it is
another application's or a newer release's) and the translation of the server's errors."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import anyio
import asyncpg
import pytest

import reventless.postgres
from reventless.aggregate_adapter import NewEvent
from reventless.errors import (
    BackendUnavailableError,
    ConflictError,
    CorruptDataError,
    PermissionDeniedError,
    UsageError,
    ValidationError,
)
from reventless.postgres._errors import ERROR_TABLE, translate_sqlstate
from reventless.postgres._schema import TABLES

pytestmark = pytest.mark.anyio

AT = datetime(2026, 3, 20, 6, 0, 30, tzinfo=UTC)


async def _tables(dsn: str, schema: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
    finally:
        await conn.close()
    return {row[0] for row in rows}


async def test_two_schemas_of_one_database_are_two_stores(postgres_dsn: str) -> None:
    for schema, aggregate_id in (("first", "a"), ("second", "b")):
        async with reventless.postgres.provider(postgres_dsn, schema=schema) as provider:
            await provider.event_log().append(
                "orders",
                aggregate_id,
                expected_version=0,
                events=[NewEvent(type="E", data=b"x")],
                message_id="m",
                recorded_at=AT,
            )
    async with reventless.postgres.provider(postgres_dsn, schema="first") as provider:
        log = provider.event_log()
        assert [e.aggregate_id for e in await log.read_all()] == ["a"]
        assert await log.was_handled("orders", "a", "m")
        assert not await log.was_handled("orders", "b", "m")
    assert await _tables(postgres_dsn, "second") == set(TABLES)


async def test_processes_opening_a_new_database_at_once_make_the_schema_once(
    postgres_dsn: str,
) -> None:
    opened: list[str] = []

    async def open_one() -> None:
        async with reventless.postgres.provider(postgres_dsn, schema="app") as provider:
            opened.append(provider.schema)

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(open_one)
    assert opened == ["app"] * 4


async def test_another_applications_schema_is_refused_and_left_as_it_was(
    postgres_dsn: str,
) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("CREATE SCHEMA shop; CREATE TABLE shop.orders (id int)")
    finally:
        await conn.close()
    with pytest.raises(ValidationError) as caught:
        async with reventless.postgres.provider(postgres_dsn, schema="shop"):
            pass
    assert caught.value.field == "schema" and "orders" in str(caught.value)
    assert await _tables(postgres_dsn, "shop") == {"orders"}


async def test_a_newer_releases_schema_is_refused(postgres_dsn: str) -> None:
    async with reventless.postgres.provider(postgres_dsn, schema="app"):
        pass
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("UPDATE app.meta SET value = '2' WHERE key = 'schema_version'")
    finally:
        await conn.close()
    with pytest.raises(CorruptDataError, match="newer release"):
        async with reventless.postgres.provider(postgres_dsn, schema="app"):
            pass


@pytest.mark.parametrize("schema", ["", "Upper", "1st", "pg_catalog", "a-b", "x" * 64, 7])
async def test_a_bad_schema_name_is_refused_before_connecting(schema: object) -> None:
    with pytest.raises(ValidationError) as caught:
        async with reventless.postgres.provider(
            "postgresql://nobody@127.0.0.1:1/none",
            schema=schema,  # type: ignore[arg-type]
        ):
            pass
    assert caught.value.field == "schema"


async def test_a_server_that_is_not_there_is_backend_unavailable() -> None:
    with socket.socket() as probe:  # a free port: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(BackendUnavailableError, match=f"127.0.0.1:{port}") as caught:
        async with reventless.postgres.provider(f"postgresql://app:secret@127.0.0.1:{port}/app"):
            pass
    assert "secret" not in str(caught.value)


async def test_a_missing_database_and_a_missing_privilege_are_typed(postgres_dsn: str) -> None:
    base = postgres_dsn.rsplit("/", 1)[0]
    with pytest.raises(UsageError, match="3D000"):
        async with reventless.postgres.provider(f"{base}/no_such_database"):
            pass
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("DROP ROLE IF EXISTS guest; CREATE ROLE guest LOGIN")
    finally:
        await conn.close()
    guest = postgres_dsn.replace("postgres@", "guest@", 1)
    with pytest.raises(PermissionDeniedError, match="42501") as caught:
        async with reventless.postgres.provider(guest, schema="app"):
            pass
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(("prefix", "error_type", "meaning"), ERROR_TABLE)
def test_every_sqlstate_of_the_table_becomes_its_error(
    prefix: str, error_type: type[Exception], meaning: str
) -> None:
    code = prefix if len(prefix) == 5 else prefix + "000"
    error = translate_sqlstate(code, "server says no", "schema 'app'")
    assert type(error) is error_type
    assert meaning in str(error) and code in str(error) and "schema 'app'" in str(error)


def test_an_unlisted_sqlstate_is_backend_unavailable_and_a_listed_code_wins_its_class() -> None:
    assert type(translate_sqlstate("22012", "division by zero", "s")) is BackendUnavailableError
    assert type(translate_sqlstate(None, "no code", "s")) is BackendUnavailableError
    assert type(translate_sqlstate("23505", "duplicate key", "s")) is ConflictError
    assert type(translate_sqlstate("23503", "foreign key", "s")) is BackendUnavailableError


async def test_a_pool_of_yours_without_prepared_statements_is_used_and_left_open(
    postgres_dsn: str,
) -> None:
    """What a transaction-mode pooler needs: no named prepared statements kept."""
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=1, statement_cache_size=0)
    try:
        async with reventless.postgres.provider(pool, schema="app") as provider:
            log = provider.event_log()
            done = await log.append(
                "orders",
                "o-1",
                expected_version=0,
                events=[NewEvent(type="E", data=b"x")],
                message_id="m",
                recorded_at=AT,
            )
            assert [e.position for e in await log.read_all()] == list(done.positions)
        with pytest.raises(UsageError, match="closed"):
            provider.event_log()
        assert await pool.fetchval("SELECT count(*) FROM pg_prepared_statements") == 0
        assert await pool.fetchval("SELECT count(*) FROM app.events") == 1  # still open
    finally:
        await pool.close()


async def test_what_is_not_a_url_or_a_pool_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        async with reventless.postgres.provider("mysql://app@db/app"):
            pass
    assert caught.value.field == "dsn"
    with pytest.raises(ValidationError) as caught:
        async with reventless.postgres.provider(42):  # type: ignore[arg-type]
            pass
    assert caught.value.field == "dsn_or_pool"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_provider_says_it_needs_asyncio(postgres_dsn: str) -> None:
    with pytest.raises(UsageError, match="asyncio only"):
        async with reventless.postgres.provider(postgres_dsn):
            pass


async def test_read_only_makes_nothing_reads_a_store_and_writes_nothing(
    postgres_dsn: str,
) -> None:
    with pytest.raises(ValidationError, match="there is no store there yet") as caught:
        async with reventless.postgres.provider(postgres_dsn, schema="app", read_only=True):
            pass
    assert caught.value.field == "schema"
    assert await _tables(postgres_dsn, "app") == set()
    async with reventless.postgres.provider(postgres_dsn, schema="app") as provider:
        await provider.event_log().append(
            "counter",
            "c1",
            expected_version=0,
            events=[NewEvent(type="Ticked", data=b"{}")],
            message_id="m1",
            recorded_at=AT,
        )
    async with reventless.postgres.provider(postgres_dsn, schema="app", read_only=True) as reader:
        log = reader.event_log()
        assert [event.message_id for event in await log.read_all()] == ["m1"]
        with pytest.raises(BackendUnavailableError, match="25006"):
            await log.append(
                "counter",
                "c1",
                expected_version=1,
                events=[NewEvent(type="Ticked", data=b"{}")],
                message_id="m2",
                recorded_at=AT,
            )
        with pytest.raises(UsageError, match="read_only=True"):
            await reader.run()
        with pytest.raises(UsageError, match="read_only=True"):
            await reader.prune()
        assert [event.message_id for event in await log.read_all()] == ["m1"]


async def test_read_only_says_an_older_schema_needs_an_upgrade_and_leaves_it(
    postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store of this release's version read by a (simulated) next release, one version on."""
    import reventless.postgres._store as store

    async with reventless.postgres.provider(postgres_dsn, schema="app"):
        pass
    monkeypatch.setattr(store, "SCHEMA_VERSION", store.SCHEMA_VERSION + 1)
    with pytest.raises(UsageError, match="needs an upgrade to version") as caught:
        async with reventless.postgres.provider(postgres_dsn, schema="app", read_only=True):
            pass
    assert "'app'" in str(caught.value) and "password" not in str(caught.value)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        version = await conn.fetchval("SELECT value FROM app.meta WHERE key = 'schema_version'")
    finally:
        await conn.close()
    assert version == str(store.SCHEMA_VERSION - 1)


async def test_an_operation_whose_connection_is_killed_mid_transaction_reports_the_loss(
    postgres_dsn: str,
) -> None:
    """A schedule's delete waits for a row lock inside its transaction; its backend is then
    ended. The error on its way out is the lost connection's, not the failed close's."""
    from reventless import Minutes, Schedule, Scheduler
    from reventless.testing import RecordingTarget

    async with reventless.postgres.provider(postgres_dsn, schema="app", max_connections=1) as p:
        ops = (await Scheduler.make(p, target=RecordingTarget())).operations
        await ops.create_schedule(Schedule(name="tick", rate=Minutes(5), payload="p"))
        admin = await asyncpg.connect(postgres_dsn)
        caught: list[BaseException] = []

        async def delete() -> None:
            try:
                await ops.delete_schedule("tick")
            except BaseException as exc:
                caught.append(exc)

        try:
            holder = admin.transaction()
            await holder.start()
            await admin.execute("SELECT 1 FROM app.schedules WHERE name = 'tick' FOR UPDATE")
            async with anyio.create_task_group() as group:
                group.start_soon(delete)
                with anyio.fail_after(30):
                    while not await admin.fetchval(  # noqa: ASYNC110 - polls the server
                        "SELECT count(*) FROM pg_locks WHERE NOT granted"
                    ):
                        await anyio.sleep(0.01)
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            await holder.rollback()
        finally:
            await admin.close()
        [error] = caught
        assert isinstance(error, BackendUnavailableError), repr(error)
        assert not isinstance(error.__cause__, asyncpg.InterfaceError), repr(error.__cause__)
        assert "released" not in str(error)
        await ops.delete_schedule("tick")  # a new connection of the pool
