"""The optional API key: every route but the probes needs it (401 without, 403 wrong), both header forms
work, and the admin routes exist only behind a key (also absent from the no-key OpenAPI document)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from latent_bridge.service.app import create_app
from latent_bridge.service.auth import APIKeyMiddleware, credentials
from reliability_bundles import DIM
from testsettings import API_KEY, settings_for

GUARDED = [
    ("GET", "/modalities"),
    ("GET", "/graph"),
    ("GET", "/route?from=a&to=b"),
    ("GET", "/retrieve?from=a&to=b&id=a-1"),
    ("POST", "/translate"),
    ("POST", "/retrieve"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("POST", "/admin/reload"),
    ("GET", "/no-such-path"),  # no 404 leaks which paths exist
]


@pytest.fixture(scope="module")
def keyed(bundle_one: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(bundle_one, api_key=API_KEY))) as client:
        yield client


@pytest.mark.parametrize(("method", "path"), GUARDED)
def test_no_key_is_401_and_a_wrong_key_403(keyed: TestClient, method: str, path: str) -> None:
    response = keyed.request(method, path)
    assert response.status_code == 401 and response.json()["type"].endswith("unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    for headers in ({"x-api-key": "x" * 32}, {"authorization": "Bearer " + "x" * 32}, {"x-api-key": API_KEY[:-1]}):
        response = keyed.request(method, path, headers=headers)
        assert response.status_code == 403 and response.json()["type"].endswith("forbidden")
        assert API_KEY not in response.text


def test_another_authorization_scheme_is_a_wrong_key(keyed: TestClient) -> None:
    assert keyed.get("/modalities", headers={"authorization": f"Basic {API_KEY}"}).status_code == 403
    both = {"authorization": f"Basic {API_KEY}", "x-api-key": API_KEY}
    assert keyed.get("/modalities", headers=both).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": API_KEY}, {"authorization": f"Bearer {API_KEY}"}, {"authorization": f"bearer  {API_KEY} "}],
)
def test_the_key_opens_every_route(keyed: TestClient, headers: dict[str, str]) -> None:
    assert keyed.get("/modalities", headers=headers).status_code == 200
    assert keyed.get("/metrics", headers=headers).status_code == 200
    assert keyed.get("/openapi.json", headers=headers).status_code == 200
    body = {"from": "a", "to": "b", "vector": [0.1] * DIM}
    assert keyed.post("/translate", json=body, headers=headers).status_code == 200


def test_probes_need_no_key(keyed: TestClient) -> None:
    assert keyed.get("/healthz").status_code == 200
    assert keyed.get("/readyz").status_code == 200


def test_keys_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every offered key goes through ``compare_digest`` (constant time), as a 32-byte digest, so neither
    the key's bytes nor its length decide how long a comparison takes; a wrong key beside a right one is
    still compared and refused."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    monkeypatch.setattr(secrets, "compare_digest", spy)
    guard = APIKeyMiddleware(app=None, key=API_KEY)  # type: ignore[arg-type]
    offered = [b"", b"x" * 10_000, API_KEY.encode() + b"x", API_KEY.encode()]
    assert not guard.accepts(offered)
    assert len(compared) == len(offered)
    assert all(len(a) == len(b) == 32 for a, b in compared)
    assert not any(key in pair for pair in compared for key in offered)  # digests, never the raw keys
    compared.clear()
    assert guard.accepts([API_KEY.encode(), API_KEY.encode()]) and len(compared) == 2
    assert credentials([(b"x-api-key", b" k1 "), (b"authorization", b"Bearer k2")]) == [b"k1", b"k2"]
    assert credentials([(b"authorization", b"Basic k3")]) == [b""]


def test_admin_routes_exist_only_behind_a_key(bundle_one: Path, keyed: TestClient) -> None:
    with TestClient(create_app(settings_for(bundle_one))) as open_client:
        assert open_client.post("/admin/reload", json={}).status_code == 404
        document = open_client.get("/openapi.json").json()
        assert not [p for p in document["paths"] if p.startswith("/admin")]
        assert "securitySchemes" not in document.get("components", {})
        assert all("401" not in op["responses"] for ops in document["paths"].values() for op in ops.values())
    document = keyed.get("/openapi.json", headers={"x-api-key": API_KEY}).json()
    assert "/admin/reload" in document["paths"]
    assert set(document["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer"}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            guarded = path not in ("/healthz", "/readyz")
            assert ("security" in operation) == guarded, path
            assert ({"401", "403"} <= operation["responses"].keys()) == guarded, path
