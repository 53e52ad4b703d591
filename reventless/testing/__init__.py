"""Helpers for testing code that uses reventless, and for proving new adapters.

- ``VirtualClock``: time that moves only on ``await clock.advance(delta)``, which returns once
  every fire due up to the new instant has been delivered and recorded.
- ``RecordingTarget``: a target that records every envelope it receives, in order.
- ``FailingTarget`` and ``HangingTarget``: targets for fault injection.
- The conformance suites, one per port, all run on one ``provider_under_test`` fixture
  (``reventless.testing.ports``: ``ProviderUnderTest``, ``Capabilities``); they need pytest:
  ``conformance`` (ScheduledPublisher), ``event_log_conformance``, ``event_topic_conformance``,
  ``command_topic_conformance`` and ``reactions_conformance``.
- ``reventless.testing.aws``: fire schedules as EventBridge would and shape Lambda SQS events,
  against a local emulator (moto).
"""

from __future__ import annotations

from reventless.clock import ScaledClock, VirtualClock
from reventless.testing._targets import FailingTarget, HangingTarget, RecordingTarget

__all__ = ("FailingTarget", "HangingTarget", "RecordingTarget", "ScaledClock", "VirtualClock")
