"""GET /modalities, /graph and /route: the graph as served, and the routing choice."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
from bundle_edits import Manifest, edit_manifest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.api.schemas import GraphResponse, ModalitiesResponse, RouteResponse
from problems import problem
from testsettings import settings_for


def test_modalities(client: TestClient) -> None:
    body = ModalitiesResponse.model_validate(client.get("/modalities").json())
    assert body.bundle == "chain"
    assert [(m.name, m.dim) for m in body.modalities] == [("a", 16), ("b", 16), ("c", 16)]
    gallery = body.modalities[0].gallery
    assert gallery is not None and gallery.size == 300 and gallery.index_type == "flat"
    assert gallery.payload == ["caption"]


def test_graph(routed_client: TestClient) -> None:
    body = GraphResponse.model_validate(routed_client.get("/graph").json())
    assert body.criterion == "mrr" and [n.name for n in body.nodes] == ["a", "b", "c"]
    assert len(body.edges) == 6 and body.components == [["a", "b", "c"]]
    direct = next(e for e in body.edges if (e.source, e.target) == ("a", "c"))
    assert direct.kind == "ridge" and direct.fidelity == pytest.approx(0.6)
    assert direct.cost == pytest.approx(-math.log(0.6), abs=1e-6) and direct.metrics.r1 == pytest.approx(0.3)


def test_the_route_avoids_a_poor_direct_edge(routed_client: TestClient) -> None:
    response = routed_client.get("/route", params={"from": "a", "to": "c"})
    assert response.status_code == 200, response.text
    body = RouteResponse.model_validate(response.json())
    assert body.source == "a" and body.target == "c"
    assert body.best.path == ["a", "b", "c"]
    edges = {(e["source"], e["target"]): e for e in routed_client.get("/graph").json()["edges"]}
    assert [h.fidelity for h in body.best.hops] == [
        edges["a", "b"]["metrics"]["mrr"],
        edges["b", "c"]["metrics"]["mrr"],
    ]
    assert body.best.fidelity == pytest.approx(body.best.hops[0].fidelity * body.best.hops[1].fidelity)
    assert body.best.fidelity > 0.6
    assert [r.path for r in body.alternatives] == [["a", "c"]]
    assert body.alternatives[0].fidelity == pytest.approx(0.6)
    none = routed_client.get("/route", params={"from": "a", "to": "c", "alternatives": 0}).json()
    assert none["alternatives"] == []


def test_another_criterion_takes_the_direct_edge(routed_bundle: Path, bundle_copy: Callable[[Path], Path]) -> None:
    """The direct edge a↔c loses on cycle cosine (0.6) but is perfect on direct cosine: by cycle cosine the
    route is a→b→c, by cosine the direct edge."""
    bundle = bundle_copy(routed_bundle)

    def perfect_direct_cosine(manifest: Manifest) -> None:
        for edge in manifest["edges"]:
            if {edge["source"], edge["target"]} == {"a", "c"}:
                edge["metrics"].update(cosine=1.0)

    edit_manifest(bundle, perfect_direct_cosine)
    routes = {}
    for criterion in ("cycle_cosine", "cosine"):
        with TestClient(create_app(settings_for(bundle, fidelity=criterion))) as client:
            body = client.get("/route", params={"from": "a", "to": "c"}).json()
        assert body["criterion"] == criterion
        routes[criterion] = body["best"]["path"]
    assert routes == {"cycle_cosine": ["a", "b", "c"], "cosine": ["a", "c"]}


def test_route_problems(client: TestClient, split_client: TestClient) -> None:
    body = problem(client.get("/route", params={"from": "a", "to": "x"}), 404, "unknown-modality")
    assert body["known"] == ["a", "b", "c"]
    body = problem(split_client.get("/route", params={"from": "c", "to": "a"}), 409, "no-route")
    assert body["components"] == [["a", "b"], ["c"]] and "'c' is in ['c']" in body["detail"]
    problem(client.get("/route", params={"from": "a"}), 422, "invalid-request")
    problem(
        client.get("/route", params={"from": "a", "to": "b", "alternatives": 1000}), 422, "invalid-request"
    )


def test_same_modality_route(client: TestClient) -> None:
    body = client.get("/route", params={"from": "a", "to": "a"}).json()
    assert body["best"] == {"path": ["a"], "hops": [], "fidelity": 1.0, "cost": 0}
