"""Every error status the OpenAPI document (keyed, so with 401/403 and the admin route) promises is
reachable: one request per (operation, status) produces it. A status documented without a reproducer
here fails the test, so the document cannot promise what the server never answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bundle_edits import edit_manifest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from reliability_bundles import DIM
from testsettings import ADMIN_KEY, KEYS, settings_for

AUTH = {"x-api-key": ADMIN_KEY}  # opens every route, the admin scope included
V = [0.1] * DIM
JSON = {"content-type": "application/json"}

# (method, path) -> status -> request: (method, url, keyword arguments of httpx's request)
Request = tuple[str, str, dict[str, Any]]
TOO_BIG = {"content": b" " * (64 * 1024 + 1), "headers": JSON}
COMMON = {
    401: lambda m, p: (m, p, {"headers": {"x-api-key": ""}, "drop_key": True}),
    403: lambda m, p: (m, p, {"headers": {"x-api-key": "wrong-key-wrong-key"}}),
}
CASES: dict[tuple[str, str], dict[int, Request]] = {
    ("post", "/translate"): {
        404: ("POST", "/translate", {"json": {"from": "a", "to": "zz", "vector": V}}),
        409: ("POST", "/translate", {"json": {"from": "b", "to": "a", "vector": V}}),
        413: ("POST", "/translate", TOO_BIG),
        415: ("POST", "/translate", {"content": b"x", "headers": {"content-type": "text/plain"}}),
        422: ("POST", "/translate", {"json": {"from": "a", "to": "b", "vector": [0.1]}}),
    },
    ("post", "/retrieve"): {
        404: ("POST", "/retrieve", {"json": {"from": "zz", "to": "b", "vector": V}}),
        409: ("POST", "/retrieve", {"json": {"from": "b", "to": "a", "vector": V}}),
        413: ("POST", "/retrieve", {"json": {"from": "a", "to": "b", "vectors": [V] * 33}}),
        415: ("POST", "/retrieve", {"content": b"x", "headers": {"content-type": "text/plain"}}),
        422: ("POST", "/retrieve", {"json": {"from": "a", "to": "b", "vector": V, "k": 21}}),
    },
    ("get", "/retrieve"): {
        404: ("GET", "/retrieve?from=a&to=b&id=no-such-item", {}),
        409: ("GET", "/retrieve?from=b&to=a&id=b-1", {}),
        422: ("GET", "/retrieve?from=a&to=b&id=a-1&k=0", {}),
    },
    ("get", "/route"): {
        404: ("GET", "/route?from=a&to=zz", {}),
        409: ("GET", "/route?from=b&to=a", {}),
        422: ("GET", "/route?from=a", {}),
    },
    ("post", "/embed"): {
        404: ("POST", "/embed", {"json": {"modality": "zz", "text": "a dog"}}),
        413: ("POST", "/embed", TOO_BIG),
        415: ("POST", "/embed", {"content": b"x", "headers": {"content-type": "text/plain"}}),
        422: ("POST", "/embed", {"json": {"modality": "a", "text": "a dog"}}),  # a has no encoder
    },
    ("get", "/media"): {
        404: ("GET", "/media?modality=a&id=a-1", {}),  # no media in this bundle
        422: ("GET", "/media?modality=a", {}),
    },
    ("get", "/galleries/{modality}"): {404: ("GET", "/galleries/zz", {}), 422: ("GET", "/galleries/Not-A-Name", {})},
    ("get", "/galleries/{modality}/items/{item}"): {
        404: ("GET", "/galleries/a/items/no-such-item", {}),
        422: ("GET", "/galleries/Not-A-Name/items/a-1", {}),
    },
    ("put", "/galleries/{modality}/items"): {
        404: ("PUT", "/galleries/zz/items", {"json": {"ids": ["x"], "vectors": [V]}}),
        413: ("PUT", "/galleries/a/items", TOO_BIG),
        415: ("PUT", "/galleries/a/items", {"content": b"x", "headers": {"content-type": "text/plain"}}),
        422: ("PUT", "/galleries/a/items", {"json": {"ids": ["x"], "vectors": [[0.1]]}}),
    },
    ("delete", "/galleries/{modality}/items"): {
        404: ("DELETE", "/galleries/zz/items", {"json": {"ids": ["x"]}}),
        413: ("DELETE", "/galleries/a/items", TOO_BIG),
        415: ("DELETE", "/galleries/a/items", {"content": b"x", "headers": {"content-type": "text/plain"}}),
        422: ("DELETE", "/galleries/a/items", {"json": {"ids": []}}),
    },
    ("post", "/admin/reload"): {
        413: ("POST", "/admin/reload", TOO_BIG),
        415: ("POST", "/admin/reload", {"content": b"x", "headers": {"content-type": "text/plain"}}),
        422: ("POST", "/admin/reload", {"json": {"bundle": "/no/such/bundle"}}),
    },
}
# answered only before the bundle is loaded, or past the deadline: reproduced by the tests below
NOT_READY = {"503"}
TIMED_OUT = {"504"}


@pytest.fixture(scope="module")
def one_way_bundle(bundle_one: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bundle_one without its b→a edge: b→a has no route (409)."""
    import shutil

    out = Path(shutil.copytree(bundle_one, tmp_path_factory.mktemp("one-way") / "one-way"))
    edit_manifest(out, lambda m: m.update(edges=[e for e in m["edges"] if e["source"] != "b"]))
    return out


@pytest.fixture(scope="module")
def client(one_way_bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(one_way_bundle, **KEYS)), headers=AUTH) as client:
        yield client


def documented(client: TestClient) -> dict[tuple[str, str], set[str]]:
    document = client.get("/openapi.json").json()
    return {
        (method, path): {s for s in op["responses"] if int(s) >= 400}
        for path, ops in document["paths"].items()
        for method, op in ops.items()
    }


def send(client: TestClient, request: Request) -> httpx.Response:
    method, url, kwargs = request
    kwargs = dict(kwargs)
    built = client.build_request(method, url, **{k: v for k, v in kwargs.items() if k != "drop_key"})
    if kwargs.get("drop_key"):
        del built.headers["x-api-key"]
    return client.send(built)


def test_every_documented_error_is_reachable(client: TestClient) -> None:
    for (method, path), statuses in documented(client).items():
        cases = CASES.get((method, path), {})
        for status in sorted(statuses - NOT_READY - TIMED_OUT):
            code = int(status)
            maker: Callable[[str, str], Request] | None = COMMON.get(code)  # type: ignore[assignment]
            request = maker(method.upper(), path) if maker else cases.get(code)
            assert request is not None, f"{method.upper()} {path} documents {status} but no test reaches it"
            response = send(client, request)
            assert response.status_code == code, (method, path, status, response.text)
            assert response.headers["content-type"] == "application/problem+json"


def test_documented_503s_are_reachable(client: TestClient, one_way_bundle: Path) -> None:
    app = create_app(settings_for(one_way_bundle, **KEYS))  # lifespan not run: no bundle yet
    with_503 = [(m, p) for (m, p), statuses in documented(client).items() if "503" in statuses]
    assert with_503
    with TestClient(app, headers=AUTH) as unready:
        app.state.bundle = None  # the lifespan loaded it: drop it, as before a load finishes
        for method, path in with_503:
            request = CASES.get((method, path), {}).get(422) or (method.upper(), path, {})
            if method == "post":
                request = (method.upper(), path, {"json": {"from": "a", "to": "b", "vector": V}})
            if path == "/route" or (method, path) == ("get", "/retrieve"):
                request = ("GET", f"{path}?from=a&to=b&id=a-1", {})
            assert send(unready, request).status_code == 503, (method, path)


def test_documented_504s_are_reachable(
    client: TestClient, one_way_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import latent_bridge.service.api.routes.retrieve as retrieve

    with_504 = {(m, p) for (m, p), statuses in documented(client).items() if "504" in statuses}
    assert with_504 == {("post", "/translate"), ("post", "/retrieve"), ("get", "/retrieve")}
    app = create_app(settings_for(one_way_bundle, **KEYS, request_timeout=0.2))
    release = threading.Event()
    real_search = retrieve.search
    monkeypatch.setattr(retrieve, "inline", lambda *args: False)
    monkeypatch.setattr(retrieve, "search", lambda *args: (release.wait(5), real_search(*args))[1])

    async def scenario() -> list[int]:
        async def stalled() -> AsyncIterator[bytes]:  # an upload that never finishes in time
            yield b'{"from": "a", '
            await asyncio.sleep(5)

        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://t", headers=AUTH) as http,
        ):
            codes = []
            for path in ("/translate", "/retrieve"):
                codes.append((await http.post(path, content=stalled(), headers=JSON)).status_code)
            codes.append((await http.get("/retrieve", params={"from": "a", "to": "b", "id": "a-1"})).status_code)
            release.set()
            return codes

    assert asyncio.run(scenario()) == [504, 504, 504]
