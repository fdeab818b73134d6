"""Run-time writes: PUT/DELETE /galleries/{m}/items are durable before the answer (SIGKILL right after loses
nothing), searches see them at once and keep running meanwhile, and `compact` folds them into a bundle."""

from __future__ import annotations

import base64
import json
import shutil
import signal
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from gallerycorpus import API_KEY, CORPUS_ROWS, Served, settings_for
from latent_bridge.cli import main
from latent_bridge.service.api.app import create_app
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.galleries.writelog import WriteLog, writes_dir
from serverprocess import running_server

KEYED = {"X-API-Key": API_KEY}
RNG = np.random.default_rng(7)
NEW = RNG.standard_normal((50, 16)).astype(np.float32)


def b64(x: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(x, "<f4").tobytes()).decode()


def top_ids(client: httpx.Client | TestClient, vector: np.ndarray, k: int = 3) -> list[str]:
    body = {"from": "c", "to": "c", "vector": vector.tolist(), "k": k}
    response = client.post("/retrieve", json=body, headers=KEYED)
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["results"][0]["hits"]]


def write_some(client: httpx.Client | TestClient) -> None:
    """50 new items (base64), a replaced base item, one base and one new item deleted."""
    ids = [f"new-{i}" for i in range(50)]
    payload = [{"title": f"new {i}", "shelf": "new"} for i in range(50)]
    put = client.put("/galleries/c/items", headers=KEYED,
                     json={"ids": ids, "vectors": b64(NEW), "encoding": "base64", "payload": payload})
    assert put.status_code == 200 and put.json()["count"] == CORPUS_ROWS + 50, put.text
    replace = {"ids": ["doc-7"], "vectors": [(-NEW[0]).tolist()], "payload": [{"title": "replaced"}]}
    assert client.put("/galleries/c/items", headers=KEYED, json=replace).json()["count"] == CORPUS_ROWS + 50
    gone = client.request("DELETE", "/galleries/c/items", headers=KEYED, json={"ids": ["doc-5", "new-3", "nope"]})
    assert gone.status_code == 200 and gone.json()["written"] == 2 and gone.json()["missing"] == ["nope"]


def assert_written(client: httpx.Client | TestClient) -> None:
    assert client.get("/galleries/c", headers=KEYED).json()["count"] == CORPUS_ROWS + 48
    item = client.get("/galleries/c/items/new-10", headers=KEYED).json()
    assert item["payload"] == {"title": "new 10", "shelf": "new"}
    np.testing.assert_allclose(item["vector"], NEW[10], rtol=1e-6)
    assert client.get("/galleries/c/items/doc-7", headers=KEYED).json()["payload"]["title"] == "replaced"
    for deleted in ("doc-5", "new-3"):
        assert client.get(f"/galleries/c/items/{deleted}", headers=KEYED).status_code == 404
    assert top_ids(client, NEW[10])[0] == "new-10"
    assert top_ids(client, -NEW[0])[0] == "doc-7"
    assert "new-3" not in top_ids(client, NEW[3], k=10)


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill_and_deletes_stay_deleted(writable: Path) -> None:
    doc5 = np.load(writable / "index/c.vectors.npy")[5]
    env = {"LATENT_BRIDGE_ADMIN_KEY": API_KEY}
    with running_server(writable, env=env) as server, httpx.Client(base_url=server.base) as client:
        write_some(client)
        server.process.send_signal(signal.SIGKILL)  # right after the last acknowledged write
        server.process.wait(timeout=10)
    with running_server(writable, env=env) as server, httpx.Client(base_url=server.base) as client:
        assert_written(client)
        assert "doc-5" not in top_ids(client, doc5, k=10)


@pytest.mark.slow
def test_searches_keep_running_during_writes_and_read_their_writes(writable: Path) -> None:
    env = {"LATENT_BRIDGE_ADMIN_KEY": API_KEY}
    failures: list[str] = []
    stop = threading.Event()

    def search_all_along(base: str) -> None:
        with httpx.Client(base_url=base) as searcher:
            while not stop.is_set():
                response = searcher.post("/retrieve", headers=KEYED,
                                         json={"from": "a", "to": "c", "vector": [0.1] * 16, "k": 5})
                if response.status_code != 200:
                    failures.append(response.text)

    with running_server(writable, env=env) as server, httpx.Client(base_url=server.base) as client:
        searcher = threading.Thread(target=search_all_along, args=(server.base,))
        searcher.start()
        try:
            for i in range(20):
                vector = RNG.standard_normal(16).astype(np.float32)
                body = {"ids": [f"w-{i}"], "vectors": [vector.tolist()]}
                put = client.put("/galleries/c/items", headers=KEYED, json=body)
                assert put.status_code == 200, put.text
                assert top_ids(client, vector, k=1) == [f"w-{i}"]  # seen by the very next search
        finally:
            stop.set()
            searcher.join()
    assert failures == []


def test_a_torn_last_record_is_cut_off_and_the_rest_replayed(writable: Path) -> None:
    with TestClient(create_app(settings_for(writable, admin_key=API_KEY))) as client:
        write_some(client)
    log = writes_dir(writable) / "c.log"
    whole = log.stat().st_size
    with log.open("ab") as f:
        f.write(b"\x40\x00\x00\x00\x01\x02")  # a frame header promising 64 bytes, then the crash
    with TestClient(create_app(settings_for(writable, admin_key=API_KEY))) as client:
        assert_written(client)
    assert log.stat().st_size == whole


def test_a_damaged_record_before_the_end_refuses_the_bundle(writable: Path) -> None:
    with TestClient(create_app(settings_for(writable, admin_key=API_KEY))) as client:
        write_some(client)
    log = writes_dir(writable) / "c.log"
    data = bytearray(log.read_bytes())
    data[200] ^= 0xFF
    log.write_bytes(bytes(data))
    with pytest.raises(Exception, match=r"c\.log, byte \d+: checksum mismatch"):
        load_bundle(writable)


def test_writes_are_read_back_and_searched_at_once(writable_served: Served) -> None:
    bundle, backend = writable_served
    with TestClient(create_app(settings_for(bundle, admin_key=API_KEY, **backend))) as client:
        write_some(client)
        assert_written(client)


def test_writes_refuse_bad_input(writable_served: Served) -> None:
    writable, backend = writable_served
    with TestClient(create_app(settings_for(writable, admin_key=API_KEY, **backend))) as client:
        def put(body: dict[str, object]) -> httpx.Response:
            return client.put("/galleries/c/items", headers=KEYED, json=body)

        assert put({"ids": ["x"], "vectors": [[0.0] * 8]}).json()["type"].endswith("dimension-mismatch")
        assert put({"ids": ["x", "x"], "vectors": [[0.0] * 16] * 2}).json()["type"].endswith("invalid-write")
        assert put({"ids": ["x"], "vectors": [[0.0] * 16] * 2}).json()["type"].endswith("invalid-write")
        unknown = put({"ids": ["x"], "vectors": [[0.0] * 16], "payload": [{"colour": "red"}]})
        assert unknown.status_code == 422 and unknown.json()["type"].endswith("unknown-payload-column")
        nan = b64(np.full((1, 16), np.nan, np.float32))
        assert put({"ids": ["x"], "vectors": nan, "encoding": "base64"}).json()["type"].endswith("non-finite-input")
        assert client.get("/galleries/c", headers=KEYED).json()["count"] == CORPUS_ROWS
        assert not (writes_dir(writable) / "c.log").exists() or WriteLog(
            writes_dir(writable) / "c.log", "", "", repair=False
        ).records == 0


def test_writes_need_the_admin_key(writable: Path) -> None:
    """Without an admin key configured the admin scope (writes under /galleries/) is closed, and a reader's
    key never opens it: 403, no write."""
    write = {"ids": ["x"], "vectors": [[0.0] * 16]}
    reader = {"X-API-Key": "a-reader-key-0123456789"}
    with TestClient(create_app(settings_for(writable))) as client:
        assert client.put("/galleries/c/items", json=write).status_code == 403
        assert client.get("/galleries/c").json()["count"] == CORPUS_ROWS
    with TestClient(create_app(settings_for(writable, admin_key=API_KEY, api_key=reader["X-API-Key"]))) as client:
        assert client.put("/galleries/c/items", json=write, headers=reader).status_code == 403
        assert client.get("/galleries/c", headers=reader).json()["count"] == CORPUS_ROWS


def test_compact_folds_the_log_into_a_new_bundle(writable: Path, tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(writable, admin_key=API_KEY))) as client:
        write_some(client)
    out = tmp_path / "compacted"
    main(["compact", "--bundle", str(writable), "--out", str(out), "--quiet"])
    manifest = json.loads((out / "manifest.json").read_text())
    (c,) = [g for g in manifest["galleries"] if g["modality"] == "c"]
    assert c["size"] == CORPUS_ROWS + 48 and c["index_type"] == "hnsw"
    assert manifest["lineage"]["folded_writes"] == {"c": 3}
    for edge in manifest["edges"]:
        assert (out / edge["file"]).read_bytes() == (writable / edge["file"]).read_bytes()
    assert not writes_dir(out).exists()
    with TestClient(create_app(settings_for(out, admin_key=API_KEY))) as client:
        assert_written(client)


def test_a_reload_to_another_bundle_leaves_the_old_bundles_writes_in_its_log(
    writable: Path, indexed: Path
) -> None:
    shutil.copytree(indexed, writable.with_name("other"))  # reload names bundles beside the served one
    with TestClient(create_app(settings_for(writable, admin_key=API_KEY))) as client:
        write_some(client)
        assert client.post("/admin/reload", headers=KEYED, json={"bundle": "other"}).status_code == 200
        assert client.get("/galleries/c", headers=KEYED).json()["count"] == CORPUS_ROWS
        assert client.post("/admin/reload", headers=KEYED, json={"bundle": "bundle"}).status_code == 200
        assert_written(client)
