"""Health, readiness, metrics, request ids, HTTP-level errors and the optional API key."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.bundle.loader import load_bundle
from problems import problem
from testsettings import settings_for

API_KEY = "k" * 32


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    body = client.get("/readyz").json()
    assert body["status"] == "ready" and body["bundle"] == "chain"
    assert (body["modalities"], body["edges"], body["galleries"]) == (3, 4, 3)
    assert len(body["fingerprint"]) == 16


def test_not_ready_before_the_bundle_is_loaded(chain_bundle: Path) -> None:
    client = TestClient(create_app(settings_for(chain_bundle)))  # no `with`: the lifespan has not run
    assert client.get("/healthz").status_code == 200
    problem(client.get("/readyz"), 503, "not-ready")
    problem(client.post("/translate", json={"from": "a", "to": "b", "vector": [0.0] * 16}), 503, "not-ready")


def test_a_given_bundle_is_served_as_is(chain_bundle: Path) -> None:
    bundle = load_bundle(chain_bundle)
    with TestClient(create_app(settings_for(None), bundle=bundle)) as client:
        assert client.app.state.bundle is bundle  # type: ignore[attr-defined]
        assert client.get("/readyz").status_code == 200
    assert client.app.state.bundle is None  # type: ignore[attr-defined]


def test_metrics(client: TestClient) -> None:
    client.post("/translate", json={"from": "a", "to": "c", "vectors": [[0.1] * 16] * 3})
    client.get("/retrieve", params={"from": "a", "to": "b", "id": "a-1"})
    client.get("/route", params={"from": "a", "to": "nowhere"})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{handler="/translate",method="POST",status="200"}' in text
    assert 'http_requests_total{handler="/route",method="GET",status="404"}' in text
    assert 'http_request_duration_seconds_bucket{handler="/translate",le="0.005",method="POST"}' in text
    assert 'latent_bridge_translations_total{operation="translate",path="a>b>c"}' in text
    assert 'latent_bridge_translated_vectors_total{path="a>b>c"}' in text
    assert 'latent_bridge_hop_seconds_count{edge="a__b"}' in text
    assert 'latent_bridge_search_seconds_count{modality="b"}' in text
    assert "latent_bridge_bundle_info{" in text and 'name="chain"' in text
    assert 'handler="/metrics"' not in text


def test_request_ids(client: TestClient) -> None:
    assert len(client.get("/healthz").headers["x-request-id"]) == 16
    assert client.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    assert (
        client.get("/healthz", headers={"x-request-id": "bad id\x7f"}).headers["x-request-id"] != "bad id\x7f"
    )
    body = problem(
        client.get("/route", params={"from": "x", "to": "a"}, headers={"x-request-id": "trace-9"}),
        404,
        "unknown-modality",
    )
    assert body["request_id"] == "trace-9"


def test_unknown_path_and_method(client: TestClient) -> None:
    problem(client.get("/nothing-here"), 404, "not-found")
    problem(client.delete("/translate"), 405, "method-not-allowed")


def test_an_unexpected_error_is_a_500_problem(chain_bundle: Path) -> None:
    app = create_app(settings_for(chain_bundle))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaput")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        assert response.status_code == 500 and response.headers["content-type"] == "application/problem+json"
        assert "kaput" not in response.text
        assert response.json()["type"] == "urn:latent-bridge:problem:internal-error"
        assert client.get("/healthz").status_code == 200


def test_api_key_when_configured(chain_bundle: Path) -> None:
    with TestClient(create_app(settings_for(chain_bundle, api_key=API_KEY))) as client:
        body = problem(client.get("/modalities"), 401, "unauthorized")
        assert "X-API-Key" in body["detail"]
        problem(client.get("/modalities", headers={"x-api-key": "wrong" * 8}), 403, "forbidden")
        assert client.get("/modalities", headers={"x-api-key": API_KEY}).status_code == 200
        assert client.get("/graph", headers={"authorization": f"Bearer {API_KEY}"}).status_code == 200
        for open_route in ("/healthz", "/readyz"):
            assert client.get(open_route).status_code == 200
        problem(client.get("/metrics"), 401, "unauthorized")
