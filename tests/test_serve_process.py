"""`latent-bridge serve` as a real process on a free loopback port: it serves, and it refuses a bad bundle."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import make_dataset
from latent_bridge.training.train import train
from serverprocess import command, free_port, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    data = make_dataset(root / "data", n=200, dims={"a": 8, "b": 8}, relation="rotation", noise=0.1)
    train(TrainConfig(data=data, out=root / "bundle", kind="ridge", progress=False))
    return root / "bundle"


def serve(args: list[str], env: dict[str, str]) -> Iterator[str]:
    """Start the server, yield its base URL once ready, then stop it with SIGTERM (graceful shutdown)."""
    with running_server(None, env, args) as server:
        yield server.base
        # uvicorn re-raises the signal after a graceful shutdown; its supervisor (workers > 1) exits 0
        assert server.stop() in (0, -signal.SIGTERM)


def test_the_server_process_serves_a_bundle(bundle: Path) -> None:
    # the bundle comes from the environment, the port from the command line
    for base in serve([], {"LATENT_BRIDGE_BUNDLE": str(bundle), "LATENT_BRIDGE_ACCESS_LOG": "false"}):
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/healthz").json() == {"status": "ok"}
            assert client.get("/readyz").json()["bundle"] == "bundle"
            body = client.post("/translate", json={"from": "a", "to": "b", "vector": [0.5] * 8}).json()
            assert body["path"] == ["a", "b"] and len(body["vectors"][0]) == 8
            hits = client.get("/retrieve", params={"from": "a", "to": "b", "id": "a-3", "k": 1}).json()
            assert hits["results"][0]["hits"][0]["id"] == "b-3"
            bad = client.post("/translate", json={"from": "a", "to": "b", "vector": [0.5] * 3})
            assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
            assert (
                'http_requests_total{handler="/translate",method="POST",status="422"}'
                in client.get("/metrics").text
            )


def test_several_workers(bundle: Path) -> None:
    for base in serve(["--bundle", str(bundle), "--workers", "2"], {"LATENT_BRIDGE_LOG_LEVEL": "warning"}):
        with httpx.Client(base_url=base, timeout=10) as client:
            for _ in range(4):
                assert (
                    client.post("/translate", json={"from": "b", "to": "a", "vector": [0.1] * 8}).status_code
                    == 200
                )


def test_a_bad_bundle_stops_the_server_with_one_line(bundle: Path, tmp_path: Path) -> None:
    damaged = Path(shutil.copytree(bundle, tmp_path / "damaged"))
    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["modalities"][0]["dim"] = 9
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    result = subprocess.run(
        [*command(), "serve", "--bundle", str(damaged), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bundle refused" in lines[0] and "translators/a__b.onnx" in lines[0] and "dimension 9" in lines[0]


def test_invalid_settings_stop_the_server_with_one_line(bundle: Path) -> None:
    result = subprocess.run(
        [*command(), "serve", "--bundle", str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"LATENT_BRIDGE_MAX_BATCH": "0"},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "latent-bridge: invalid setting max_batch (LATENT_BRIDGE_MAX_BATCH): "
        "Input should be greater than or equal to 1"
    )


def test_the_load_benchmark_runs_briefly(bundle: Path, tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "bench" / "load.py"
    report = tmp_path / "load.json"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--bundle",
            str(bundle),
            "--seconds",
            "0.3",
            "--slice",
            "0.3",
            "--max-requests",
            "200",
            "--connections",
            "2",
            "--batch",
            "16",
            "--json",
            str(report),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(report.read_text())["scenarios"]
    # anchor ping and echo, healthz, translate 1 and 16 (JSON, base64), retrieve by vector and id both ways
    assert len(rows) == 10
    assert all(row["errors"] == 0 and row["requests"] > 0 for row in rows), rows
