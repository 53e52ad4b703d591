"""``examples/aws_shop`` runs as its task runs it, in a real subprocess, and tells what happened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dev

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_aws_shop_example_runs_against_a_local_moto_server() -> None:
    [command] = dev.TASKS["aws-shop"].commands
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Mon 09:00  EventBridge fires process-orders -> orders.fifo" in out
    assert "orders subscriber: PendingOrdersProcessed orders/order-processor/10" in out
    assert "health-check: 120 fires published to SNS by EventBridge, 120 received" in out
    assert "orders/order-processor: version 10" in out
    assert "delivered again: version 10 -> 10" in out
