"""The Reactions conformance suite on every provider (``conftest.PROVIDERS``)."""

from reventless.testing.reactions_conformance import ReactionsConformance


class TestReactions(ReactionsConformance):
    pass
