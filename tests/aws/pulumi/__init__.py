"""Tests of reventless.aws.pulumi under Pulumi's mocks (no CLI, no cloud).

They need the ``pulumi`` extra. Without it they are skipped, except where
``REVENTLESS_REQUIRE_PULUMI`` is set (``python3 dev.py pulumi``): there a missing pulumi fails.
"""

from __future__ import annotations

import os
import types

import pytest


def require_pulumi() -> types.ModuleType:
    """pulumi, or a skip; an ImportError when REVENTLESS_REQUIRE_PULUMI is set."""
    if os.environ.get("REVENTLESS_REQUIRE_PULUMI"):
        import pulumi

        return pulumi
    return pytest.importorskip("pulumi")
