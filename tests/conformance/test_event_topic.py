"""The EventTopic conformance suite on every provider (``conftest.PROVIDERS``)."""

from reventless.testing.event_topic_conformance import EventTopicConformance


class TestEventTopic(EventTopicConformance):
    pass
