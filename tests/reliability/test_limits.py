"""Each limit, in process: body size (declared and streamed), batch, k, vector length, request timeout.
Every error has the one problem+json shape with a request id that is also in the response header and in
the JSON access log; an unexpected failure answers 500 without a stack trace."""

from __future__ import annotations

import asyncio
import json
import logging
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from latent_bridge.service.api.accesslog import ACCESS_LOGGER
from latent_bridge.service.api.app import create_app
from problems import problem
from reliability_bundles import DIM
from serverprocess import running_server
from testsettings import LIMITS, settings_for

PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "request_id"}


@pytest.fixture(scope="module")
def client(bundle_one: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(bundle_one))) as client:
        yield client


def vectors(n: int, dim: int = DIM) -> list[list[float]]:
    return [[0.1 * (i + 1)] * dim for i in range(n)]


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(bundle_one: Path) -> None:
    app = create_app(settings_for(bundle_one))
    limit = int(LIMITS["max_body_bytes"])  # type: ignore[call-overload]
    huge = 64 << 20  # past what is drained: not a byte is read
    read = []

    async def receive() -> dict[str, Any]:
        read.append(1)
        return {"type": "http.request", "body": b"{}", "more_body": False}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/translate",
        "raw_path": b"/translate",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(huge).encode())],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
        "app": app,
    }
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert not read, "the body was read"
    start = sent[0]
    assert start["status"] == 413 and (b"connection", b"close") in start["headers"]
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["type"].endswith("body-too-large") and body["limit"] == limit and body["got"] == huge


def test_a_declared_body_a_little_over_the_limit_gets_a_clean_413(client: TestClient) -> None:
    size = int(LIMITS["max_body_bytes"]) + 1  # type: ignore[call-overload]
    response = client.post("/translate", content=b" " * size, headers={"content-type": "application/json"})
    body = problem(response, 413, "body-too-large")
    assert body["got"] == size and response.headers["connection"] == "close"


@pytest.mark.slow
def test_a_streamed_body_over_the_limit_is_cut_off(bundle_one: Path) -> None:
    """Over a real socket, a chunked upload (no Content-Length) gets its 413 once the limit is crossed,
    long before the client has sent all it meant to."""
    limit = int(LIMITS["max_body_bytes"])  # type: ignore[call-overload]
    total, chunk = 64 << 20, b" " * 8192  # far more than socket buffers hold
    with running_server(bundle_one, env={"LATENT_BRIDGE_MAX_BODY_BYTES": str(limit)}) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /translate HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            sent = 0
            try:
                while sent < total and not select.select([sock], [], [], 0)[0]:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server closed the connection: it stopped reading
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                part = sock.recv(65536)
                if not part:
                    break
                answer += part
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"application/problem+json" in head.lower()
    body = json.loads(payload[payload.index(b"{"):payload.rindex(b"}") + 1])
    assert body["type"].endswith("body-too-large") and body["limit"] == limit and "base64" in body["detail"]
    assert sent < total // 2, f"the client sent {sent} bytes before the answer: the body was read on"


def test_a_body_with_too_many_values_is_refused_before_it_is_parsed(bundle_one: Path) -> None:
    with TestClient(create_app(settings_for(bundle_one, max_json_values=1024))) as small:
        body = problem(small.post("/translate", json={"from": "a", "to": "b", "vector": [0.1] * 2000}), 413,
                       "too-many-values")  # counted before the parse: not vector-too-long, found after it
        assert body["limit"] == 1024 and body["got"] > 2000 and "base64" in body["detail"]
        full = small.post("/translate", json={"from": "a", "to": "b", "vectors": vectors(LIMITS["max_batch"])})  # type: ignore[arg-type]
        assert full.status_code == 200, full.text


def test_a_body_under_the_limit_is_served(client: TestClient) -> None:
    response = client.post("/translate", json={"from": "a", "to": "b", "vectors": vectors(LIMITS["max_batch"])})  # type: ignore[arg-type]
    assert response.status_code == 200 and response.json()["count"] == LIMITS["max_batch"]


def test_batch_limit(client: TestClient) -> None:
    n = int(LIMITS["max_batch"]) + 1  # type: ignore[call-overload]
    for path in ("/translate", "/retrieve"):
        body = problem(client.post(path, json={"from": "a", "to": "b", "vectors": vectors(n)}), 413, "batch-too-large")
        assert body["limit"] == n - 1 and body["got"] == n


def test_k_limit(client: TestClient) -> None:
    limit = LIMITS["max_k"]
    body = problem(
        client.get("/retrieve", params={"from": "a", "to": "b", "id": "a-1", "k": 21}), 422, "k-out-of-range"
    )
    assert body["limit"] == limit and body["got"] == 21
    body = problem(
        client.post("/retrieve", json={"from": "a", "to": "b", "vector": [0.1] * DIM, "k": 21}), 422, "k-out-of-range"
    )
    assert body["limit"] == limit
    assert client.get("/retrieve", params={"from": "a", "to": "b", "id": "a-1", "k": limit}).status_code == 200


def test_vector_length_limit(client: TestClient) -> None:
    too_long = [0.1] * 65
    for path in ("/translate", "/retrieve"):
        body = problem(client.post(path, json={"from": "a", "to": "b", "vector": too_long}), 413, "vector-too-long")
        assert (body["limit"], body["got"], body["row"]) == (64, 65, 0)
        rows = [[0.1] * DIM, too_long]
        assert (
            problem(client.post(path, json={"from": "a", "to": "b", "vectors": rows}), 413, "vector-too-long")["row"]
            == 1
        )
    # within the limit but not the modality's dimension: the usual 422
    problem(client.post("/translate", json={"from": "a", "to": "b", "vector": [0.1] * 64}), 422, "dimension-mismatch")


def test_a_slow_upload_times_out(bundle_one: Path) -> None:
    app = create_app(settings_for(bundle_one, request_timeout=0.3))

    async def run() -> httpx.Response:
        async def slow_body() -> AsyncIterator[bytes]:
            yield b'{"from": "a", "to": "b", '
            await asyncio.sleep(10)  # never finishes in time
            yield b'"vector": [1, 2, 3, 4, 5, 6, 7, 8]}'

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            app.state.bundle = None  # NotReady would only come after the body; the deadline comes first
            return await http.post("/translate", content=slow_body(), headers={"content-type": "application/json"})

    started = time.monotonic()
    response = asyncio.run(run())
    assert time.monotonic() - started < 3
    body = problem(response, 504, "request-timeout")
    assert body["limit"] == 0.3


def test_slow_work_in_a_thread_times_out_and_the_server_goes_on(
    bundle_one: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import latent_bridge.service.api.routes.retrieve as retrieve

    release = threading.Event()
    real_search = retrieve.search

    def slow_search(*args: Any) -> bytes:
        release.wait(10)
        return real_search(*args)

    monkeypatch.setattr(retrieve, "search", slow_search)
    monkeypatch.setattr(retrieve, "inline", lambda *args: False)  # into the thread pool
    with TestClient(create_app(settings_for(bundle_one, request_timeout=0.3))) as client:
        started = time.monotonic()
        response = client.get("/retrieve", params={"from": "a", "to": "b", "id": "a-1", "k": 1})
        assert time.monotonic() - started < 3
        problem(response, 504, "request-timeout")
        release.set()
        monkeypatch.setattr(retrieve, "search", real_search)
        assert client.get("/retrieve", params={"from": "a", "to": "b", "id": "a-1", "k": 1}).status_code == 200


def test_every_error_has_one_shape_and_its_request_id_is_in_the_access_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    requests = [
        client.build_request("POST", "/translate", json={"from": "a", "to": "zz", "vector": [0.1] * DIM}),
        client.build_request("POST", "/translate", json={"from": "a", "to": "b", "vector": [0.1] * 3}),
        client.build_request("POST", "/translate", content=b"{not json", headers={"content-type": "application/json"}),
        client.build_request("POST", "/translate", content=b"x", headers={"content-type": "text/plain"}),
        client.build_request("GET", "/route", params={"from": "a"}),
        client.build_request("GET", "/nowhere"),
        client.build_request("DELETE", "/translate"),
        client.build_request("POST", "/admin/reload", json={}),  # the admin scope is closed without an admin key
    ]
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        responses = [client.send(r) for r in requests]
    logged = {}
    for record in caplog.records:
        if record.name == ACCESS_LOGGER:
            line = json.loads(record.getMessage())
            logged[line["request_id"]] = line
    for response in responses:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert PROBLEM_KEYS <= body.keys() and response.headers["content-type"] == "application/problem+json"
        line = logged[body["request_id"]]
        assert line["status"] == response.status_code and line["path"] == body["instance"]
        assert {"ts", "method", "ms", "bytes", "client"} <= line.keys()


def test_a_caller_request_id_is_kept(client: TestClient) -> None:
    response = client.post("/translate", json={"from": "a", "to": "b"}, headers={"x-request-id": "abc-123"})
    assert problem(response, 422, "empty-batch")["request_id"] == "abc-123"


def test_an_unexpected_failure_answers_500_without_a_stack_trace(bundle_one: Path) -> None:
    app: FastAPI = create_app(settings_for(bundle_one))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals at /srv/app.py line 12")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        body = problem(response, 500, "internal-error")
        assert "secret" not in response.text and "RuntimeError" not in response.text
        assert body["request_id"]
