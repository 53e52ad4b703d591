"""No test decides what to assert from the real time of day.

A test that reads the wall clock to build its expectations passes at some hours and fails at
others (a daily fire's catch-up judged against the real hour failed every morning between 07:00
and 08:00 UTC, issue 21). Programs run by the tests shift their clock instead
(``tests/shifted_clock.py``), and in-process code uses a ``VirtualClock``. A read of the real
calendar clock stays only where the hour cannot matter, and says so with ``# real clock: why``
on its line or just above.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REAL_CLOCK = re.compile(
    r"datetime\.now\(|date\.today\(|datetime\.utcnow\(|time\.(?:localtime|gmtime|ctime|strftime)\("
)
MARK = "# real clock"


def unexplained_reads(text: str) -> list[int]:
    lines = text.splitlines()
    found = []
    for number, line in enumerate(lines):
        if REAL_CLOCK.search(line) and not any(
            MARK in above for above in lines[max(0, number - 3) : number + 1]
        ):
            found.append(number + 1)
    return found


def test_every_read_of_the_real_calendar_clock_in_the_tests_is_explained() -> None:
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if path.name != Path(__file__).name
        for number in unexplained_reads(path.read_text())
    ]
    assert not offenders, (
        f"real-clock reads without '{MARK}: why the hour cannot matter': {offenders}"
    )


def test_the_check_finds_an_unexplained_read_and_accepts_an_explained_one() -> None:
    assert unexplained_reads("x = 1\nnow = datetime.now(UTC)\n") == [2]
    assert unexplained_reads("# real clock: a lease\nnow = datetime.now(UTC)\n") == []
    assert unexplained_reads("time.strftime('%H')") == [1]
