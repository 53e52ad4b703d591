"""One moto server per session on 127.0.0.1 (a free port), reset per test, counting requests.

The real aioboto3 client talks to it over HTTP with dummy credentials; AWS_* variables are
removed from the environment so nothing can reach a real account.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server

aioboto3 = pytest.importorskip("aioboto3")

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/reventless-scheduler"


class CountingMotoServer(ThreadedMotoServer):
    """moto's threaded server with a WSGI middleware that counts the AWS requests it serves."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def _server_entry(self) -> None:
        moto_app = DomainDispatcherApplication(create_backend_app)

        def counting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            path = environ.get("PATH_INFO", "")
            if not path.startswith("/moto-api"):
                with self._lock:
                    self.requests.append(f"{environ.get('REQUEST_METHOD')} {path}")
            return moto_app(environ, start_response)

        self._server = make_server(self._ip_address, self._port, counting, threaded=True)
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
def moto(moto_server: CountingMotoServer) -> CountingMotoServer:
    moto_server.reset()
    return moto_server


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
