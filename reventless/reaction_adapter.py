"""The Reactions port: what a provider does to run reactions and to operate them.

A provider that runs reactions offers ``reactions()`` (``reventless.provider.ProvidesReactions``)
returning an object with this contract; ``Plugin.start`` registers the reactions a plugin
declares, and operators read and steer them through the rest (``reventless reactions``). The
contract is written here once; adapters do not repeat it. The conformance suite for it is in
``reventless.testing``.

What every adapter keeps:

- **A durable position per reaction**: the handler sees every event of the aggregates the
  reaction follows at least once, one event at a time, in log order (so in order per stream),
  across restarts and the death of the process running it.
- **One runner at a time**: where several processes share the provider, a lease lets one run
  the reaction; a standby takes over when the holder stops or dies (the embedded provider's
  bound: ``lease_ttl + timeout + 1 s``, plus one poll).
- **Retries and dead letters**: a failed event is retried with backoff up to the reaction's
  ``max_attempts``, then dead-lettered with its reason; the reaction stops there
  (``on_failure="stop"``) or skips the event (``"skip"``).
- **A record of every operation**: each ``reset`` and ``resume``, with who, why and the
  positions it moved between, written with the change itself (``operations``).
"""

from __future__ import annotations

from typing import Protocol

from reventless.reaction import (
    Components,
    Reaction,
    ReactionDeadLetter,
    ReactionOperation,
    ReactionStatus,
)

__all__ = ("Reactions",)


class Reactions(Protocol):
    """A provider's reactions: the runner of those plugins declare, and their operations."""

    def register(self, reaction: Reaction, running: Components) -> None:
        """Run ``reaction`` for the started plugin ``running`` (at once if the provider runs,
        else when it starts).
        :raises UsageError: a reaction of that name is registered already (two would share one
            position)."""
        ...

    def unregister(self, name: str) -> None:
        """Stop running the reaction ``name`` here (its position stays); no error if none is."""
        ...

    async def statuses(self) -> list[ReactionStatus]:
        """Every reaction the provider keeps a position for, by name: its position, the log's
        head, how many events of what it follows are pending (its lag), its state and last
        error, and the lease holder running it (None when none holds it).
        :raises UsageError: the provider cannot tell (the AWS provider: a reaction's position
            is its SQS queue; its queue's attributes say the lag)."""
        ...

    async def dead_letters(self, name: str, *, limit: int = 100) -> list[ReactionDeadLetter]:
        """The reaction's dead letters, newest first, at most ``limit`` (1 to 10,000).
        :raises ValidationError: a bad name or limit.
        :raises ReactionNotFoundError: no reaction of that name ever ran on the provider.
        :raises UsageError: the provider keeps them elsewhere (AWS: the queue's dead-letter
            queue)."""
        ...

    async def reset(
        self, name: str, position: int, *, reason: str | None = None, by: str | None = None
    ) -> None:
        """Set the position to ``position`` (0 to the log's head): events after it are handled
        (again), from a stop too. Commands sent again carry the message ids of the first time,
        so aggregates that handled them ignore them; schedules are ensured by name. Recorded
        in the reaction's operations (``operations``) with ``reason`` and ``by``, in the same
        transaction as the move: both happen or neither does.
        :raises ValidationError: a bad name, a position below 0 or past the log's head (the
            events appended until the log reached it would be skipped), or a bad ``reason``
            or ``by`` (each None, or printable text on one line of 1 to 256 / 1 to 100
            characters: ``check_pause_note``'s rule). Nothing is written.
        :raises ReactionNotFoundError: no reaction of that name ever ran on the provider.
        :raises UsageError: the provider cannot move a position (AWS)."""
        ...

    async def resume(
        self, name: str, *, skip: bool = False, reason: str | None = None, by: str | None = None
    ) -> int:
        """Let a stopped reaction go on: with the event it stopped at (retried), or after it
        (``skip=True``; it stays in the dead letters). Returns the position it resumes after.
        Recorded in the reaction's operations with ``reason`` and ``by`` as ``reset`` is
        (also when the reaction was not stopped: an operator's action is never lost).
        :raises ValidationError: a bad name, ``reason`` or ``by`` (as for ``reset``).
        :raises ReactionNotFoundError: no reaction of that name ever ran on the provider.
        :raises UsageError: the provider does not stop reactions (AWS: a failed event goes to
            the queue's dead letters and the queue goes on)."""
        ...

    async def operations(self, name: str, *, limit: int = 100) -> list[ReactionOperation]:
        """What operators did to the reaction (every ``reset`` and ``resume``), newest first, at
        most ``limit`` (1 to 10,000): when, who, what, why, and from which position to which.
        A store written before operations were recorded, opened read-only, has none to show.
        :raises ValidationError: a bad name or limit.
        :raises ReactionNotFoundError: no reaction of that name ever ran on the provider.
        :raises UsageError: the provider keeps none, as it has no such operations (AWS)."""
        ...
