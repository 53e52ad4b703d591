"""Plugins: a named group of aggregates, topics and schedulers, the unit a user runs.

::

    shop = Plugin("shop")
    orders = shop.aggregate(orders_spec)
    shop.event_topic("health")
    shop.scheduler("orders", target=orders, schedules=[Schedule(...)])
    shop.scheduler("health", target="health", schedules=[Schedule(...)])
    shop.reaction("reminders", follows=[users_spec], handler=on_user_event)

    async with shop.start(provider) as running:
        running.aggregates["orders"], running.schedulers["orders"].operations, ...
        await provider.run()

Declared schedules are ensured on start: created when missing, replaced when changed, left alone
(interval anchors included) when the same. Reactions (``reventless.reaction``) are handed to the
provider on start and run with ``provider.run()``. ``reventless run module:plugin --db FILE`` runs
one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from reventless.aggregate import Aggregate, AggregateSpec
from reventless.command_topic import CommandTopic
from reventless.errors import UsageError, ValidationError
from reventless.event_topic import EventTopic, topic_for
from reventless.provider import Provider, ProvidesReactions
from reventless.reaction import Handler, Reaction
from reventless.reaction_adapter import Reactions
from reventless.schedule import Schedule, check_name
from reventless.scheduler import Scheduler
from reventless.target import FireEnvelope, Target, check_target, is_async_callable

__all__ = ("ObservedTarget", "Plugin", "RunningPlugin")

StartHook = Callable[["RunningPlugin"], Awaitable[None]]
TargetWrapper = Callable[[str, Target], Target]


class ObservedTarget:
    """Wraps a target to watch its fires: ``await on_fire(scheduler, envelope, error)`` after
    each delivery (``error`` is None when it succeeded). Anything else, such as a command topic's
    ``check_payload``, is the wrapped target's. ``inner.deliver`` and ``on_fire`` must be
    ``async def``; a plain ``def`` is refused here."""

    def __init__(
        self,
        scheduler: str,
        inner: Target,
        on_fire: Callable[[str, FireEnvelope, BaseException | None], Awaitable[None]],
    ) -> None:
        check_target(inner, "inner")
        if not is_async_callable(on_fire):
            raise ValidationError(
                "on_fire", on_fire, "an async function (scheduler, envelope, error) -> None"
            )
        self._scheduler = scheduler
        self._inner = inner
        self._on_fire = on_fire

    async def deliver(self, envelope: FireEnvelope) -> None:
        try:
            await self._inner.deliver(envelope)
        except Exception as exc:
            await self._on_fire(self._scheduler, envelope, exc)
            raise
        await self._on_fire(self._scheduler, envelope, None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RunningPlugin:
    """A started plugin: its components by name.

    ``aggregates`` maps each aggregate's name to its ``Aggregate`` (whose ``command_topic`` takes
    commands from application code), ``schedulers`` each scheduler's name to its ``Scheduler``
    (whose ``operations`` manage schedules at runtime), and ``event_topics`` each standalone
    topic's name to its ``EventTopic``. ``provider`` and ``plugin`` are what it was started with.
    """

    def __init__(self, plugin: Plugin, provider: Provider) -> None:
        self.plugin = plugin
        self.name = plugin.name
        self.provider = provider
        self.aggregates: dict[str, Aggregate[Any]] = {}
        self.event_topics: dict[str, EventTopic] = {}
        self.schedulers: dict[str, Scheduler] = {}
        self.reactions: dict[str, Reaction] = {}


class Plugin:
    """A declaration of components; ``start(provider)`` builds them."""

    def __init__(self, name: str) -> None:
        check_name(name)
        self.name = name
        self._aggregates: dict[str, AggregateSpec[Any]] = {}
        self._topics: list[str] = []
        self._schedulers: dict[str, tuple[AggregateSpec[Any] | str, tuple[Schedule, ...]]] = {}
        self._hooks: list[StartHook] = []
        self._reactions: dict[str, Reaction] = {}

    def aggregate(self, spec: AggregateSpec[Any]) -> AggregateSpec[Any]:
        """Declare an aggregate; returns the spec, to name it as a scheduler target."""
        if not isinstance(spec, AggregateSpec):
            raise ValidationError("spec", spec, "an AggregateSpec")
        if spec.name in self._aggregates:
            raise ValidationError("aggregate name", spec.name, "a name not declared yet")
        self._aggregates[spec.name] = spec
        return spec

    def event_topic(self, name: str) -> str:
        """Declare a standalone event topic; returns its name, to name it as a target."""
        check_name(name)
        if name in self._topics:
            raise ValidationError("event topic name", name, "a name not declared yet")
        self._topics.append(name)
        return name

    def scheduler(
        self,
        name: str,
        *,
        target: AggregateSpec[Any] | str,
        schedules: Sequence[Schedule] = (),
    ) -> None:
        """Declare a scheduler delivering to an aggregate (its spec) or an event topic (its name),
        with the schedules to ensure at every start."""
        check_name(name)
        if name in self._schedulers:
            raise ValidationError("scheduler name", name, "a name not declared yet")
        if isinstance(target, AggregateSpec):
            if self._aggregates.get(target.name) is not target:
                raise ValidationError("target", target.name, "an aggregate declared on this plugin")
        elif not isinstance(target, str) or target not in self._topics:
            self._refuse_target(target)
        self._schedulers[name] = (target, tuple(schedules))

    def _refuse_target(self, target: object) -> None:
        allowed = f"a declared aggregate spec or event topic name ({self._topics})"
        fixes = {
            Aggregate: "pass the spec it was made from (aggregate.spec), declared with aggregate()",
            CommandTopic: "pass its aggregate's spec, declared with aggregate()",
            EventTopic: "pass its name, declared with event_topic()",
        }
        for kind, fix in fixes.items():
            if isinstance(target, kind):
                label = f"{kind.__name__} {getattr(target, 'name', '')!r}"
                raise ValidationError(
                    "target", target, allowed, message=f"target is the {label}; {fix}"
                )
        raise ValidationError("target", target, allowed)

    def reaction(
        self,
        name: str,
        *,
        follows: Sequence[AggregateSpec[Any]],
        handler: Handler,
        **options: Any,
    ) -> Reaction:
        """Declare a reaction: ``await handler(event, context)`` for every event of the
        aggregates ``follows`` names (specs declared on this plugin), durably; see
        ``reventless.reaction.Reaction`` for ``options`` (on_failure, max_attempts, backoff,
        max_backoff, timeout, start) and the guarantees."""
        reaction = Reaction(name, follows=follows, handler=handler, **options)
        if name in self._reactions:
            raise ValidationError("reaction name", name, "a name not declared yet")
        for spec in reaction.follows.values():
            if self._aggregates.get(spec.name) is not spec:
                raise ValidationError("follows", spec.name, "aggregates declared on this plugin")
        self._reactions[name] = reaction
        return reaction

    def on_start(self, hook: StartHook) -> StartHook:
        """Register ``async def hook(running)`` to run after the components are built."""
        self._hooks.append(hook)
        return hook

    @asynccontextmanager
    async def start(
        self, provider: Provider, *, wrap_target: TargetWrapper | None = None
    ) -> AsyncIterator[RunningPlugin]:
        """Build every component on ``provider``, ensure the declared schedules, run the hooks.

        ``wrap_target(scheduler_name, target)`` may wrap each scheduler's target (logging,
        counting) before it is bound.
        """
        running = RunningPlugin(self, provider)
        for spec in self._aggregates.values():
            running.aggregates[spec.name] = await Aggregate.make(provider, spec)
        for topic in self._topics:
            running.event_topics[topic] = topic_for(provider, topic)
        for name, (target_ref, schedules) in self._schedulers.items():
            target: Target
            if isinstance(target_ref, AggregateSpec):
                target = running.aggregates[target_ref.name].command_topic
            else:
                target = running.event_topics[target_ref]
            if wrap_target is not None:
                target = wrap_target(name, target)
            scheduler = await Scheduler.make(provider, target=target, name=name)
            running.schedulers[name] = scheduler
            for schedule in schedules:
                await scheduler.operations.ensure_schedule(schedule)
        host = self._reaction_host(provider)
        for hook in self._hooks:
            await hook(running)
        for reaction in self._reactions.values():
            assert host is not None
            host.register(reaction, running)
            running.reactions[reaction.name] = reaction
        try:
            yield running
        finally:
            for name in running.reactions:
                assert host is not None
                host.unregister(name)

    def _reaction_host(self, provider: Provider) -> Reactions | None:
        if not self._reactions:
            return None
        if not isinstance(provider, ProvidesReactions):
            raise UsageError(
                f"plugin {self.name!r} declares reactions ({', '.join(self._reactions)}), and "
                f"provider {type(provider).__name__} does not run reactions; run the plugin on "
                "reventless.local.provider"
            )
        return provider.reactions()
