"""What a client or a person reading /docs needs: offline Swagger UI that works with a key, examples valid
on the demo data, the limits in the schema, CORS only when asked for, process metrics."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from latent_bridge.service.api import examples
from latent_bridge.service.api.app import create_app
from testsettings import API_KEY, MAX_K, settings_for

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def test_docs_are_served_from_our_own_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/assets/") for s in sources), sources
    assert "cdn" not in page.text.lower() and '"persistAuthorization": false' in page.text
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200 and len(asset.content) > 1000, source
    assert "isOAS31" in client.get("/docs/assets/swagger-ui-bundle.js").text  # renders OpenAPI 3.1


def test_docs_work_with_a_key_set(chain_bundle: Path) -> None:
    """The page, its assets and the spec load without the key; the API itself still needs it."""
    with TestClient(create_app(settings_for(chain_bundle, api_key=API_KEY))) as keyed:
        page = keyed.get("/docs")
        assert page.status_code == 200
        for source in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert keyed.get(source).status_code == 200, source
        document = keyed.get("/openapi.json")
        assert document.status_code == 200 and "APIKeyHeader" in document.json()["components"]["securitySchemes"]
        assert keyed.get("/modalities").status_code == 401
        assert keyed.get("/modalities", headers={"x-api-key": API_KEY}).status_code == 200


def test_the_schema_states_k_maximum_servers_and_contact(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["components"]["schemas"]["RetrieveRequest"]["properties"]["k"]["maximum"] == MAX_K
    k = next(p for p in document["paths"]["/retrieve"]["get"]["parameters"] if p["name"] == "k")
    assert k["schema"]["maximum"] == MAX_K
    assert document["servers"][0]["url"] == "http://localhost:8000" and document["info"]["contact"]["name"]


def test_the_examples_are_real_demo_data() -> None:
    """The example vector is the demo dataset's bark, and the example ids exist there."""
    audio = pq.read_table(DEMO / "audio.parquet")
    row = audio.column("id").to_pylist().index(examples.BARK_ID)
    bark = np.frombuffer(base64.b64decode("".join(examples.BARK)), dtype="<f4")
    np.testing.assert_array_equal(bark, np.asarray(audio.column("embedding")[row].as_py(), dtype=np.float32))
    assert examples.FIRE_ENGINE_ID in pq.read_table(DEMO / "text.parquet").column("id").to_pylist()
    for example in [*examples.TRANSLATE.values(), *examples.RETRIEVE.values()]:
        assert example["value"]["from"] == "audio" and example["value"]["vector"] == examples.BARK


def test_cors_is_off_by_default_and_follows_the_allowed_origins(client: TestClient, chain_bundle: Path) -> None:
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "content-type,x-api-key"}
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"origin": "https://app.example"}).headers
    settings = settings_for(chain_bundle, api_key=API_KEY, cors_origins=["https://app.example"])
    with TestClient(create_app(settings)) as allowed:
        answer = allowed.options("/translate", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-api-key" in answer.headers["access-control-allow-headers"].lower()
        other = allowed.options("/translate", headers=preflight | {"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        simple = allowed.get("/healthz", headers={"origin": "https://app.example"})
        assert simple.headers["access-control-allow-origin"] == "https://app.example"


def test_metrics_carry_process_and_python_collectors(client: TestClient) -> None:
    text = client.get("/metrics").text
    for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "python_info",
                 "python_gc_objects_collected_total"):
        assert f"\n{name}" in text, name
