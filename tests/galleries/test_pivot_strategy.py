"""Pivot-space retrieval over a real server: a route reports its cross-validated strategy, a request may pin
chain, pivot or fused (on a direct edge the pivot is the query's own space), run-time writes reach the
pivot galleries (live and replayed), and where a route has no pivot gallery a pinned pivot is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import numpy as np
from gallerycorpus import API_KEY
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.bundle.manifest import STRATEGIES, read_manifest, write_manifest
from latent_bridge.service.engine.scoring import centred_unit
from latent_bridge.service.engine.strategy import fuse, reduce_hubness
from latent_bridge.service.engine.translate import run_route
from latent_bridge.training.bundling.pivots import VARIANTS, RouteChoice, with_hubness
from latent_bridge.training.datasets.reader import load_modality
from serverprocess import running_server

KEYED = {"X-API-Key": API_KEY}


def retrieve(client: httpx.Client, strategy: str | None = None, k: int = 5) -> httpx.Response:
    body = {"from": "a", "to": "c", "ids": [f"a-{i}" for i in range(0, 40, 4)], "k": k, "where": {"shelf": "train"}}
    return client.post("/retrieve", json=body | ({"strategy": strategy} if strategy else {}), headers=KEYED)


def partner_hits(response: httpx.Response) -> float:
    """Fraction of queries a-i whose top hit is their partner doc-i (the corpus holds c's training rows first)."""
    results = response.json()["results"]
    return float(np.mean([r["hits"][0]["id"] == "doc-" + r["query"].split("-", 1)[1] for r in results]))


def test_fuse_ranks_by_mean_score_with_the_pool_floor_for_missing_items() -> None:
    fused = fuse([("x", 0.9), ("y", 0.5)], [("y", 0.8), ("z", 0.7)])
    assert fused == [("x", (0.9 + 0.7) / 2), ("y", (0.5 + 0.8) / 2), ("z", (0.5 + 0.7) / 2)]


def test_csls_lowers_hubs_by_half_their_neighbourhood_mean() -> None:
    means = {"hub": 0.9, "plain": 0.1}
    ranked = reduce_hubness([("hub", 0.5), ("plain", 0.4)], means.__getitem__, centre=0.5)
    assert ranked == [("plain", 0.4 + 0.2), ("hub", 0.5 - 0.2)]


def top_hit(response: httpx.Response, query: str) -> str:
    assert response.status_code == 200, response.text
    return str(next(r["hits"][0]["id"] for r in response.json()["results"] if r["query"] == query))


def assert_hits_carry_their_items_records(client: httpx.Client, body: dict[str, object]) -> None:
    """Every hit's sample and payload are its stored item's: pooled strategies rank hits without payload and
    complete only the survivors, which must not mix up rows."""
    for result in body["results"]:  # type: ignore[attr-defined]
        for hit in result["hits"]:
            item = client.get(f"/galleries/c/items/{hit['id']}", headers=KEYED).json()
            assert (hit["sample"], hit["payload"]) == (item["sample"], item["payload"]), (hit, item)
            assert hit["payload"]["shelf"] == "train"


def test_route_reports_and_requests_pin_the_strategy_and_writes_reach_the_pivot_gallery(writable: Path) -> None:
    manifest = read_manifest(writable)
    (choice,) = [r for r in manifest.routes if (r.source, r.target) == ("a", "c")]
    assert choice.path == ["a", "b", "c"] and set(choice.scores) == set(VARIANTS)
    assert {(p.modality, p.pivot) for p in manifest.pivot_galleries} >= {("c", "b")}
    env = {"LATENT_BRIDGE_ADMIN_KEY": API_KEY}
    with running_server(writable, env=env) as server, httpx.Client(base_url=server.base) as client:
        route = client.get("/route", params={"from": "a", "to": "c"}, headers=KEYED).json()["strategy"]
        assert route["chosen"] == route["strategy"] == choice.strategy and route["pivot"] == "b"
        assert route["available"] == list(STRATEGIES) and route["scores"]["pivot"]["r1"] == choice.scores["pivot"].r1
        assert route["hubness"] == choice.hubness
        unpinned = retrieve(client).json()
        assert unpinned["strategy"] == choice.strategy
        assert unpinned["hubness"] == (choice.hubness if choice.strategy != "chain" else "none")
        for strategy in STRATEGIES:
            found = retrieve(client, strategy)
            assert found.status_code == 200, found.text
            body = found.json()
            assert (body["strategy"], body["pivot"]) == (strategy, None if strategy == "chain" else "b")
            assert all(len(r["hits"]) == 5 for r in body["results"])
            assert partner_hits(found) >= 0.8, (strategy, body["results"][0])
            assert_hits_carry_their_items_records(client, body)

        doc = client.get("/galleries/c/items/doc-4", headers=KEYED).json()  # move doc-4 to a new id
        put = client.put("/galleries/c/items", headers=KEYED,
                         json={"ids": ["moved-4"], "vectors": [doc["vector"]], "payload": [doc["payload"]]})
        gone = client.request("DELETE", "/galleries/c/items", headers=KEYED, json={"ids": ["doc-4"]})
        assert put.status_code == gone.status_code == 200, (put.text, gone.text)
        route = client.get("/route", params={"from": "a", "to": "c"}, headers=KEYED).json()["strategy"]
        assert route["available"] == list(STRATEGIES) and route["note"] is None
        assert all(top_hit(retrieve(client, strategy), "a-4") == "moved-4" for strategy in STRATEGIES)
    with running_server(writable, env=env) as server, httpx.Client(base_url=server.base) as client:  # replayed
        assert all(top_hit(retrieve(client, strategy), "a-4") == "moved-4" for strategy in STRATEGIES)


def test_a_pinned_pivot_is_refused_where_the_bundle_has_no_pivot_gallery(trained: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(trained[1], tmp_path / "no-pivots"))
    write_manifest(read_manifest(bundle).model_copy(update={"routes": [], "pivot_galleries": []}), bundle)
    with running_server(bundle) as server, httpx.Client(base_url=server.base) as client:
        route = client.get("/route", params={"from": "a", "to": "c"}).json()["strategy"]
        assert route["strategy"] == "chain" and route["available"] == ["chain"] and "no pivot gallery" in route["note"]
        for strategy in ("pivot", "fused"):
            body = {"from": "a", "to": "c", "ids": ["a-1"], "k": 3, "strategy": strategy}
            refused = client.post("/retrieve", json=body)
            assert refused.status_code == 409 and refused.json()["type"].endswith("strategy-unavailable"), refused.text
        unpinned = client.post("/retrieve", json={"from": "a", "to": "c", "ids": ["a-1"], "k": 3}).json()
        assert unpinned["strategy"] == "chain"


def expected_in_query_space(bundle_dir: Path, query: str, csls: bool = True) -> dict[str, float]:
    """The score of every c item for b item ``query`` searched in b's space, computed here with numpy: the
    items translated by the edge c → b, the query untranslated, both centred by the items' mean, CSLS-adjusted
    where the route chose it (and ``csls``)."""
    bundle = load_bundle(bundle_dir)
    items = run_route(bundle.translators, bundle.graph.along(["c", "b"], "c", "b"),
                      np.asarray(bundle.galleries["c"].vectors, np.float32), bundle.l2_inputs)
    q = bundle.galleries["b"].vectors_of([query])
    scores = centred_unit(items, items.mean(axis=0)) @ centred_unit(q, items.mean(axis=0))[0]
    means = bundle.hubness.get(("b", "c")) if csls else None
    adjusted = scores - ((means - means.mean()) / 2 if means is not None else 0.0)
    ids = [r[0] for r in bundle.galleries["c"].table.records(list(range(len(items))))]
    return dict(zip(ids, adjusted.tolist(), strict=True))


def test_direct_edge_searches_the_target_items_in_the_query_space(writable: Path) -> None:
    manifest = read_manifest(writable)
    direct = {(r.source, r.target): r for r in manifest.routes if len(r.path) == 2}
    assert set(direct) == {("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")}
    assert all(r.pivot == r.source and set(r.scores) == set(VARIANTS) for r in direct.values())
    (mirror,) = [p for p in manifest.pivot_galleries if (p.modality, p.pivot) == ("c", "b")]
    assert mirror.index_type == "hnsw"  # c's 6,000 items: not a flat scan, and its effort tuned on its own
    assert mirror.search.target_recall is not None and mirror.search.recall_at_10 is not None
    assert mirror.search.recall_at_10 >= mirror.search.target_recall and "into b" in str(mirror.search.query_source)
    with running_server(writable) as server, httpx.Client(base_url=server.base) as client:
        route = client.get("/route", params={"from": "b", "to": "c"}).json()["strategy"]
        assert route["pivot"] == "b" and route["available"] == list(STRATEGIES)
        assert route["chosen"] == direct["b", "c"].strategy
        body = {"from": "b", "to": "c", "ids": ["b-3", "b-17", "b-40"], "k": 5, "strategy": "pivot"}
        found = client.post("/retrieve", json=body)
        assert found.status_code == 200, found.text
        assert (found.json()["strategy"], found.json()["pivot"]) == ("pivot", "b")
    for result in found.json()["results"]:
        want = expected_in_query_space(writable, result["query"])
        best = sorted(want, key=lambda item: -want[item])[:5]
        hits = {h["id"]: h["score"] for h in result["hits"]}
        assert np.allclose(list(hits.values()), [want[item] for item in hits], atol=1e-4)
        assert len(set(hits) & set(best)) >= 4  # HNSW: approximate, but close to the exact top 5
        assert result["hits"][0]["id"] == "doc-" + result["query"].split("-", 1)[1]  # its partner


def test_a_direct_edge_with_csls_serves_the_adjusted_scores(trained: tuple[Path, Path], tmp_path: Path) -> None:
    """The served CSLS path on a direct edge: the b → c choice set to pivot + CSLS, its neighbourhood means
    written by training's own code from b's training rows; every hit's score must be the numpy one. An item
    written at run time has no neighbourhood term: it is served, unadjusted."""
    data, parent = trained
    bundle_dir = Path(shutil.copytree(parent, tmp_path / "csls"))
    manifest = read_manifest(bundle_dir)
    (spec,) = [r for r in manifest.routes if r.path == ["b", "c"]]
    bank = load_modality(data / "b.parquet").embeddings
    pivot = RouteChoice(spec.model_copy(update={"strategy": "pivot"}), bank)
    chosen = with_hubness(bundle_dir, load_bundle(bundle_dir), pivot)
    routes = [chosen if r.path == ["b", "c"] else r for r in manifest.routes]
    write_manifest(manifest.model_copy(update={"routes": routes}), bundle_dir)
    env = {"LATENT_BRIDGE_ADMIN_KEY": API_KEY}
    with running_server(bundle_dir, env=env) as server, httpx.Client(base_url=server.base, headers=KEYED) as client:
        found = client.post("/retrieve", json={"from": "b", "to": "c", "ids": ["b-3", "b-17", "b-40"], "k": 5})
        vector = client.get("/galleries/c/items/c-3").json()["vector"]
        assert client.put("/galleries/c/items", json={"ids": ["copy-3"], "vectors": [vector]}).status_code == 200
        written = client.post("/retrieve", json={"from": "b", "to": "c", "ids": ["b-3"], "k": 5})
    assert found.status_code == 200, found.text
    assert (found.json()["strategy"], found.json()["pivot"], found.json()["hubness"]) == ("pivot", "b", "csls")
    for result in found.json()["results"]:
        want = expected_in_query_space(bundle_dir, result["query"])
        best = sorted(want, key=lambda item: -want[item])[:5]
        assert [h["id"] for h in result["hits"]] == best  # a flat gallery: exactly the numpy top 5
        assert np.allclose([h["score"] for h in result["hits"]], [want[item] for item in best], atol=1e-4)
    hits = {h["id"]: h["score"] for h in written.json()["results"][0]["hits"]}
    assert np.isclose(hits["copy-3"], expected_in_query_space(bundle_dir, "b-3", csls=False)["c-3"], atol=1e-4)
