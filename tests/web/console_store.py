"""A store for the console's tests, and an engine that runs on it in a thread of the test
process while the console (``reventless web``) runs as a process of its own on the same file.

The store holds two schedulers (``ops``, ``billing``), a schedule whose fires are slow to
deliver (``report``: the console shows its history before the fire arrives), one whose fires
fail (``broken``: dead letters), one whose payload is markup, 120 bulk schedules (paging), and
a reaction ``mirror`` that stopped on a poison event. ``db`` is a store file or a
``postgresql://`` URL (the same store on the PostgreSQL provider).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import msgspec

import reventless.local
from reventless import Daily, Hours, Minutes, Plugin, ReactionContext, ReactionEvent, Schedule
from reventless.aggregate import AggregateSpec
from reventless.scheduler_adapter import RetryPolicy
from reventless.target import FireEnvelope, Target

TOKEN = "test-operator-token-0123456789"
MARKUP = '<script>window.__xss = 1</script>"\' onmouseover="window.__xss=2" <img src=x>'
LONG = "x" * 5000
SLOW_SECONDS = 3.0


class Note(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    text: str


class Noted(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    text: str


NOTES: AggregateSpec[int] = AggregateSpec(
    "notes",
    commands=[Note],
    events=[Noted],
    initial=0,
    decide=lambda state, command, context: [Noted(text=command.text)],
    evolve=lambda state, event: state + 1,
)


async def _mirror(event: ReactionEvent, context: ReactionContext) -> None:
    if event.event.text == "poison":
        raise RuntimeError(f"cannot mirror {MARKUP}")


class FlakyTarget:
    """Delivers ``slow`` payloads after a pause, refuses ``fail`` ones, takes the rest."""

    def __init__(self) -> None:
        self.delivered: list[FireEnvelope] = []

    async def deliver(self, envelope: FireEnvelope) -> None:
        if envelope.payload.startswith("fail"):
            raise RuntimeError(f"refused {MARKUP}")
        if envelope.payload.startswith("slow"):
            await anyio.sleep(SLOW_SECONDS)
        self.delivered.append(envelope)


def _plugin() -> Plugin:
    plugin = Plugin("console-test")
    notes = plugin.aggregate(NOTES)
    plugin.event_topic("ticks")
    plugin.scheduler("ops", target="ticks")
    plugin.scheduler("billing", target="ticks")
    plugin.reaction("mirror", follows=[notes], handler=_mirror, max_attempts=1, backoff=0.01)
    return plugin


def _schedules() -> dict[str, list[Schedule]]:
    ops = [
        Schedule(name="report", rate=Daily(9, 0), payload="slow report", timezone="Europe/Berlin"),
        Schedule(name="broken", rate=Hours(6), payload="fail always"),
        Schedule(name="markup", rate=Minutes(30), payload=MARKUP + LONG),
    ]
    ops += [
        Schedule(name=f"bulk-{i:04d}", rate=Minutes(5 + i % 50), payload="bulk") for i in range(120)
    ]
    billing = [Schedule(name="invoice", rate=Daily(6, 0), payload="invoice")]
    return {"ops": ops, "billing": billing}


def _wrap(targets: dict[str, FlakyTarget]) -> Any:
    def wrap(name: str, target: Target) -> Target:
        return targets.setdefault(name, FlakyTarget())

    return wrap


def _provider(db: Path | str, retry: RetryPolicy) -> Any:
    if isinstance(db, str) and db.startswith("postgresql://"):
        from reventless.postgres import provider

        return provider(db, retry_policy=retry, poll_interval=0.1, lease_ttl=5)
    return reventless.local.provider(db, retry_policy=retry, poll_interval=0.1, lease_ttl=5)


class Engine:
    """The engine on ``db`` in a thread: ``start()`` returns once it leads and the store is
    filled; ``stop()`` ends it."""

    def __init__(self, db: Path | str) -> None:
        self.db = db
        self.targets: dict[str, FlakyTarget] = {}
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def start(self) -> Engine:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"the engine did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            anyio.run(self._main)
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        retry = RetryPolicy(max_attempts=0, max_event_age=timedelta(seconds=60))
        async with (
            _provider(self.db, retry) as provider,
            _plugin().start(provider, wrap_target=_wrap(self.targets)) as running,
        ):
            for scheduler, schedules in _schedules().items():
                await running.schedulers[scheduler].operations.create_schedules(schedules)
            await running.aggregates["notes"].handle("n1", Note(text="poison"))
            await running.aggregates["notes"].handle("n1", Note(text="after"))
            async with anyio.create_task_group() as group:
                await group.start(provider.run)
                await _wait_stopped(provider)
                self._ready.set()
                await anyio.to_thread.run_sync(self._stop.wait)
                group.cancel_scope.cancel()


async def _wait_stopped(provider: Any) -> None:
    """Until the reaction has stopped on the poison event."""
    for _ in range(300):
        statuses = await provider.reactions().statuses()
        if any(s.name == "mirror" and s.state == "stopped" for s in statuses):
            return
        await anyio.sleep(0.05)
    raise RuntimeError("the reaction never stopped on the poison event")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ConsoleProcess:
    """``reventless web`` on ``db`` in a process of its own."""

    def __init__(self, db: Path | str, *, token: str | None = TOKEN) -> None:
        self.db = db
        self.out = ""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [sys.executable, "-m", "reventless", "web", "--db", str(db), "--port"]
        argv.append(str(self.port))
        if token is not None:
            argv += ["--token", token]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"reventless web ended: {self.process.communicate()}")
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("reventless web did not answer within 30 s")

    def stop(self) -> str:
        """Stop it; returns what it wrote on stderr (tests check for tracebacks), keeps what
        it wrote on stdout in ``out``."""
        self.process.terminate()
        try:
            self.out, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.out, err = self.process.communicate()
        return err
