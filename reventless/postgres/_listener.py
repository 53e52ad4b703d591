"""Prompt wake-ups: LISTEN on the schema's channel, poke the engine on every NOTIFY.

The listening connection is one of the pool's, held while the engine runs. A lost one is
given back and the channel listened to again after a short pause, with a poke (a change may
have been missed meanwhile); the engine's polling covers the gap, so it never stalls.
Behind a transaction-mode pooler LISTEN is not kept: the engine then finds changes by polling.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import asyncpg

from reventless.postgres._tx import wake_channel

__all__ = ("listen_for_changes",)

_log = logging.getLogger("reventless.postgres.engine")
_CHECK_EVERY_S = 5.0  # how often the listening connection is checked for life
_MAX_PAUSE_S = 30.0


async def listen_for_changes(
    pool: asyncpg.Pool, schema: str, poke: Callable[[], None], poll_interval: float
) -> None:
    channel = wake_channel(schema)
    pause = 0.0

    def on_notify(*_: Any) -> None:
        poke()

    while True:
        try:
            async with pool.acquire() as conn:
                await conn.add_listener(channel, on_notify)
                try:
                    pause = 0.0
                    poke()  # changes made while no one listened
                    while True:
                        await anyio.sleep(_CHECK_EVERY_S)
                        await conn.execute("SELECT 1")
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                        await conn.remove_listener(channel, on_notify)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            pause = min(max(pause * 2, poll_interval), _MAX_PAUSE_S)
            _log.warning(
                "listening for changes failed (%s); the engine polls, and listens again in %.1f s",
                exc,
                pause,
            )
            await anyio.sleep(pause)
