"""A deployment's outputs as the provider's keyword arguments, at runtime, without Pulumi.

A deployment (``reventless.aws.pulumi``) exports one mapping, the keyword arguments of
``reventless.aws.provider`` that name what it created, and sets it, as JSON, in the environment
variable ``REVENTLESS_AWS`` of the functions it deploys. These read it back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from reventless.errors import ValidationError

ENVIRONMENT_VARIABLE = "REVENTLESS_AWS"
"""The environment variable a deployment sets to its ``reventless`` output, as JSON."""

# The provider's keyword arguments that a deployment names; the rest (session, clients, clock,
# retry policy, endpoint) belong to the process.
OUTPUT_ARGUMENTS = frozenset(
    {
        "group",
        "role_arn",
        "region",
        "dead_letter_arn",
        "event_table",
        "event_topics",
        "command_queues",
        "command_dead_letters",
    }
)


def provider_arguments(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The provider's keyword arguments in ``outputs`` (what ``pulumi stack output reventless
    --json`` prints). Unknown keys and a missing ``group`` or ``role_arn`` are refused; the
    values themselves are checked by the provider, as any argument."""
    if not isinstance(outputs, Mapping):
        raise ValidationError("outputs", outputs, "a mapping of reventless.aws.provider arguments")
    unknown = sorted(set(outputs) - OUTPUT_ARGUMENTS)
    if unknown:
        raise ValidationError("outputs", unknown, f"only {sorted(OUTPUT_ARGUMENTS)}")
    missing = sorted({"group", "role_arn"} - set(outputs))
    if missing:
        raise ValidationError("outputs", missing, "group and role_arn, at least")
    return dict(outputs)


def arguments_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The provider's keyword arguments from ``REVENTLESS_AWS`` (JSON) in ``environ``
    (``os.environ`` by default)."""
    environ = os.environ if environ is None else environ
    text = environ.get(ENVIRONMENT_VARIABLE)
    if text is None:
        raise ValidationError(
            ENVIRONMENT_VARIABLE, None, "set, to the deployment's JSON output 'reventless'"
        )
    try:
        outputs = json.loads(text)
    except ValueError:
        raise ValidationError(ENVIRONMENT_VARIABLE, text, "a JSON object") from None
    return provider_arguments(outputs)
