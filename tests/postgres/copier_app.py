"""A plugin for the PostgreSQL reaction tests: the ``copier`` reaction follows ``notes`` and copies
every note to the ``copies`` aggregate with a command sent **without** a message id, so nothing
but the reaction's transaction keeps a copy from being made twice: a test counts the copies of
each note.

Run as a script, it is one reaction runner process (``DSN SCHEMA LEASE_TTL``): it runs the plugin
until killed, printing ``ready`` once started, and appends a line ``<pid> <note position>
<time>`` to the file named by ``REVENTLESS_TEST_HANDLED`` for every call of the handler (at least
once, outside the database). For the note id in ``REVENTLESS_TEST_LINGER``, the handler lingers
0.6 s after its append (inside its transaction), and notes ``<pid> appended`` then.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import anyio
import msgspec

from reventless.aggregate import AggregateSpec, CommandContext
from reventless.plugin import Plugin
from reventless.reaction import ReactionContext, ReactionEvent
from reventless.testing.ports import NOTES, Noted


class Copy(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    source: str  # "notes/<id>/<version>"


class Copied(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    source: str


def _decide(state: int, command: Any, context: CommandContext) -> list[Any]:
    return [Copied(source=command.source)]


COPIES: AggregateSpec[int] = AggregateSpec(
    "copies",
    commands=[Copy],
    events=[Copied],
    initial=0,
    decide=_decide,
    evolve=lambda state, event: state + 1,
)


def source_of(event: ReactionEvent) -> str:
    return f"{event.aggregate}/{event.aggregate_id}/{event.version}"


class Copier:
    """The handler: copies the note (to the copy stream named after the note's id, and to
    ``also_to`` when given: two appends in one handling), then fails the attempts listed in
    ``fail_attempts`` for ids in ``failing`` (after its appends, which the rollback must undo)."""

    def __init__(
        self,
        failing: tuple[str, ...] = (),
        fail_attempts: tuple[int, ...] = (),
        also_to: str | None = None,
    ):
        self.failing = failing
        self.fail_attempts = fail_attempts
        self.also_to = also_to
        self.calls: list[tuple[int, int]] = []  # (position, attempt)
        self.record = os.environ.get("REVENTLESS_TEST_HANDLED")
        self.linger = os.environ.get("REVENTLESS_TEST_LINGER")

    async def __call__(self, event: ReactionEvent, context: ReactionContext) -> None:
        assert isinstance(event.event, Noted)
        self.calls.append((event.position, context.attempt))
        if self.record:
            line = f"{os.getpid()} {event.position} {time.time()}\n"
            async with await anyio.open_file(self.record, "a") as file:
                await file.write(line)
        copies = context.aggregate(COPIES)
        await copies.handle(f"of-{event.aggregate_id}", Copy(source=source_of(event)))
        if self.also_to is not None:
            await copies.handle(self.also_to, Copy(source=source_of(event)))
        if self.record and event.aggregate_id == self.linger:
            async with await anyio.open_file(self.record, "a") as file:
                await file.write(f"{os.getpid()} appended\n")
            await anyio.sleep(0.6)  # within the reaction's timeout (1 s)
        if event.aggregate_id in self.failing and (
            not self.fail_attempts or context.attempt in self.fail_attempts
        ):
            raise RuntimeError(f"cannot copy {event.aggregate_id} (attempt {context.attempt})")


def plugin(copier: Copier, **options: Any) -> Plugin:
    app = Plugin("copier-app")
    app.aggregate(NOTES)
    app.aggregate(COPIES)
    app.reaction("copier", follows=[NOTES], handler=copier, **options)
    return app


async def _main(dsn: str, schema: str, lease_ttl: float) -> None:
    import reventless.postgres

    async with (
        reventless.postgres.provider(dsn, schema=schema, lease_ttl=lease_ttl) as provider,
        plugin(Copier(), timeout=1.0).start(provider),
        anyio.create_task_group() as group,
    ):
        await group.start(provider.run)
        print("ready", flush=True)


if __name__ == "__main__":
    import asyncio

    asyncio.run(_main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
