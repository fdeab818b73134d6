"""Attacks of the security review (issue #10), each reproduced against a real `latent-bridge serve` process:
the attack is sent over a socket and the test checks the server refuses it cheaply and keeps serving."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from bundle_edits import edit_manifest, rehash
from reliability_bundles import DIM
from serverprocess import HOST, Server, command, free_port, rss_mib, running_server
from testsettings import ADMIN_KEY

pytestmark = pytest.mark.slow
VECTOR = [0.25] * DIM
ADMIN = {"x-api-key": ADMIN_KEY}
ADMIN_ENV = {"LATENT_BRIDGE_ADMIN_KEY": ADMIN_KEY}


def admin_env(models: Path) -> dict[str, str]:
    """An admin key, and ``models`` as the folder reload may name bundles in."""
    return ADMIN_ENV | {"LATENT_BRIDGE_MODELS_DIR": str(models)}


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
    assert started.returncode == 2 and len(lines) == 1, started.stderr
    assert "bundle refused" in lines[0] and str(evil / "translators/a__b.onnx") in lines[0]
    assert "external data" in lines[0]
    with running_server(bundle_one, env=admin_env(evil.parent), cwd=workdir) as server:
        with httpx.Client(base_url=server.base, headers=ADMIN, timeout=30) as http:
            refused = http.post("/admin/reload", json={"bundle": str(evil)})
            assert refused.status_code == 422 and "external data" in refused.json()["detail"], refused.text
            assert http.get("/readyz").json()["bundle"] == bundle_one.name


def _unreadable(b: Path) -> str:
    (b / "translators/b__a.onnx").chmod(0)
    return "translators/b__a.onnx"


def _name_too_long(b: Path) -> str:
    name = "translators/" + "x" * 300 + ".onnx"
    edit_manifest(b, lambda m: m["edges"][0].update(file=name))
    return name


def _not_utf8(b: Path) -> str:
    path = b / "manifest.json"
    path.write_bytes(path.read_bytes().replace(b'"one"', b'"\xff\xfe"', 1))
    return "manifest.json"


def _deeply_nested(b: Path) -> str:
    path = b / "manifest.json"
    text = path.read_text()
    path.write_text(text.replace('"training": {', '"training": {"deep": ' + "[" * 100_000 + "]" * 100_000 + ",", 1))
    return "manifest.json"


def _symlink_loop(b: Path) -> str:
    (b / "translators/a__b.onnx").unlink()
    (b / "translators/a__b.onnx").symlink_to("a__b.onnx")
    return "translators/a__b.onnx"


LOAD_FAILURES = {
    "permission-denied": _unreadable,
    "name-too-long": _name_too_long,
    "not-utf8-manifest": _not_utf8,
    "deeply-nested-manifest": _deeply_nested,
    "symlink-loop": _symlink_loop,
}
# root reads any file: drop the capability that lets it, so a mode-000 file is unreadable for the server too
AS_USER = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]
SERVE_PREFIX = AS_USER if os.geteuid() == 0 and shutil.which("setpriv") else []


@pytest.mark.parametrize("failure", sorted(LOAD_FAILURES))
def test_every_load_failure_is_a_one_line_refusal_naming_the_file(
    bundle_one: Path, bundle_copy: Callable[[Path], Path], failure: str
) -> None:
    bad = bundle_copy(bundle_one)
    file = LOAD_FAILURES[failure](bad)
    started = subprocess.run(
        [*SERVE_PREFIX, *command(), "serve", "--bundle", str(bad), "--host", HOST, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = started.stderr.strip().splitlines()
    assert started.returncode == 2 and len(lines) == 1, started.stderr[-3000:]
    assert lines[0].startswith("latent-bridge: bundle refused: ") and file in lines[0], lines[0]
    with running_server(bundle_one, env=admin_env(bad.parent), prefix=SERVE_PREFIX) as server:
        with httpx.Client(base_url=server.base, headers=ADMIN, timeout=30) as http:
            refused = http.post("/admin/reload", json={"bundle": str(bad)})
            assert refused.status_code == 422, refused.text[-2000:]
            assert refused.json()["type"].endswith("bundle-refused") and file in refused.json()["detail"]
            assert http.get("/readyz").json()["bundle"] == bundle_one.name
            assert "connection" not in refused.headers  # the connection stays open for the next request
        assert "Traceback" not in server.log()


def test_a_500_says_connection_close(bundle_one: Path) -> None:
    """Starlette re-raises after the 500 and uvicorn closes the connection: the answer must say so."""
    import uvicorn
    from latent_bridge.service.api.app import create_app
    from testsettings import settings_for

    app = create_app(settings_for(bundle_one))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=HOST, port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with socket.create_connection((HOST, port), timeout=10) as conn:
            conn.sendall(f"GET /boom HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        head = reply.split(b"\r\n\r\n", 1)[0].lower()
        assert head.startswith(b"http/1.1 500") and b"\r\nconnection: close" in head, head
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_oversized_files_are_refused_before_they_are_read(
    bundle_one: Path, bundle_copy: Callable[[Path], Path]
) -> None:
    """A 3 GiB sparse .onnx with a wrong sha256, and a 400 MB manifest: refused by size, at once."""
    huge_model = bundle_copy(bundle_one)
    with (huge_model / "translators/a__b.onnx").open("r+b") as f:
        f.truncate(3 << 30)
    huge_manifest = Path(shutil.copytree(bundle_one, huge_model.parent / "huge-manifest"))
    with (huge_manifest / "manifest.json").open("ab") as f:
        f.truncate(400 << 20)  # trailing zero bytes: sparse, costs no disk
    with running_server(bundle_one, env=admin_env(huge_model.parent)) as server:
        with httpx.Client(base_url=server.base, headers=ADMIN, timeout=60) as http:
            before = rss_mib(server.process.pid)
            for bad, file in ((huge_model, "translators/a__b.onnx"), (huge_manifest, "manifest.json")):
                started = time.monotonic()
                refused = http.post("/admin/reload", json={"bundle": str(bad)})
                assert time.monotonic() - started < 2
                assert refused.status_code == 422, refused.text
                assert str(bad / file) in refused.json()["detail"] and "over the limit" in refused.json()["detail"]
            assert rss_mib(server.process.pid) < before + 20


def strict_json(response: httpx.Response) -> object:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in a JSON answer: {response.text[:200]}")

    return json.loads(response.text, parse_constant=refuse)


def test_answers_are_finite_or_refused(server: Server) -> None:
    """[3e38] * d is finite float32, but overflows along a route: never NaN/Infinity in JSON, never an
    empty hit list in silence."""
    huge = [3e38] * DIM
    with httpx.Client(base_url=server.base, timeout=10) as http:
        for body in (
            {"from": "a", "to": "b", "vector": huge, "normalize": False},
            {"from": "a", "to": "b", "vector": huge},
            {"from": "a", "to": "b", "vector": huge, "confidence": True},
            {"from": "a", "to": "b", "vector": huge, "encoding": "float", "normalize": False},
        ):
            answer = http.post("/translate", json=body)
            body_json = strict_json(answer)
            assert answer.status_code in (200, 422), answer.text
            if answer.status_code == 422:
                assert body_json["type"].endswith("non-finite-output")  # type: ignore[index]
        refused = http.post("/retrieve", json={"from": "a", "to": "b", "vector": huge, "k": 3})
        assert refused.status_code == 422 and strict_json(refused)["type"].endswith("non-finite-output")  # type: ignore[index]
        assert http.post("/translate", json={"from": "a", "to": "b", "vector": huge}).status_code == 422


def big_translator(bundle: Path, hidden: int) -> None:
    """a→b as input·W1·W2 with a wide hidden layer (8 × hidden and hidden × 8 floats): a heavy model."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((DIM, hidden), dtype=np.float32) / hidden, "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((hidden, DIM), dtype=np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["output"])],
        "big",
        [helper.make_tensor_value_info("input", 1, ["n", DIM])],
        [helper.make_tensor_value_info("output", 1, ["n", DIM])],
        initializer=[w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (bundle / "translators/a__b.onnx").write_bytes(model.SerializeToString())
    rehash(bundle, "translators/a__b.onnx")


def test_refused_reloads_keep_no_memory(bundle_one: Path, bundle_copy: Callable[[Path], Path]) -> None:
    """A bundle refused late (heavy translators loaded, then a damaged gallery): 20 refusals in a row must
    not grow the server."""
    heavy = bundle_copy(bundle_one)
    big_translator(heavy, hidden=1 << 19)  # 2 × 16 MiB of weights
    path = heavy / "index/b.faiss"
    path.write_bytes(path.read_bytes()[:100])
    rehash(heavy, "index/b.faiss")
    with running_server(bundle_one, env=admin_env(heavy.parent)) as server:
        with httpx.Client(base_url=server.base, headers=ADMIN, timeout=60) as http:
            sizes = []
            for _ in range(20):
                refused = http.post("/admin/reload", json={"bundle": str(heavy)})
                assert refused.status_code == 422 and "index/b.faiss" in refused.json()["detail"], refused.text
                sizes.append(rss_mib(server.process.pid))
    assert sizes[-1] < sizes[1] * 1.1, sizes


def test_reload_names_only_bundles_under_the_models_folder(
    bundle_one: Path, bundle_two: Path, bundles_root: Path, tmp_path: Path
) -> None:
    """Reload used to load any server path, and its errors told which paths exist."""
    outside = Path(shutil.copytree(bundle_two, tmp_path / "outside"))  # a valid bundle, outside the folder
    link = bundles_root / f"{tmp_path.name}-link-out"
    link.symlink_to(outside)
    with running_server(bundle_one, env=ADMIN_ENV) as server:
        with httpx.Client(base_url=server.base, headers=ADMIN, timeout=30) as http:
            details = {}
            names = (str(outside), str(tmp_path / "no-such-folder"), "/etc", "../../etc", "../../no-such", link.name)
            for name in names:
                refused = http.post("/admin/reload", json={"bundle": name})
                assert refused.status_code == 422, (name, refused.text)
                details[name] = refused.json()["detail"].replace(name, "<name>")
            assert len(set(details.values())) == 1, details  # existing or not: the same words
            assert http.get("/readyz").json()["bundle"] == "one"
            assert http.post("/admin/reload", json={"bundle": bundle_two.name}).json()["bundle"] == "two"
            assert http.post("/admin/reload", json={"bundle": str(bundle_one)}).json()["bundle"] == "one"


def _reply_or_close(conn: socket.socket, timeout: float) -> bytes:
    """What the server sends before closing (b"" if it closes without a word); b"open" if still open."""
    conn.settimeout(timeout)
    reply = b""
    try:
        while chunk := conn.recv(4096):
            reply += chunk
    except TimeoutError:
        return b"open"
    except OSError:
        pass
    return reply


def test_slow_headers_huge_headers_and_connection_floods_are_cut_off(bundle_one: Path) -> None:
    """3,000 connections with unfinished headers stayed open for minutes; 20 MB headers were buffered."""
    env = {"LATENT_BRIDGE_HEADER_TIMEOUT": "1", "LATENT_BRIDGE_MAX_CONNECTIONS": "50"}
    with running_server(bundle_one, env=env) as server:
        before = rss_mib(server.process.pid)
        slow = [socket.create_connection((HOST, server.port), timeout=10) for _ in range(120)]
        for conn in slow:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finished
        started = time.monotonic()
        replies = [_reply_or_close(conn, 5) for conn in slow]
        assert time.monotonic() - started < 5
        busy = [r for r in replies if r.startswith(b"HTTP/1.1 503")]
        timed_out = [r for r in replies if r.startswith(b"HTTP/1.1 408")]
        assert len(busy) >= 60 and len(busy) + len(timed_out) == len(slow), replies[:3]
        for conn in slow:
            conn.close()
        assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200

        huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * (1 << 20) + b"\r\n"
        for _ in range(10):
            with socket.create_connection((HOST, server.port), timeout=10) as conn:
                try:
                    for _ in range(20):  # 20 MB of headers, if the server let it
                        conn.sendall(huge)
                except OSError:
                    pass  # cut off: expected
                reply = _reply_or_close(conn, 5)  # the 431, or nothing if a reset overtook it: never left open
                assert reply.startswith(b"HTTP/1.1 431") or reply == b"", reply[:100]
        assert rss_mib(server.process.pid) < before + 30
        ok = httpx.post(f"{server.base}/translate", json={"from": "a", "to": "b", "vector": VECTOR}, timeout=10)
        assert ok.status_code == 200


def loop_translator(bundle: Path, iterations: int) -> None:
    """a→b as an ONNX Loop adding zero ``iterations`` times: right shapes, any cost one likes."""
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]), helper.make_node("Add", ["x", "zero"], ["x_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, None),
        ],
        [
            helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x_out", TensorProto.FLOAT, None),
        ],
        initializer=[numpy_helper.from_array(np.zeros((), np.float32), "zero")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["n", "cond", "input"], ["output"], body=body)],
        "slow",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", DIM])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", DIM])],
        initializer=[
            numpy_helper.from_array(np.array(iterations, np.int64), "n"),
            numpy_helper.from_array(np.array(True), "cond"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    (bundle / "translators/a__b.onnx").write_bytes(model.SerializeToString())
    rehash(bundle, "translators/a__b.onnx")


def _worst_probe_while(server: Server, work: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    """Run ``work`` in a thread; meanwhile probe /healthz; the slowest probe's seconds and work's answer."""
    answer: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answer.append(work()))
    thread.start()
    worst = 0.0
    while thread.is_alive():
        probe = time.monotonic()
        assert httpx.get(f"{server.base}/healthz", timeout=30).status_code == 200
        worst = max(worst, time.monotonic() - probe)
    thread.join()
    return worst, answer[0]


def test_a_slow_model_neither_holds_up_a_reload_nor_blocks_the_event_loop(
    bundle_one: Path, bundle_copy: Callable[[Path], Path]
) -> None:
    """An ONNX Loop made warm-up take 11.5 s under the reload lock, and one request blocked /healthz 2 s."""
    too_slow = bundle_copy(bundle_one)
    loop_translator(too_slow, iterations=50_000_000)  # about a minute per call: stopped at LOAD_TIMEOUT
    slow = bundle_copy(bundle_one)
    loop_translator(slow, iterations=100_000)  # a fraction of a second per call
    # 3 s: the slow copy's warm-up (a fraction of a second quiet) must fit even on a loaded 2-core machine
    env = admin_env(slow.parent.parent) | {"LATENT_BRIDGE_LOAD_TIMEOUT": "3"}  # holds both copies
    with running_server(bundle_one, env=env) as server:
        with httpx.Client(base_url=server.base, headers=ADMIN, timeout=60) as http:
            started = time.monotonic()
            refused = http.post("/admin/reload", json={"bundle": str(too_slow)})
            assert refused.status_code == 422 and "took longer than 3 s" in refused.json()["detail"], refused.text
            assert time.monotonic() - started < 8  # refused at the timeout, not after the whole warm-up
            assert http.post("/admin/reload", json={"bundle": str(slow)}).status_code == 200
            body = {"from": "a", "to": "b", "vector": VECTOR}  # 8 numbers: small by count, slow by cost
            took = time.monotonic()
            worst, answer = _worst_probe_while(server, lambda: http.post("/translate", json=body))
            took = time.monotonic() - took
            assert answer.status_code == 200, answer.text
            assert worst < took / 2, (worst, took)


def test_long_values_are_not_echoed_and_floats_are_strict(server: Server) -> None:
    """A 1 MB modality name or a 40 kB id was quoted back whole; "0.1" and true passed as floats."""
    with httpx.Client(base_url=server.base, timeout=10) as http:
        name = http.post("/translate", json={"from": "m" * 1_000_000, "to": "b", "vector": VECTOR})
        assert name.status_code == 404 and len(name.content) < 2048 and "1000000 characters" in name.text
        item = http.get("/retrieve", params={"from": "a", "to": "b", "id": "i" * 40_000})
        assert item.status_code == 422 and len(item.content) < 2048, len(item.content)  # over max_id_bytes
        for wrong in (["0.1"] * DIM, [True] * DIM):
            refused = http.post("/translate", json={"from": "a", "to": "b", "vector": wrong})
            assert refused.status_code == 422, refused.text
        assert http.post("/translate", json={"from": "a", "to": "b", "vector": [1] * DIM}).status_code == 200


def test_readyz_can_keep_the_bundle_to_itself(bundle_one: Path) -> None:
    with running_server(bundle_one, env={"LATENT_BRIDGE_READYZ_DETAILS": "false"}) as server:
        assert httpx.get(f"{server.base}/readyz").json() == {"status": "ready"}
