"""Group commit: many tasks submit work, one store call commits all that is waiting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel

__all__ = ("GroupCommit",)

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """The first submitter becomes the flusher and commits everything queued, again and again
    until the queue is empty; the others wait for the flush that carried their item. One store
    call per flush, however many submitters arrived meanwhile. A flush under way is not
    cancelled with its flusher: the others' items are in it.

    ``flush(items)`` returns one result per item, in order. When it raises, every submitter of
    that flush gets the same exception. With ``sticky`` (the engine's bookkeeping) so do those
    queued behind it and every later submitter: nothing more is committed by this instance,
    because a later batch must not commit while an earlier one was lost; make a new one to start
    again. Without it (independent writes such as creates), the queue goes on.

    ``shield=False`` is for a flush that cannot be cancelled anyway: one ``StoreRunner.call``
    and no other await (the shield's scope costs as much as a fifth of a single create).
    """

    def __init__(
        self,
        flush: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        sticky: bool = True,
        shield: bool = True,
    ) -> None:
        self._flush = flush
        self._sticky = sticky
        self._shield = shield
        self._queue: list[tuple[Item, _Slot[Result]]] = []
        self._flushing = False
        self.failure: BaseException | None = None

    async def submit(self, item: Item) -> Result:
        if self.failure is not None:
            raise self.failure
        slot: _Slot[Result] = _Slot()
        self._queue.append((item, slot))
        if not self._flushing:
            self._flushing = True
            try:
                # One turn of the loop first: the tasks ready to submit too join this flush
                # (a flush that does not wait, such as a brief store call, would go alone).
                await anyio.lowlevel.cancel_shielded_checkpoint()
                await self._flush_all()
            finally:
                self._flushing = False
            if slot.event.is_set():  # carried by its own flush: no turn of the loop to wait
                return slot.outcome()
        return await slot.wait()

    async def _flush_all(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                if self._shield:
                    with anyio.CancelScope(shield=True):
                        results = await self._flush([entry[0] for entry in batch])
                else:
                    results = await self._flush([entry[0] for entry in batch])
            except BaseException as exc:
                if self._sticky:
                    self.failure = exc
                    batch, self._queue = batch + self._queue, []
                for _, waiting in batch:
                    waiting.fail(exc)
                if self._sticky or not isinstance(exc, Exception):
                    raise
                continue
            for (_, waiting), result in zip(batch, results, strict=True):
                waiting.done(result)


class _Slot(Generic[Result]):
    __slots__ = ("error", "event", "result")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.result: Result | None = None
        self.error: BaseException | None = None

    def done(self, result: Result) -> None:
        self.result = result
        self.event.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.event.set()

    async def wait(self) -> Result:
        await self.event.wait()
        return self.outcome()

    def outcome(self) -> Result:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]
