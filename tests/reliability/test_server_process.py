"""Against a real `latent-bridge serve` process: a corrupt bundle stops it at start naming the file;
SIGTERM lets a request in flight finish before a clean exit; SIGHUP and POST /admin/reload swap the
bundle while requests keep succeeding; the JSON access log carries the response's request id."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from latent_bridge.service.bundle.loader import load_bundle
from reliability_bundles import CORRUPTIONS, DIM
from serverprocess import HOST, command, free_port, running_server
from testsettings import ADMIN_KEY, API_KEY

pytestmark = pytest.mark.slow
AUTH = {"x-api-key": ADMIN_KEY}  # opens the read routes too
KEYED = {"LATENT_BRIDGE_API_KEY": API_KEY, "LATENT_BRIDGE_ADMIN_KEY": ADMIN_KEY}
BODY = json.dumps({"from": "a", "to": "b", "vector": [0.25] * DIM}).encode()


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_bundle_stops_the_server_at_start(
    bundle_one: Path, bundle_copy: Callable[[Path], Path], corruption: str
) -> None:
    damage, file, reason = CORRUPTIONS[corruption]
    bad = bundle_copy(bundle_one)
    damage(bad)
    result = subprocess.run(
        [*command(), "serve", "--bundle", str(bad), "--host", HOST, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bundle refused" in lines[0] and str(bad / file) in lines[0] and reason in lines[0]


def test_sigterm_drains_a_request_in_flight(bundle_one: Path) -> None:
    with running_server(bundle_one) as server:
        with socket.create_connection((HOST, server.port), timeout=10) as conn:
            head = (
                f"POST /translate HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(BODY)}\r\n\r\n"
            ).encode()
            conn.sendall(head + BODY[:10])  # the request is in flight: half its body sent
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.process.poll() is None, "exited with a request in flight"
            with pytest.raises(httpx.TransportError):  # no new connections while draining
                httpx.get(f"{server.base}/healthz", timeout=2)
            conn.sendall(BODY[10:])
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["count"] == 1
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
        assert "Traceback" not in server.log()


def test_reload_and_sighup_under_load_lose_nothing(bundle_one: Path, bundle_two: Path, tmp_path: Path) -> None:
    current = tmp_path / "current"  # a deployment points a symlink at the new bundle, then sends SIGHUP
    current.symlink_to(bundle_one)
    one, two = load_bundle(bundle_one), load_bundle(bundle_two)
    failures: list[str] = []
    count = 0
    stop = threading.Event()

    def load(base: str) -> None:
        nonlocal count
        with httpx.Client(base_url=base, headers=AUTH, timeout=10) as http:
            while not stop.is_set():
                try:
                    response = http.post("/translate", content=BODY, headers={"content-type": "application/json"})
                    if response.status_code != 200:
                        failures.append(f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                count += 1

    models = {"LATENT_BRIDGE_MODELS_DIR": str(bundle_two.parent)}  # reload names bundles there
    with running_server(current, env=KEYED | models) as server:
        threads = [threading.Thread(target=load, args=(server.base,)) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            with httpx.Client(base_url=server.base, headers=AUTH, timeout=30) as http:
                assert http.get("/readyz").json()["fingerprint"] == one.fingerprint
                reloaded = http.post("/admin/reload", json={"bundle": str(bundle_two)})
                assert reloaded.status_code == 200 and reloaded.json()["fingerprint"] == two.fingerprint
                refused = http.post("/admin/reload", json={"bundle": str(tmp_path / "nope")})
                assert refused.status_code == 422 and http.get("/readyz").json()["bundle"] == "two"
                current.unlink()
                current.symlink_to(bundle_one)
                server.process.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 20
                while http.get("/readyz").json()["fingerprint"] != one.fingerprint:
                    assert time.monotonic() < deadline, "SIGHUP did not reload"
                    time.sleep(0.1)
                assert server.process.poll() is None
                metrics = http.get("/metrics").text
                assert 'latent_bridge_reloads_total{result="ok"} 2.0' in metrics
                assert 'latent_bridge_reloads_total{result="refused"} 1.0' in metrics
                assert f'fingerprint="{one.fingerprint}"' in metrics
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        assert server.stop() in (0, -signal.SIGTERM)
    assert count > 20 and not failures, (count, failures[:5])


def test_the_access_log_is_json_with_the_request_id(bundle_one: Path) -> None:
    with running_server(bundle_one, env={"LATENT_BRIDGE_ACCESS_LOG": "true"}) as server:
        bad = httpx.post(f"{server.base}/translate", json={"from": "a", "to": "nope", "vector": [1.0]}, timeout=10)
        assert bad.status_code == 404
        request_id = bad.json()["request_id"]
        assert bad.headers["x-request-id"] == request_id
        server.stop()
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["request_id"] == request_id]
    assert len(mine) == 1 and mine[0]["status"] == 404 and mine[0]["path"] == "/translate"
