"""The CommandTopic component: delivers commands to one aggregate.

Commands for one aggregate instance are handled one at a time, in the order they arrive;
commands for different instances run concurrently. Every command carries a message id (for a
scheduled fire, its fire id); the aggregate records it with the events it causes, so a message
delivered twice, also across a crash, changes the aggregate once.

A CommandTopic is a schedule target: ``Scheduler.make(provider, target=orders.command_topic)``.
The scheduler then refuses, at create time, a payload that does not name one of the aggregate's
commands; at fire time, a payload that no longer decodes is dead-lettered at once with the reason.
"""

from __future__ import annotations

# The class lives beside the Aggregate it sends to (each needs the other; one module keeps the
# import graph free of cycles); this module stays its public home.
from reventless.aggregate import CommandTopic

__all__ = ("CommandTopic",)
