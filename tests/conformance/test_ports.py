"""``Capabilities.ports``: a provider built port by port runs the suites of the ports it has;
the others skip for it, saying which port is missing. The fixture's providers say what they
offer."""

from __future__ import annotations

import pytest

from reventless.errors import UsageError
from reventless.testing.ports import PORTS, Capabilities, ProviderUnderTest, skip_unless_offered
from reventless.testing.reactions_conformance import ReactionsConformance
from tests.conformance.conftest import PROVIDERS, PostgresUnderTest


class _Partial(ProviderUnderTest):
    name = "partial"
    capabilities = Capabilities(ports=frozenset({"event_log"}))


def test_a_port_not_offered_skips_naming_the_provider_and_the_port() -> None:
    with pytest.raises(pytest.skip.Exception, match="partial does not offer the reactions port"):
        skip_unless_offered(_Partial(), "reactions")
    skip_unless_offered(_Partial(), "event_log")  # offered: nothing happens
    skip_unless_offered(ProviderUnderTest(), "reactions")  # every port by default


def test_an_unknown_port_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UsageError, match="event_logs") as caught:
        Capabilities(ports=frozenset({"event_logs"}))
    assert all(port in str(caught.value) for port in PORTS)


def test_every_suite_checks_its_port() -> None:
    # Each suite has the autouse fixture; a suite without it would run on a provider lacking it.
    from reventless.testing.command_topic_conformance import CommandTopicConformance
    from reventless.testing.conformance import ScheduledPublisherConformance
    from reventless.testing.event_log_conformance import EventLogConformance
    from reventless.testing.event_topic_conformance import EventTopicConformance

    suites = (
        ScheduledPublisherConformance,
        EventLogConformance,
        EventTopicConformance,
        CommandTopicConformance,
        ReactionsConformance,
    )
    # On the suite or a base of it (the ScheduledPublisher suite's fixtures are on its base).
    assert all(any("_offered" in vars(cls) for cls in suite.__mro__) for suite in suites)


def test_the_postgres_provider_offers_the_ports_built_so_far() -> None:
    assert ("postgres", "asyncio") in PROVIDERS
    assert PostgresUnderTest.capabilities.ports == frozenset(
        {"event_log", "scheduled_publisher", "event_topic", "command_topic", "reactions"}
    )
    # Its topics and reactions run in process (``reventless.postgres._event_topics``).
    assert PostgresUnderTest.capabilities.topics_in_process
    assert PostgresUnderTest.capabilities.reactions_in_process
