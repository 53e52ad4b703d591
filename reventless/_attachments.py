"""What adapters say about the targets attached to their schedulers."""

from __future__ import annotations

from reventless._payload_types import command_spec
from reventless.errors import UsageError

__all__ = ("describe_target", "duplicate_scheduler")


def describe_target(target: object) -> str:
    """A short description of a target for people: what it delivers to."""
    spec = command_spec(target)
    if spec is not None:
        return f"command topic of aggregate {spec.name!r}"
    name = getattr(target, "name", None)
    if callable(getattr(target, "subscribe", None)) and isinstance(name, str):
        return f"event topic {name!r}"
    cls = type(target)
    qualified = f"{cls.__module__}.{cls.__qualname__}"
    return f"{qualified} {name!r}" if isinstance(name, str) else qualified


def duplicate_scheduler(scheduler: str, bound: object) -> UsageError:
    """The error for a second scheduler of one name on one provider (every adapter raises it)."""
    first = "" if bound is None else f" (its target: {describe_target(bound)})"
    return UsageError(
        f"a scheduler named {scheduler!r} is already made on this provider{first}; a second "
        "one would take its fires. Give the new scheduler a distinct name, e.g. "
        f"Scheduler.make(provider, target=..., name='{scheduler}-2'), or keep using the "
        "first Scheduler object"
    )
