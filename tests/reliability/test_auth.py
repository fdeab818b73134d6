"""The optional API key: every route but the probes needs it (401 without, 403 wrong), both header forms
work; the admin scope (/admin/*, gallery writes) needs the separate admin key, and its routes exist only
with one (also absent from the OpenAPI document without it)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.api.auth import APIKeyMiddleware, admin_scoped, credentials
from pydantic import ValidationError
from reliability_bundles import DIM
from testsettings import ADMIN_KEY, API_KEY, KEYS, settings_for

GUARDED = [
    ("GET", "/modalities"),
    ("GET", "/graph"),
    ("GET", "/route?from=a&to=b"),
    ("GET", "/retrieve?from=a&to=b&id=a-1"),
    ("POST", "/translate"),
    ("POST", "/retrieve"),
    ("GET", "/metrics"),
    ("GET", "/redoc"),  # not served: unknown paths need the key too
    ("GET", "/docs/assets/redoc.standalone.js"),  # only the assets /docs uses are open
    ("POST", "/admin/reload"),
    ("GET", "/no-such-path"),  # no 404 leaks which paths exist
]


@pytest.fixture(scope="module")
def keyed(bundle_one: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(bundle_one, **KEYS))) as client:
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


def test_admin_routes_exist_only_behind_the_admin_key(bundle_one: Path, keyed: TestClient) -> None:
    with TestClient(create_app(settings_for(bundle_one))) as open_client:
        closed = open_client.post("/admin/reload", json={})
        assert closed.status_code == 403 and "LATENT_BRIDGE_ADMIN_KEY" in closed.json()["detail"]
        document = open_client.get("/openapi.json").json()
        assert not [p for p in document["paths"] if p.startswith("/admin")]
        assert "securitySchemes" not in document.get("components", {})
        assert all("401" not in op["responses"] for ops in document["paths"].values() for op in ops.values())
    with TestClient(create_app(settings_for(bundle_one, api_key=API_KEY))) as read_only:
        document = read_only.get("/openapi.json", headers={"x-api-key": API_KEY}).json()
    assert not [p for p in document["paths"] if p.startswith("/admin")]
    document = keyed.get("/openapi.json", headers={"x-api-key": API_KEY}).json()
    assert "/admin/reload" in document["paths"]
    assert set(document["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer"}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            guarded = path not in ("/healthz", "/readyz")
            assert ("security" in operation) == guarded, path
            assert ({"401", "403"} <= operation["responses"].keys()) == guarded, path


@pytest.mark.parametrize(
    ("method", "path", "admin"),
    [
        ("POST", "/admin/reload", True),
        ("GET", "/admin/anything", True),
        ("PUT", "/galleries/text/items", True),
        ("DELETE", "/galleries/text/items", True),
        ("POST", "/galleries/text/items", True),
        ("PATCH", "/galleries/text", True),
        ("GET", "/galleries/text/items", False),
        ("HEAD", "/galleries/text/items", False),
        ("POST", "/translate", False),
        ("GET", "/administrator", False),
    ],
)
def test_the_admin_scope_rule(method: str, path: str, admin: bool) -> None:
    assert admin_scoped(method, path) is admin


ADMIN_SCOPED = [("POST", "/admin/reload"), ("PUT", "/galleries/a/items"), ("DELETE", "/galleries/a/items")]


@pytest.mark.parametrize("keys", [{"api_key": API_KEY}, {}], ids=["read-key", "no-read-key"])
def test_the_read_key_opens_no_admin_route(bundle_one: Path, keys: dict[str, str]) -> None:
    with TestClient(create_app(settings_for(bundle_one, admin_key=ADMIN_KEY, **keys))) as client:
        for method, path in ADMIN_SCOPED:
            assert client.request(method, path, json={}).status_code == 401
            assert client.request(method, path, json={}, headers={"x-api-key": API_KEY}).status_code == 403
            both = {"x-api-key": ADMIN_KEY, "authorization": f"Bearer {API_KEY}"}  # a wrong key beside the right one
            assert client.request(method, path, json={}, headers=both).status_code == 403
            assert client.request(method, path, json={}, headers={"x-api-key": ADMIN_KEY}).status_code != 403
        assert client.get("/modalities", headers={"x-api-key": ADMIN_KEY}).status_code == 200
        assert client.post("/admin/reload", json={}, headers={"x-api-key": ADMIN_KEY}).status_code == 200


def test_the_admin_key_must_differ_from_the_api_key(bundle_one: Path) -> None:
    with pytest.raises(ValidationError, match="must differ"):
        settings_for(bundle_one, api_key=API_KEY, admin_key=API_KEY)
