"""What ``reventless.local.provider(...)`` and ``reventless.aws.provider(...)`` return.

An async context manager that opens the provider on ``async with`` and closes it on leaving the
block, exactly as ``contextlib.asynccontextmanager`` would. Used without ``async with`` (a
provider method called on it, ``await`` or a plain ``with``), it raises UsageError with the fix,
where a generator context manager raised an AttributeError about itself.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from reventless.errors import UsageError

__all__ = ("ProviderContext", "provider_context")

T = TypeVar("T")
P = ParamSpec("P")


class ProviderContext(AbstractAsyncContextManager[T], Generic[T]):
    """``async with`` this to open the provider; the block's target is the provider itself.

    It can be entered once: call the provider function again for another.
    """

    def __init__(
        self,
        opener: Callable[[], AbstractAsyncContextManager[T]],
        *,
        call: str,
        provider_type: type[Any],
    ) -> None:
        self._opener = opener
        self._call = call
        self._provider_type = provider_type
        self._context: AbstractAsyncContextManager[T] | None = None

    def __repr__(self) -> str:
        return f"<{self._call}(...): use it as 'async with {self._call}(...) as provider:'>"

    async def __aenter__(self) -> T:
        if self._context is not None:
            raise UsageError(
                f"this {self._call}(...) was entered already; call {self._call}(...) again "
                "for another 'async with' block"
            )
        self._context = self._opener()
        return await self._context.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        if self._context is None:
            raise UsageError(f"{self._call}(...) was left without being entered")
        return await self._context.__aexit__(exc_type, exc, traceback)

    def _misuse(self, what: str) -> UsageError:
        return UsageError(
            f"{what}: {self._call}(...) returns an async context manager, not the provider; "
            f"write 'async with {self._call}(...) as provider:' and use the provider inside "
            "the block (it is closed when the block ends)"
        )

    if not TYPE_CHECKING:
        # Runtime only: to a type checker these names stay missing, so mypy still reports the
        # misuse statically.

        def __getattr__(self, name: str) -> Any:
            kind = self._provider_type
            if name.startswith("_") or not (
                hasattr(kind, name) or name in getattr(kind, "__annotations__", {})
            ):
                raise AttributeError(
                    f"{type(self).__name__!r} object has no attribute {name!r}", name=name, obj=self
                )
            raise self._misuse(f"'{name}' is an attribute of the provider")

        def __await__(self) -> Any:
            raise self._misuse(f"{self._call}(...) cannot be awaited")

        def __enter__(self) -> Any:
            raise self._misuse(f"{self._call}(...) needs 'async with', not 'with'")

        def __exit__(self, *exc_info: object) -> None:
            return None


def provider_context(
    call: str, provider_type: type[T]
) -> Callable[[Callable[P, AsyncIterator[T]]], Callable[P, ProviderContext[T]]]:
    """Turn an async generator function into a provider function, as ``asynccontextmanager``
    does, but returning a ``ProviderContext`` named ``call`` (``"reventless.local.provider"``).
    Arguments are checked when the context is entered, as before."""

    def decorate(func: Callable[P, AsyncIterator[T]]) -> Callable[P, ProviderContext[T]]:
        opener = asynccontextmanager(func)

        @functools.wraps(func)
        def make(*args: P.args, **kwargs: P.kwargs) -> ProviderContext[T]:
            return ProviderContext(
                functools.partial(opener, *args, **kwargs), call=call, provider_type=provider_type
            )

        return make

    return decorate
