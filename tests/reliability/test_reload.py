"""Hot reload in process: a good bundle is swapped in (readyz and metrics name it), a request in flight
finishes on the old one, and each corrupt bundle is refused naming its file while the old one serves on."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.bundle.loader import load_bundle
from reliability_bundles import CORRUPTIONS, DIM
from testsettings import ADMIN_KEY, KEYS, settings_for

AUTH = {"x-api-key": ADMIN_KEY}  # the admin key opens the read routes too
QUERY = {"from": "a", "to": "b", "vector": [0.3, -0.2, 0.5, 0.1, 0.0, 0.7, -0.4, 0.2], "normalize": False}


@pytest.fixture
def client(bundle_one: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    models = tmp_path_factory.getbasetemp()  # holds the session bundles and every test's copies
    with TestClient(create_app(settings_for(bundle_one, **KEYS, models_dir=models)), headers=AUTH) as client:
        yield client


def served(client: TestClient) -> tuple[str, str]:
    ready = client.get("/readyz").json()
    return ready["bundle"], ready["fingerprint"]


def metrics_bundle(client: TestClient) -> str:
    lines = client.get("/metrics").text.splitlines()
    return next(line for line in lines if line.startswith("latent_bridge_bundle_info"))


def test_reload_swaps_in_the_named_bundle_then_the_configured_one(
    client: TestClient, bundle_one: Path, bundle_two: Path
) -> None:
    one, two = load_bundle(bundle_one), load_bundle(bundle_two)
    assert served(client) == ("one", one.fingerprint)
    response = client.post("/admin/reload", json={"bundle": str(bundle_two)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["bundle"], body["fingerprint"], body["path"]) == ("two", two.fingerprint, str(bundle_two))
    assert body["previous"] == {"bundle": "one", "fingerprint": one.fingerprint}
    assert served(client) == ("two", two.fingerprint)
    info = metrics_bundle(client)
    assert 'name="two"' in info and f'fingerprint="{two.fingerprint}"' in info
    assert 'latent_bridge_reloads_total{result="ok"} 1.0' in client.get("/metrics").text
    # an empty body (or none) reloads the configured bundle
    for kwargs in ({"json": {}}, {}):
        assert client.post("/admin/reload", **kwargs).json()["bundle"] == "one"  # type: ignore[arg-type]
    assert served(client) == ("one", one.fingerprint)


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_a_corrupt_bundle_is_refused_and_the_old_one_serves_on(
    client: TestClient, bundle_one: Path, bundle_copy: Callable[[Path], Path], corruption: str
) -> None:
    damage, file, reason = CORRUPTIONS[corruption]
    bad = bundle_copy(bundle_one)
    damage(bad)
    before = client.post("/translate", json=QUERY).json()["vectors"]
    response = client.post("/admin/reload", json={"bundle": str(bad)})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["type"].endswith("bundle-refused") and body["bundle"] == str(bad)
    assert str(bad / file) in body["detail"] and reason in body["detail"]
    assert served(client)[0] == "one"
    assert client.post("/translate", json=QUERY).json()["vectors"] == before
    assert 'latent_bridge_reloads_total{result="refused"} 1.0' in client.get("/metrics").text


def test_a_missing_folder_and_a_bad_body_are_refused(client: TestClient, tmp_path: Path) -> None:
    response = client.post("/admin/reload", json={"bundle": str(tmp_path / "nope")})
    assert response.status_code == 422 and "not a bundle folder" in response.json()["detail"]
    assert client.post("/admin/reload", json={"bundle": ""}).status_code == 422
    assert client.post("/admin/reload", json={"bundel": "x"}).status_code == 422
    assert client.post("/admin/reload", content=b"x", headers={"content-type": "text/plain"}).status_code == 415


def test_requests_in_flight_finish_on_the_old_bundle(
    bundle_one: Path, bundle_two: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import latent_bridge.service.api.routes.translate as translate

    x = np.array([QUERY["vector"]], dtype=np.float32)
    old_answer = load_bundle(bundle_one).translators["a", "b"](x)[0]
    new_answer = load_bundle(bundle_two).translators["a", "b"](x)[0]
    assert not np.allclose(old_answer, new_answer, atol=1e-3)

    inside, release = threading.Event(), threading.Event()
    real_run_route = translate.run_route

    def held_run_route(*args: Any) -> Any:
        if not release.is_set():
            inside.set()
            release.wait(10)
        return real_run_route(*args)

    monkeypatch.setattr(translate, "run_route", held_run_route)
    app = create_app(settings_for(bundle_one, **KEYS, inline_max_values=0))  # work in threads

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test", headers=AUTH) as http,
        ):
            in_flight = asyncio.create_task(http.post("/translate", json=QUERY))
            await asyncio.to_thread(inside.wait, 10)  # the request holds the old bundle now
            reload = await http.post("/admin/reload", json={"bundle": str(bundle_two)})
            release.set()
            after = await http.post("/translate", json=QUERY)
            return await in_flight, reload, after

    first, reload, after = asyncio.run(scenario())
    assert reload.status_code == 200 and reload.json()["bundle"] == "two"
    assert first.status_code == 200 and after.status_code == 200
    np.testing.assert_allclose(first.json()["vectors"][0], old_answer, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(after.json()["vectors"][0], new_answer, rtol=1e-5, atol=1e-6)
    assert len(QUERY["vector"]) == DIM  # type: ignore[arg-type]
