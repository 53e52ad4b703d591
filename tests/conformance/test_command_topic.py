"""The CommandTopic conformance suite on every provider (``conftest.PROVIDERS``)."""

from reventless.testing.command_topic_conformance import CommandTopicConformance


class TestCommandTopic(CommandTopicConformance):
    pass
