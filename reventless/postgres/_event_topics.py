"""Event topics on PostgreSQL: in process, as on the embedded provider, except that the events a
reaction's handler appends are published once the reaction's transaction commits.

Why in process. What a subscriber across processes needs from a topic on this database (every
event of an aggregate, from the log, durably, in order per aggregate id, one handler at a time
however many processes run) is what a reaction is: a checkpoint, a lease, retries and dead
letters over ``read_all``. A second, lighter kind of durable subscriber would repeat it with
weaker promises. So a topic here calls the subscribers of this process at the publish, as
``EventTopic`` does, and a plugin that must see every event appended by any process declares a
reaction.

Why a topic of its own. Inside a reaction's handler an append joins the reaction's transaction
(``_reaction_tx``), which may still roll back (the handler fails later, the lease was lost): its
messages wait for the commit, and a rollback drops them, so a subscriber never sees an event that
is not in the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reventless.aggregate_adapter import AppendResult
from reventless.event_topic import EventTopic
from reventless.postgres._reaction_tx import current_for

__all__ = ("PostgresEventTopic",)


class PostgresEventTopic(EventTopic):
    """An in-process event topic of the PostgreSQL provider (see the module's docstring)."""

    def __init__(self, name: str, pool: Any, schema: str) -> None:
        super().__init__(name)
        self._pool = pool
        self._schema = schema

    async def publish_events(
        self,
        aggregate: str,
        aggregate_id: str,
        events: Sequence[Any],
        result: AppendResult,
        message_id: str | None,
    ) -> None:
        tx = current_for(self._pool, self._schema)
        if tx is None or tx.conn is None:
            await super().publish_events(aggregate, aggregate_id, events, result, message_id)
            return
        publish = super().publish_events
        kept = list(events)

        async def after_commit() -> None:
            await publish(aggregate, aggregate_id, kept, result, message_id)

        tx.after_commit.append(after_commit)
