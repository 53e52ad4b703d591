"""The EventLog conformance suite on every provider (``conftest.PROVIDERS``)."""

from reventless.testing.event_log_conformance import EventLogConformance


class TestEventLog(EventLogConformance):
    pass
