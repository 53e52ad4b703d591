"""Which engines run on a PostgreSQL store, and what each process attached: every engine says
it lives every few seconds (by the database's clock) and takes its row away when it stops; an
engine not heard of for ``ALIVE_S`` counts as gone (a process killed leaves its row behind
until then). ``store_status`` reads it for ``reventless schedulers`` and ``schedules``."""

from __future__ import annotations

import contextlib
import os
import socket

import anyio
import asyncpg

from reventless._attachments import describe_target
from reventless._fire_rows import from_us
from reventless._payload_types import describe_payload
from reventless.errors import ReventlessError
from reventless.local import Attachment, SchedulerInfo, StoreStatus
from reventless.postgres._schema import quote_schema
from reventless.postgres._tx import DB_NOW_US, transaction
from reventless.scheduler_adapter import EngineStatus, PublisherOverview
from reventless.target import Target

__all__ = ("ALIVE_S", "EngineRecords")

HEARTBEAT_S = 5.0
ALIVE_S = 15.0  # an engine not heard of for this long is gone
_FORGET_US = 86_400_000_000  # rows of engines gone a day ago, and their attachments, go


def this_process() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


class EngineRecords:
    """The engines and attachments rows of one schema, for one provider (``owner``)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, where: str, owner: str) -> None:
        self._pool = pool
        self._where = where
        self.owner = owner
        self._s = quote_schema(schema)

    async def attached(self, scheduler: str, target: Target) -> None:
        async with transaction(self._pool, self._where) as conn:
            await conn.execute(
                f"INSERT INTO {self._s}.attachments (owner, scheduler, target, payload_types,"
                f" process, attached_at) VALUES ($1, $2, $3, $4, $5, {DB_NOW_US})"
                " ON CONFLICT (owner, scheduler) DO UPDATE SET target = excluded.target,"
                " payload_types = excluded.payload_types",
                self.owner,
                scheduler,
                describe_target(target),
                describe_payload(target),
                this_process(),
            )

    async def beat(self) -> None:
        """Say this engine lives, now; a failure is tried again at the next beat (the engine
        does not depend on it)."""
        with contextlib.suppress(ReventlessError):
            await self._beat()

    async def keep_alive(self) -> None:
        """Say this engine lives, every HEARTBEAT_S, until cancelled; then take its row away."""
        try:
            while True:
                await anyio.sleep(HEARTBEAT_S)
                await self.beat()
        finally:
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(2),
                contextlib.suppress(ReventlessError),
            ):
                async with transaction(self._pool, self._where) as conn:
                    await conn.execute(f"DELETE FROM {self._s}.engines WHERE id = $1", self.owner)

    async def _beat(self) -> None:
        s = self._s
        async with transaction(self._pool, self._where) as conn:
            await conn.execute(
                f"INSERT INTO {s}.engines (id, process, started_at, last_seen)"
                f" VALUES ($1, $2, {DB_NOW_US}, {DB_NOW_US})"
                f" ON CONFLICT (id) DO UPDATE SET last_seen = {DB_NOW_US}",
                self.owner,
                this_process(),
            )
            await conn.execute(
                f"DELETE FROM {s}.engines WHERE last_seen < {DB_NOW_US} - {_FORGET_US}"
            )
            await conn.execute(
                f"DELETE FROM {s}.attachments a WHERE attached_at < {DB_NOW_US} - {_FORGET_US}"
                f" AND NOT EXISTS (SELECT 1 FROM {s}.engines e WHERE e.id = a.owner)"
            )

    async def overview(self) -> PublisherOverview:
        """The port's ``overview``: the schedulers, and the running engines as one holder."""
        status = await self.store_status()
        return PublisherOverview(
            schedulers=[info.name for info in status.schedulers],
            engine=EngineStatus(
                holder=status.engine, last_seen=status.last_seen, lease_until=status.lease_until
            ),
        )

    async def store_status(self) -> StoreStatus:
        """Every scheduler of the store (from its schedules, history, dead letters and
        attachments), the targets attached to each, and whether a running engine serves it.
        ``engine`` names the running engines' processes; ``last_seen`` is the latest word of
        one, ``lease_until`` when it counts as gone unless it is heard of again."""
        s = self._s
        async with transaction(self._pool, self._where) as conn:
            now_us = await conn.fetchval(f"SELECT {DB_NOW_US}")
            counts = await conn.fetch(
                f"SELECT scheduler, count(*), count(*) FILTER (WHERE paused)"
                f" FROM {s}.schedules GROUP BY scheduler"
            )
            recorded = await conn.fetch(
                f"SELECT DISTINCT scheduler FROM {s}.history"
                f" UNION SELECT DISTINCT scheduler FROM {s}.dead_letters"
            )
            engines = await conn.fetch(
                f"SELECT id, process, last_seen FROM {s}.engines WHERE last_seen >= $1"
                " ORDER BY process",
                now_us - int(ALIVE_S * 1_000_000),
            )
            rows = await conn.fetch(
                f"SELECT owner, scheduler, target, payload_types, process, attached_at"
                f" FROM {s}.attachments ORDER BY attached_at"
            )
        alive = {row[0] for row in engines}
        attachments: dict[str, list[Attachment]] = {}
        for owner, scheduler, target, payload_types, process, attached_us in rows:
            attachments.setdefault(scheduler, []).append(
                Attachment(
                    scheduler=scheduler,
                    target=target,
                    process=process,
                    owner=owner,
                    attached_at=from_us(attached_us),
                    engine_running=owner in alive,
                    payload_types=payload_types,
                )
            )
        totals = {name: (int(count), int(paused)) for name, count, paused in counts}
        names = sorted({*totals, *(row[0] for row in recorded), *attachments})
        infos = [
            SchedulerInfo(
                name=name,
                schedules=totals.get(name, (0, 0))[0],
                paused=totals.get(name, (0, 0))[1],
                attachments=attachments.get(name, []),
                served=any(a.engine_running for a in attachments.get(name, [])),
            )
            for name in names
        ]
        if not engines:
            return StoreStatus(engine=None, lease_until=None, schedulers=infos)
        last = max(row[2] for row in engines)
        return StoreStatus(
            engine=", ".join(row[1] for row in engines),
            lease_until=from_us(last + int(ALIVE_S * 1_000_000)),
            schedulers=infos,
            last_seen=from_us(last),
        )
