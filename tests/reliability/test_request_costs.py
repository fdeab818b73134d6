"""Bounded request costs (issues 23 and 24): rows 5, 6, 11, 12, 13 and 14 of the attack review, each sent to a
real `latent-bridge serve` process, must get a 4xx within its deadline while /healthz keeps answering within
100 ms; and CSLS, now read at the rows the search returns, must serve the same scores as the lookup by id.

The bundle: modalities a, b (8-d), edges a↔b; b's ids hold '/' (as the demo's do), its payload a caption, a
media file name (`uri`, one of them with a NUL byte) and an integer `year`; a → b searches fused with CSLS.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import milvuslite
import numpy as np
import pandas as pd
import pytest
from bundle_edits import edit_manifest
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.bundle.manifest import read_manifest, write_manifest
from latent_bridge.service.engine.retrieval import retrieve
from latent_bridge.service.engine.strategy import POOL, csls_hits, reduce_hubness
from latent_bridge.service.errors import InvalidFilter
from latent_bridge.service.galleries.backend import Hit, SearchOptions
from latent_bridge.service.galleries.milvus_gallery import MilvusGallery, shared_link
from latent_bridge.service.galleries.table import build_lookup, hash_id
from reliability_bundles import DIM
from serverprocess import Server, running_server
from testsettings import ADMIN_KEY
from tinybundles import tiny_dataset, train_tiny

pytestmark = pytest.mark.slow
ADMIN = {"x-api-key": ADMIN_KEY}
ENV = {"LATENT_BRIDGE_ADMIN_KEY": ADMIN_KEY, "LATENT_BRIDGE_ACCESS_LOG": "false"}
HEALTHZ_MS = 100  # the slowest /healthz answer allowed while an attack is served
NUL_ITEM = 3  # b's item whose media file name holds a NUL byte


def b_id(i: int) -> str:
    return f"b:shelf/{i % 7}/item-{i}"


@pytest.fixture(scope="module")
def costs_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from latent_bridge.training.bundling.pivots import RouteChoice, with_hubness
    from latent_bridge.training.datasets.reader import load_modality

    root = tmp_path_factory.mktemp("costs")
    data = tiny_dataset(root / "data", {"a": DIM, "b": DIM}, seed=3)
    b = pd.read_parquet(data / "b.parquet")
    b["id"] = [b_id(i) for i in range(len(b))]
    b["uri"] = [f"item-{i}\0.wav" if i == NUL_ITEM else f"item-{i}.wav" for i in range(len(b))]
    b["year"] = np.arange(len(b), dtype=np.int64) + 1900
    b.to_parquet(data / "b.parquet")
    bundle = train_tiny(data, root / "costs")
    media = root / "media"
    media.mkdir()
    for i in range(len(b)):
        (media / f"item-{i}.wav").write_bytes(b"RIFF" + bytes(40))
    edit_manifest(bundle, lambda m: m.update(media=[{"modality": "b", "root": str(media), "column": "uri"}]))
    manifest = read_manifest(bundle)
    (spec,) = [r for r in manifest.routes if r.path == ["a", "b"]]
    fused = RouteChoice(spec.model_copy(update={"strategy": "fused"}), load_modality(data / "a.parquet").embeddings)
    chosen = with_hubness(bundle, load_bundle(bundle), fused)
    assert chosen.hubness == "csls"
    write_manifest(manifest.model_copy(update={"routes": [chosen if r.path == ["a", "b"] else r for r in
                                                          manifest.routes]}), bundle)
    return bundle


@pytest.fixture(scope="module")
def server(costs_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server on a private copy (its write log starts empty)."""
    copy = Path(shutil.copytree(costs_bundle, tmp_path_factory.mktemp("served") / "costs"))
    with running_server(copy, env=ENV) as server:
        warm_up(server)
        yield server


def warm_up(server: Server) -> None:
    """First answers of a fresh process are slow (lazy imports, first connections): not what is measured."""
    with httpx.Client(base_url=server.base, timeout=30) as http:
        for _ in range(5):
            http.get("/healthz")
        http.post("/retrieve", json={"from": "b", "to": "a", "ids": [b_id(0)], "k": 1})
        http.post("/retrieve", json={"from": "b", "to": "a", "ids": ["i" * 2000], "k": 1})


def probed(server: Server, work: Callable[[], httpx.Response], tries: int = 3) -> tuple[float, float, httpx.Response]:
    """Run ``work`` in a thread while probing /healthz: the slowest probe (s), work's seconds and answer; of
    the best of ``tries`` runs (this test process shares its GIL and the machine's cores with the attack
    sender: one slow probe can be the client's; a server that blocks is slow every time)."""
    runs = [_probed_once(server, work) for _ in range(tries)]
    return min(runs, key=lambda run: run[0])


def _probed_once(server: Server, work: Callable[[], httpx.Response]) -> tuple[float, float, httpx.Response]:
    answer: list[httpx.Response] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: answer.append(work()))
    probes: list[float] = []
    with httpx.Client(base_url=server.base, timeout=30) as probe:
        probe.get("/healthz")  # the connection is made before the attack starts
        thread.start()
        while True:
            sent = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            probes.append(time.monotonic() - sent)
            if not thread.is_alive():
                break
            time.sleep(0.005)
    thread.join()
    return max(probes), time.monotonic() - started, answer[0]


def post(server: Server, path: str, body: object, method: str = "POST") -> Callable[[], httpx.Response]:
    content = json.dumps(body).encode()  # serialised before the clock starts

    def send() -> httpx.Response:
        return httpx.request(method, f"{server.base}{path}", content=content, timeout=60,
                             headers=ADMIN | {"content-type": "application/json"})

    return send


def refused(response: httpx.Response, slug: str, *words: str) -> None:
    assert response.status_code == 422, response.text[:500]
    problem = response.json()
    assert problem["type"].endswith(slug), problem
    assert len(response.content) < 4096 and "object at 0x" not in problem["detail"], problem["detail"][:300]
    assert all(w in problem["detail"] for w in words), problem["detail"]


def test_row5_a_megabyte_id_is_refused_before_any_lookup(server: Server) -> None:
    """POST /retrieve with one 1M-character id: 404 after 24 s, /healthz blocked 24 s (a per-byte hash)."""
    worst, took, answer = probed(server, post(server, "/retrieve", {"from": "b", "to": "a", "ids": ["i" * 1_000_000]}))
    refused(answer, "invalid-id", "1000000 characters", "at most 1024 bytes")
    assert took < 2 and worst < HEALTHZ_MS / 1000, (took, worst)
    with httpx.Client(base_url=server.base, timeout=10) as http:
        for params in ({"id": "i" * 5000}, {"id": "é" * 600}, {"id": "b\0"}):  # 1200 bytes in 600 characters
            refused(http.get("/retrieve", params={"from": "b", "to": "a"} | params), "invalid-id")
            refused(http.get("/media", params={"modality": "b"} | params), "invalid-id")
        many = http.post("/retrieve", json={"from": "b", "to": "a", "ids": ["i" * 1000] * 70})  # 70 kB in all
        refused(many, "invalid-id", "65536 bytes")
        found = http.post("/retrieve", json={"from": "b", "to": "a", "ids": [b_id(5)], "k": 1})
        assert found.status_code == 200 and found.json()["results"][0]["query"] == b_id(5), found.text


def test_row6_a_huge_where_after_many_writes_is_refused_and_written_items_filter_right(server: Server) -> None:
    """`where` with 300k captions after 1,000 writes: 12.5 s, /healthz blocked 12.3 s, writes waiting on the
    lock (each written item matched in Python under it). Refused by count now; a filter at the limit runs as
    Arrow kernels over the written items and finds exactly the matching ones."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, DIM)).astype(np.float32)
    with httpx.Client(base_url=server.base, headers=ADMIN, timeout=60) as http:
        for start in range(0, 1000, 100):
            ids = [f"w/{i}" for i in range(start, start + 100)]
            payload = [{"caption": f"w-{i}", "year": 3000 + i} for i in range(start, start + 100)]
            put = http.put("/galleries/b/items", json={"ids": ids, "vectors": vectors[start:start + 100].tolist(),
                                                        "payload": payload})
            assert put.status_code == 200, put.text
    for values in (300_000, 20_000):  # 3.4 MB: parsed within max_json_values, then refused by count
        where = {"caption": [f"c-{i}" for i in range(values)]}
        worst, took, answer = probed(server, post(server, "/retrieve", {"from": "b", "to": "b",
                                                                        "vector": [0.1] * DIM, "where": where}))
        refused(answer, "invalid-filter", "more than 1024 values")
        assert took < 3 and worst < HEALTHZ_MS / 1000, (values, took, worst)
    at_limit = {"caption": ["w-5", "w-17", "b of s4"] + [f"c-{i}" for i in range(1021)]}
    body = {"from": "b", "to": "b", "vector": vectors[5].tolist(), "k": 10, "where": at_limit, "strategy": "chain"}
    worst, took, answer = probed(server, post(server, "/retrieve", body))
    assert answer.status_code == 200, answer.text
    hits = answer.json()["results"][0]["hits"]
    assert hits[0]["id"] == "w/5" and {h["payload"]["caption"] for h in hits} <= set(at_limit["caption"])
    assert {"w/5", "w/17"} <= {h["id"] for h in hits}, hits
    assert worst < HEALTHZ_MS / 1000, worst
    with httpx.Client(base_url=server.base, timeout=10) as http:
        years = http.post("/retrieve", json={"from": "b", "to": "b", "vector": [0.1] * DIM, "k": 5,
                                             "where": {"year": [3007, 1901]}, "strategy": "chain"}).json()
        assert {h["id"] for h in years["results"][0]["hits"]} == {"w/7", b_id(1)}, years
        long_value = http.post("/retrieve", json={"from": "b", "to": "b", "vector": [0.1] * DIM,
                                                  "where": {"caption": "x" * 5000}})
        refused(long_value, "invalid-filter", "longer than 4096 bytes")


def test_a_body_of_a_million_values_is_refused_unparsed_and_blocks_nothing(server: Server) -> None:
    """11.6 MB of filter strings: parsing them held the GIL, and /healthz, for 200 ms. Now counted first."""
    where = {"caption": [f"c-{i}" for i in range(1_000_000)]}
    worst, took, answer = probed(server, post(server, "/retrieve", {"from": "b", "to": "b", "vector": [0.1] * DIM,
                                                                    "where": where}))
    assert answer.status_code == 413 and answer.json()["type"].endswith("too-many-values"), answer.text[:300]
    assert "base64" in answer.json()["detail"]
    assert took < 3 and worst < HEALTHZ_MS / 1000, (took, worst)


def test_a_big_answer_is_written_without_blocking_the_event_loop(server: Server) -> None:
    """1,024 queries × 100 hits with payloads: about 10 MB of JSON, written in pieces in a worker thread."""
    queries = np.random.default_rng(1).standard_normal((1024, DIM)).round(4).tolist()
    body = {"from": "b", "to": "b", "vectors": queries, "k": 100, "strategy": "chain"}
    worst, took, answer = probed(server, post(server, "/retrieve", body))
    assert answer.status_code == 200, answer.text[:300]
    results = answer.json()["results"]
    assert len(results) == 1024 and all(len(r["hits"]) == 100 for r in results)
    assert worst < HEALTHZ_MS / 1000, (took, worst)


def test_row11_an_admin_write_of_a_long_id_is_refused_at_once(server: Server) -> None:
    """An admin PUT of one 300k-character id took 16 s (no id length limit)."""
    body = {"ids": ["w" * 300_000], "vectors": [[0.5] * DIM]}
    worst, took, answer = probed(server, post(server, "/galleries/b/items", body, "PUT"))
    refused(answer, "invalid-id", "300000 characters")
    assert took < 2 and worst < HEALTHZ_MS / 1000, (took, worst)
    with httpx.Client(base_url=server.base, headers=ADMIN, timeout=10) as http:
        refused(http.request("DELETE", "/galleries/b/items", json={"ids": ["w" * 300_000]}), "invalid-id")
        refused(http.put("/galleries/b/items", json={"ids": ["é" * 513], "vectors": [[0.5] * DIM]}), "invalid-id",
                "1026 bytes")
        refused(http.get("/galleries/b/items/" + "w" * 2000), "invalid-id")
        assert http.put("/galleries/b/items", json={"ids": ["w" * 1024], "vectors": [[0.5] * DIM]}).status_code == 200
        assert http.get("/galleries/b/items/" + "w" * 1024).status_code == 200


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_row12_where_integers_beyond_64_bits_are_refused(server: Server, value: int) -> None:
    """`where` value ≥ 2^63 on an int64 column: a 500 OverflowError (FAISS)."""
    with httpx.Client(base_url=server.base, timeout=10) as http:
        for where in ({"year": value}, {"year": [1900, value]}):
            answer = http.post("/retrieve", json={"from": "a", "to": "b", "vector": [0.1] * DIM, "where": where})
            refused(answer, "invalid-filter", "'year'", "64-bit")
        edge = http.post("/retrieve", json={"from": "a", "to": "b", "vector": [0.1] * DIM,
                                            "where": {"year": [2**63 - 1, -(2**63), 1902]}})
        assert edge.status_code == 200 and [h["id"] for h in edge.json()["results"][0]["hits"]] == [b_id(2)]


def test_row12_both_backends_refuse_big_integers_themselves(costs_bundle: Path, tmp_path: Path,
                                                            milvus_lite: milvuslite.LiteServer) -> None:
    """The galleries check too (the CLI and the benches call them without the HTTP layer): Milvus raised a
    TypeError building its filter expression."""
    faiss_gallery = load_bundle(costs_bundle).gallery("b")
    pushed = milvuslite.push_bundle(costs_bundle, tmp_path / "costs", milvus_lite.uri)
    spec = next(g for g in read_manifest(pushed).galleries if g.modality == "b")
    milvus = MilvusGallery(spec, DIM, shared_link(milvus_lite.uri, None, 10.0))
    x = np.full((1, DIM), 0.1, np.float32)
    for gallery in (faiss_gallery, milvus):
        with pytest.raises(InvalidFilter, match="64-bit"):
            gallery.search(x, 3, SearchOptions(where={"year": 2**63}))
        (hits,) = gallery.search(x, 3, SearchOptions(where={"year": 1904}))
        assert [h.id for h in hits] == [b_id(4)], type(gallery)


def test_the_limits_hold_on_milvus_too(costs_bundle: Path, tmp_path: Path, milvus_lite: milvuslite.LiteServer) -> None:
    pushed = milvuslite.push_bundle(costs_bundle, tmp_path / "costs", milvus_lite.uri)
    with running_server(pushed, env=ENV | milvuslite.milvus_env(milvus_lite.uri)) as served:
        warm_up(served)
        worst, took, answer = probed(served, post(served, "/retrieve", {"from": "b", "to": "a",
                                                                        "ids": ["i" * 1_000_000]}))
        refused(answer, "invalid-id", "1000000 characters")
        assert took < 2 and worst < HEALTHZ_MS / 1000, (took, worst)
        with httpx.Client(base_url=served.base, headers=ADMIN, timeout=30) as http:
            refused(http.put("/galleries/b/items", json={"ids": ["w" * 300_000], "vectors": [[0.5] * DIM]}),
                    "invalid-id")
            refused(http.put("/galleries/b/items", json={"ids": ["w\0"], "vectors": [[0.5] * DIM]}), "invalid-id",
                    "NUL")
            refused(http.post("/retrieve", json={"from": "a", "to": "b", "vector": [0.1] * DIM,
                                                 "where": {"year": 2**64}}), "invalid-filter", "64-bit")
            item = http.get(f"/galleries/b/items/{b_id(9)}")
            assert item.status_code == 200 and item.json()["id"] == b_id(9), item.text


def test_row13_nul_bytes_in_ids_and_uris_are_refused_and_never_a_500(server: Server) -> None:
    """An admin payload `uri` with a NUL byte made every GET /media of the item a 500."""
    with httpx.Client(base_url=server.base, headers=ADMIN, timeout=10) as http:
        refused(http.put("/galleries/b/items", json={"ids": ["n-1"], "vectors": [[0.5] * DIM],
                                                     "payload": [{"uri": "item-1\0.wav"}]}), "invalid-write", "NUL")
        refused(http.put("/galleries/b/items", json={"ids": ["n\0"], "vectors": [[0.5] * DIM]}), "invalid-id", "NUL")
        refused(http.post("/retrieve", json={"from": "b", "to": "a", "ids": ["b\0"]}), "invalid-id", "NUL")
        assert http.get("/galleries/b/items/n-1").status_code == 404  # nothing was written
        stored = http.get("/media", params={"modality": "b", "id": b_id(NUL_ITEM)})  # a NUL in the bundle itself
        assert stored.status_code == 404 and stored.json()["type"].endswith("no-media"), stored.text
        fine = http.get("/media", params={"modality": "b", "id": b_id(2)})
        assert fine.status_code == 200 and fine.content.startswith(b"RIFF"), fine.text


def test_row14_item_routes_take_ids_with_slashes(server: Server) -> None:
    """GET /galleries/{m}/items/{id} was a 404 for every id holding '/', even sent as %2F."""
    with httpx.Client(base_url=server.base, headers=ADMIN, timeout=10) as http:
        for path in (f"/galleries/b/items/{b_id(12)}", f"/galleries/b/items/{quote(b_id(12), safe='')}"):
            item = http.get(path)
            assert item.status_code == 200 and item.json()["id"] == b_id(12), (path, item.text)
            assert item.json()["payload"]["year"] == 1912
        assert http.put("/galleries/b/items", json={"ids": ["new/one/"], "vectors": [[0.5] * DIM]}).status_code == 200
        assert http.get("/galleries/b/items/new/one/").json()["id"] == "new/one/"
        missing = http.get("/galleries/b/items/b:shelf/0/no-such")
        assert missing.status_code == 404 and missing.json()["type"].endswith("unknown-item"), missing.text


def test_csls_scores_are_those_of_the_lookup_by_id(costs_bundle: Path, tmp_path: Path) -> None:
    """CSLS reads each term at the row the search returned; the scores must be those of looking every hit up
    by id (the old way), in process and as served, and a written item (no row) stays unadjusted."""
    bundle = load_bundle(costs_bundle)
    route = bundle.graph.resolve("a", "b")
    means = bundle.hubness[("a", "b")]
    pivoted = bundle.pivots["b", "a"]
    x = np.asarray(bundle.gallery("a").vectors_of([f"a-{i}" for i in range(0, 60, 3)]), np.float32)
    how, found = retrieve(bundle, route, x, 5, None, "pivot")
    assert (how.strategy, how.hubness) == ("pivot", "csls")
    centre = float(means.mean())
    for row, hits in zip(x, found, strict=True):
        pool = pivoted.search(row[None, :], POOL)[0]
        expected = reduce_hubness([(h.id, h.score) for h in pool],
                                  lambda item: float(means[pivoted.table.row_of(item)]), centre)[:5]
        assert [h.id for h in hits] == [item for item, _ in expected]
        assert np.allclose([h.score for h in hits], [score for _, score in expected], atol=1e-6)
    assert any(h.row != 0 for hits in found for h in hits)  # rows, not a constant
    written = Hit("w", 0.9, "", {}), Hit("base", 0.8, "", {}, int(np.argmax(means)))
    assert [(h.id, h.score) for h in csls_hits(list(written), means)] == [
        ("w", 0.9), ("base", 0.8 - (float(means.max()) - centre) / 2)
    ]
    served_copy = Path(shutil.copytree(costs_bundle, tmp_path / "costs"))
    queries = [f"a-{i}" for i in range(0, 60, 3)]
    with running_server(served_copy, env=ENV) as served, httpx.Client(base_url=served.base, timeout=30) as http:
        answer = http.post("/retrieve", json={"from": "a", "to": "b", "ids": queries, "k": 5, "strategy": "fused"})
    assert answer.status_code == 200 and answer.json()["hubness"] == "csls", answer.text
    _, fused = retrieve(bundle, route, x, 5, None, "fused")
    for result, hits in zip(answer.json()["results"], fused, strict=True):
        assert [h["id"] for h in result["hits"]] == [h.id for h in hits]
        assert np.allclose([h["score"] for h in result["hits"]], [h.score for h in hits], atol=1e-5)
        assert all(set(h) == {"id", "score", "sample", "payload"} for h in result["hits"])  # no row served


def test_one_id_hashes_as_the_lookup_files_do() -> None:
    """A single id is hashed in Python, a batch by numpy passes: the same FNV-1a values, as bundles store."""
    import pyarrow as pa

    short = ["", "a", *(f"id-{i}" for i in range(200))]  # hash_ids: numpy passes
    mixed = ["b:shelf/1/item-1", "é" * 40, "x" * 3000, *short]  # hash_ids: Python (one long id)
    for ids in (short, mixed):
        lookup = build_lookup(pa.array(ids, pa.string()))
        by_row = dict(zip(lookup[1].tolist(), lookup[0].tolist(), strict=True))
        assert [int(hash_id(item)) for item in ids] == [by_row[i] for i in range(len(ids))]
    assert int(hash_id("a")) == 0xAF63DC4C8601EC8C  # FNV-1a 64 of b"a"
