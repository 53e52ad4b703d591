"""pulumi is imported by reventless.aws.pulumi only: not by the core, the embedded engine, the
AWS provider or the demo, even where pulumi is installed (which is what makes this meaningful)."""

from __future__ import annotations

import subprocess
import sys

from tests.aws.pulumi import require_pulumi
from tests.docs_pages import environment

require_pulumi()

CHECK = """
import asyncio, io, sys
import reventless, reventless.local, reventless.aws, reventless.cli.demo
from reventless.cli.demo import DemoOptions, run_demo
status = asyncio.run(run_demo(DemoOptions(days=1), io.StringIO()))
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'pulumi_aws'))
print(status, loaded)
"""


def test_reventless_and_the_demo_never_import_pulumi() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK], env=environment(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0 []"


def test_the_pulumi_module_does() -> None:
    check = "import sys, reventless.aws.pulumi; print('pulumi' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", check], env=environment(), capture_output=True, text=True
    )
    assert done.stdout.strip() == "True", done.stderr
