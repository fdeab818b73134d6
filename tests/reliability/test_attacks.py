"""Attacks of the security review (issue #10), each reproduced against a real `latent-bridge serve` process:
the attack is sent over a socket and the test checks the server refuses it cheaply and keeps serving."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from bundle_edits import rehash
from reliability_bundles import API_KEY, DIM
from serverprocess import HOST, Server, command, free_port, running_server

pytestmark = pytest.mark.slow
VECTOR = [0.25] * DIM
ADMIN = {"x-api-key": API_KEY}
ADMIN_ENV = {"LATENT_BRIDGE_API_KEY": API_KEY}


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


def external_data_translator(bundle: Path, location: str) -> None:
    """Replace a→b by a 1-node model whose weight is 'stored' as external data at ``location``, then rehash
    the manifest so every other check passes (the sha256 covers only the .onnx file)."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[DIM, DIM])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(DIM * DIM * 4))):
        weight.external_data.add(key=key, value=value)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["output"])],
        "leak",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", DIM])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", DIM])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (bundle / "translators/a__b.onnx").write_bytes(model.SerializeToString())
    rehash(bundle, "translators/a__b.onnx")


def test_onnx_external_data_is_refused(bundle_one: Path, bundle_copy: Callable[[Path], Path], tmp_path: Path) -> None:
    """onnxruntime resolves external data of a model given as bytes against the working directory: a bundle
    could make /translate return any file there (a `../` location is refused by onnxruntime itself)."""
    workdir = tmp_path / "workdir"
    workdir.mkdir()
    (workdir / "secret.bin").write_bytes(bytes(range(256)))
    evil = bundle_copy(bundle_one)
    external_data_translator(evil, "secret.bin")
    started = subprocess.run(
        [*command(), "serve", "--bundle", str(evil), "--host", HOST, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
    )
    lines = started.stderr.strip().splitlines()
    assert started.returncode == 1 and len(lines) == 1, started.stderr
    assert "bundle refused" in lines[0] and str(evil / "translators/a__b.onnx") in lines[0]
    assert "external data" in lines[0]
    with running_server(bundle_one, env=ADMIN_ENV, cwd=workdir) as server:
        with httpx.Client(base_url=server.base, headers=ADMIN, timeout=30) as http:
            refused = http.post("/admin/reload", json={"bundle": str(evil)})
            assert refused.status_code == 422 and "external data" in refused.json()["detail"], refused.text
            assert http.get("/readyz").json()["bundle"] == bundle_one.name
