"""The ScheduledPublisher conformance suite on every provider (``conftest.PROVIDERS``)."""

from reventless.testing.conformance import ScheduledPublisherConformance


class TestScheduledPublisher(ScheduledPublisherConformance):
    pass
