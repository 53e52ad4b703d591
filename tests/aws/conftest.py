"""One moto server per session on 127.0.0.1 (a free port), reset per test.

The real aioboto3 client talks to it over HTTP with dummy credentials; AWS_* variables are
removed from the environment so nothing can reach a real account.

A WSGI front sees every real HTTP request before moto does. It counts them, enforces the
documented EventBridge Scheduler limits that moto does not check (and fails the test at teardown
if any request broke one), and injects faults on demand (``moto.inject(...)``).
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server

aioboto3 = pytest.importorskip("aioboto3")

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/reventless-scheduler"

# EventBridge Scheduler's documented request limits (API reference, CreateSchedule /
# UpdateSchedule / DeleteSchedule / CreateScheduleGroup), which moto does not check:
# ClientToken 1-64 of [a-zA-Z0-9-_]; Description at most 512 characters; group and schedule
# names 1-64 of [0-9a-zA-Z-_.]; a StartDate no earlier than five minutes ago ("The StartDate
# you specify cannot be earlier than 5 minutes ago"; moto checks it for cron expressions only).
_TOKEN = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_NAME = re.compile(r"[0-9a-zA-Z_.-]{1,64}")
_MAX_DESCRIPTION = 512
_START_SLACK = timedelta(minutes=5)
_OPERATIONS = {
    ("POST", "schedules"): "CreateSchedule",
    ("PUT", "schedules"): "UpdateSchedule",
    ("DELETE", "schedules"): "DeleteSchedule",
    ("GET", "schedules"): "GetSchedule",
    ("POST", "schedule-groups"): "CreateScheduleGroup",
    ("GET", "schedule-groups"): "GetScheduleGroup",
}


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with this AWS error instead of moto."""

    operation: str
    code: str
    status: int
    times: int
    name: str | None = None


@dataclass(frozen=True)
class SchedulerRequest:
    """One EventBridge Scheduler request as it came over HTTP."""

    operation: str
    name: str
    query: dict[str, str]
    body: dict[str, Any]

    @property
    def client_token(self) -> str | None:
        token = self.body.get("ClientToken", self.query.get("clientToken"))
        return None if token is None else str(token)


def scheduler_request(environ: dict[str, Any], body: bytes) -> SchedulerRequest | None:
    """The EventBridge Scheduler request in a WSGI environ, or None for any other service."""
    parts = environ.get("PATH_INFO", "").strip("/").split("/")
    operation = _OPERATIONS.get((environ.get("REQUEST_METHOD", ""), parts[0]))
    if operation is None or len(parts) != 2:
        return None
    query = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    document = json.loads(body) if body else {}
    return SchedulerRequest(operation, urllib.parse.unquote(parts[1]), query, document)


def limit_violations(request: SchedulerRequest, now: datetime) -> list[str]:
    """What in ``request`` EventBridge Scheduler would refuse at ``now`` and moto lets through."""
    problems = []
    token = request.client_token
    if token is not None and not _TOKEN.fullmatch(token):
        problems.append(f"ClientToken {token!r} is not 1-64 of [a-zA-Z0-9-_]")
    description = request.body.get("Description")
    if description is not None and len(description) > _MAX_DESCRIPTION:
        problems.append(f"Description has {len(description)} characters; the limit is 512")
    start = request.body.get("StartDate")
    if start is not None and datetime.fromtimestamp(float(start), UTC) < now - _START_SLACK:
        problems.append(
            f"StartDate {datetime.fromtimestamp(float(start), UTC).isoformat()} is earlier "
            f"than 5 minutes before {now.isoformat()}"
        )
    group = request.body.get("GroupName", request.query.get("groupName"))
    for field, value in (("Name", request.name), ("GroupName", group)):
        if value is not None and not _NAME.fullmatch(value):
            problems.append(f"{field} {value!r} is not 1-64 of [0-9a-zA-Z-_.]")
    return problems


def _aws_error(start_response: Callable[..., Any], status: int, code: str, text: str) -> Any:
    body = json.dumps({"message": text}).encode()
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("x-amzn-ErrorType", code),
        ],
    )
    return [body]


class CountingMotoServer(ThreadedMotoServer):
    """moto's threaded server behind a WSGI front that counts the AWS requests it serves, checks
    EventBridge Scheduler's limits against ``now()`` (the test's clock; bind it with
    ``use_clock``), records a ClientToken reused by a second successful write, and serves the
    faults queued with ``inject``."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.requests: list[str] = []
        self.violations: list[str] = []
        self.injected: list[str] = []
        # real clock: AWS judges StartDate limits by it; tests that depend on it set use_clock
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)
        self._faults: list[Fault] = []
        self._tokens: set[str] = set()
        self._lock = threading.Lock()

    def use_clock(self, now: Callable[[], datetime]) -> None:
        """Judge StartDate limits by this clock (a VirtualClock's ``now``) instead of real time."""
        self.now = now

    def inject(
        self,
        operation: str,
        *,
        code: str = "ThrottlingException",
        status: int = 400,
        times: int = 1,
        name: str | None = None,
    ) -> None:
        """Answer the next ``times`` ``operation`` requests (for schedule ``name``, when given)
        with the AWS error ``code`` instead of passing them to moto."""
        with self._lock:
            self._faults.append(Fault(operation, code, status, times, name))

    def _take_fault(self, request: SchedulerRequest) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.operation == request.operation and fault.name in (None, request.name):
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    self.injected.append(f"{request.operation} {request.name}: {fault.code}")
                    return fault
        return None

    def _check(self, request: SchedulerRequest) -> list[str]:
        problems = limit_violations(request, self.now())
        token = request.client_token
        with self._lock:
            if token is not None and token in self._tokens:
                problems.append(
                    f"ClientToken {token!r} was already used by an earlier successful write; "
                    "AWS would answer this one as a replay of it and change nothing"
                )
            problems = [f"{request.operation} {request.name}: {p}" for p in problems]
            self.violations += problems
        return problems

    def _front(self, moto_app: Any) -> Callable[..., Any]:
        def front(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            if environ.get("PATH_INFO", "").startswith("/moto-api"):
                return moto_app(environ, start_response)
            with self._lock:
                self.requests.append(f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}")
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            request = scheduler_request(environ, body)
            if request is None:
                return moto_app(environ, start_response)
            problems = self._check(request)
            if problems:
                return _aws_error(start_response, 400, "ValidationException", "; ".join(problems))
            fault = self._take_fault(request)
            if fault is not None:
                return _aws_error(start_response, fault.status, fault.code, "injected by the test")
            return moto_app(environ, self._remember_token(request, start_response))

        return front

    def _remember_token(
        self, request: SchedulerRequest, start_response: Callable[..., Any]
    ) -> Callable[..., Any]:
        def remembering(status: str, headers: Any, exc_info: Any = None) -> Any:
            token = request.client_token
            if token is not None and status.startswith("2"):
                with self._lock:
                    self._tokens.add(token)
            return start_response(status, headers, exc_info)

        return remembering

    def _server_entry(self) -> None:
        front = self._front(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._ip_address, self._port, front, threaded=True)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass
        with self._lock:
            self.requests.clear()
            self.violations.clear()
            self.injected.clear()
            self._faults.clear()
            self._tokens.clear()
            self.now = lambda: datetime.now(UTC)  # real clock: as in __init__


@pytest.fixture(scope="session")
def moto_server() -> Iterator[CountingMotoServer]:
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        del os.environ[key]
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # never look for real credentials
    server = CountingMotoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server: CountingMotoServer) -> Iterator[CountingMotoServer]:
    """The server, reset; the test fails if any request broke an EventBridge Scheduler limit."""
    moto_server.reset()
    yield moto_server
    violations = moto_server.violations
    assert not violations, "requests AWS would refuse or take as replays:\n" + "\n".join(violations)


@pytest.fixture
def anyio_backend() -> str:
    """The AWS adapter runs on asyncio only (aioboto3 is built on aiohttp)."""
    return "asyncio"


@pytest.fixture
def session() -> Any:
    return aioboto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture
async def sqs(session: Any, moto: CountingMotoServer) -> AsyncIterator[Any]:
    async with session.client("sqs", endpoint_url=moto.url) as client:
        yield client


@pytest.fixture
async def scheduler_client(session: Any, moto: CountingMotoServer) -> AsyncIterator[Any]:
    async with session.client("scheduler", endpoint_url=moto.url) as client:
        yield client


async def make_queue(sqs: Any, name: str) -> tuple[str, str]:
    attributes = (
        {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if name.endswith(".fifo") else {}
    )
    url = (await sqs.create_queue(QueueName=name, Attributes=attributes))["QueueUrl"]
    arn = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))["Attributes"][
        "QueueArn"
    ]
    return url, arn
