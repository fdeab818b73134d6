"""Attacks of the security review (issue #10), each reproduced against a real `latent-bridge serve` process:
the attack is sent over a socket and the test checks the server refuses it cheaply and keeps serving."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from reliability_bundles import DIM
from serverprocess import Server, running_server

pytestmark = pytest.mark.slow
VECTOR = [0.25] * DIM


@pytest.fixture(scope="module")
def server(bundle_one: Path) -> Iterator[Server]:
    with running_server(bundle_one, env={"LATENT_BRIDGE_ACCESS_LOG": "false"}) as server:
        yield server


def test_a_long_pinned_path_is_refused_at_once_and_blocks_nothing(server: Server) -> None:
    """100,000 hops a→b→a→… (1 MB): today's code ran every hop on the event loop."""
    body = json.dumps({"from": "a", "to": "b", "vector": VECTOR, "path": ["a", "b"] * 50_000}).encode()
    answer: dict[str, httpx.Response] = {}

    def attack() -> None:
        answer["r"] = httpx.post(
            f"{server.base}/translate", content=body, headers={"content-type": "application/json"}, timeout=60
        )

    started = time.monotonic()
    thread = threading.Thread(target=attack)
    thread.start()
    worst = 0.0
    while thread.is_alive() and time.monotonic() - started < 60:
        probe = time.monotonic()
        assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200
        worst = max(worst, time.monotonic() - probe)
    thread.join()
    assert time.monotonic() - started < 3
    assert answer["r"].status_code == 422, answer["r"].text[:300]
    assert len(answer["r"].content) < 4096  # the path is not echoed back whole
    assert worst < 1.0
    for path in (["a", "b", "a", "b"], ["a", "a", "b"], ["a", "b", "b"]):  # repeats: not a simple path
        refused = httpx.post(f"{server.base}/translate", json={"from": "a", "to": "b", "vector": VECTOR, "path": path})
        assert refused.status_code == 422 and "simple" in refused.json()["detail"], refused.text
    ok = httpx.post(f"{server.base}/translate", json={"from": "a", "to": "b", "vector": VECTOR, "path": ["a", "b"]})
    assert ok.status_code == 200 and ok.json()["path"] == ["a", "b"]


def test_metric_labels_come_from_a_bounded_set(server: Server) -> None:
    """Distinct methods and pinned paths must not each become a permanent Prometheus label."""
    before = len(httpx.get(f"{server.base}/metrics").content)
    with httpx.Client(base_url=server.base, timeout=10) as http:
        for i in range(200):
            http.request(f"X{i:03d}", "/translate")  # any token is a valid HTTP method (h11 takes it)
            http.post("/translate", json={"from": "a", "to": "b", "vector": VECTOR, "path": ["a", "b"] * (i + 2)})
            http.post("/retrieve", json={"from": "a", "to": "b", "vector": VECTOR, "path": ["a"] + ["b", "a"] * i})
        metrics = http.get("/metrics").text
    assert "X000" not in metrics
    assert "a>b>a" not in metrics
    assert len(metrics.encode()) < before + 8192, len(metrics)

