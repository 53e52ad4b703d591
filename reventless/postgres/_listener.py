"""Prompt wake-ups: LISTEN on the schema's channel, poke the engine on every NOTIFY.

The listening connection is one of the pool's, held while the engine runs. A lost one is
given back and the channel listened to again after a short pause, with a poke (a change may
have been missed meanwhile); the engine's polling covers the gap, so it never stalls.
Behind a transaction-mode pooler LISTEN is not kept: the engine then finds changes by polling.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

import anyio
import asyncpg

from reventless.postgres._tx import wake_channel

__all__ = ("listen_for_changes",)

_log = logging.getLogger("reventless.postgres.engine")
_CHECK_EVERY_S = 5.0  # how often the listening connection is checked for life
_FIRST_PAUSE_S = 0.2
_MAX_PAUSE_S = 30.0


async def listen_for_changes(
    pool: asyncpg.Pool, schema: str, poke: Callable[[], None], poll_interval: float
) -> None:
    """Listen until cancelled; ``poke`` on every notification and after every (re)connection.
    ``poll_interval`` is the engine's, which covers the time without a listening connection."""
    channel = wake_channel(schema)
    pause = 0.0

    def on_notify(*_: Any) -> None:
        poke()

    def on_listening() -> None:
        nonlocal pause
        pause = 0.0
        poke()  # changes made while no one listened

    while True:
        try:
            async with pool.acquire() as conn:
                await _listen_on(conn, channel, on_notify, on_listening)
        except (
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            OSError,
            TimeoutError,
        ) as exc:
            pause = min(max(pause * 2, _FIRST_PAUSE_S), _MAX_PAUSE_S)
            _log.warning(
                "listening for changes failed (%s); the engine polls every %g s, and listens "
                "again in %.1f s",
                exc,
                poll_interval,
                pause,
            )
            await anyio.sleep(pause)


async def _listen_on(
    conn: Any, channel: str, on_notify: Callable[..., None], on_listening: Callable[[], None]
) -> None:
    """Listen on ``conn`` until it is lost (raising ConnectionError) or cancelled; the
    connection goes back to the pool listening to nothing."""
    lost = anyio.Event()

    def on_lost(_: Any) -> None:
        lost.set()

    conn.add_termination_listener(on_lost)
    try:
        await conn.add_listener(channel, on_notify)
        on_listening()
        while not lost.is_set():
            with anyio.move_on_after(_CHECK_EVERY_S):
                await lost.wait()
            if not lost.is_set():
                await conn.execute("SELECT 1")  # a half-open connection fails here
        raise ConnectionError("the listening connection was closed")
    finally:
        # A connection the server ended may already be back in the pool: nothing to remove.
        with contextlib.suppress(asyncpg.InterfaceError):
            conn.remove_termination_listener(on_lost)
        with anyio.CancelScope(shield=True), anyio.move_on_after(1), contextlib.suppress(Exception):
            await conn.remove_listener(channel, on_notify)
