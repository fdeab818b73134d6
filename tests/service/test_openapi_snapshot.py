"""The served OpenAPI document equals the committed openapi.json, and is fit for generated clients."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.api.openapi_snapshot import KEYED_SNAPSHOT, SNAPSHOT, render
from testsettings import ADMIN_KEY, API_KEY, settings_for

REGENERATE = "regenerate with `python -m latent_bridge.service.api.openapi_snapshot` and review the diff"


def served_document(chain_bundle: object, **settings: object) -> dict:  # type: ignore[type-arg]
    with TestClient(create_app(settings_for(chain_bundle, **settings))) as client:  # type: ignore[arg-type]
        response = client.get("/openapi.json")
        assert response.status_code == 200
        document: dict = response.json()  # type: ignore[type-arg]
        return document


def test_openapi_matches_the_committed_snapshots(chain_bundle: object) -> None:
    """Both documents: without keys, and with the API and admin keys (security schemes, 401/403, admin
    routes), at the default limits the snapshots are rendered with."""
    for snapshot, keys in ((SNAPSHOT, (None, None)), (KEYED_SNAPSHOT, (API_KEY, ADMIN_KEY))):
        document = served_document(chain_bundle, api_key=keys[0], admin_key=keys[1], max_k=100)
        assert snapshot.is_file(), f"{snapshot} is missing; {REGENERATE}"
        assert render(document) == snapshot.read_text(), f"the API changed; {REGENERATE}"
    keyed = KEYED_SNAPSHOT.read_text()
    assert '"securitySchemes"' in keyed and '"/admin/reload"' in keyed and '"401"' in keyed


def test_every_operation_is_documented_for_clients(chain_bundle: object) -> None:
    document = served_document(chain_bundle)
    operations = [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids)) == 13
    assert set(ids) == {
        "translate",
        "get_gallery",
        "get_item",
        "retrieve_by_id",
        "retrieve_by_vectors",
        "get_route",
        "get_graph",
        "list_modalities",
        "healthz",
        "readyz",
        "metrics",
        "embed",
        "get_media",
    }
    for path, method, op in operations:
        assert op.get("tags") and op.get("summary"), (path, method)
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (path, method, status)
    schemas = document["components"]["schemas"]
    assert "examples" in schemas["TranslateRequest"] and "examples" in schemas["Problem"]
    assert {"404", "409", "413", "415", "422", "503", "504"} <= set(
        document["paths"]["/translate"]["post"]["responses"]
    )
    assert json.dumps(document)  # serialisable as is


def test_documented_examples_are_valid() -> None:
    from latent_bridge.service.api import schemas

    models = [
        schemas.TranslateRequest,
        schemas.TranslateResponse,
        schemas.RetrieveRequest,
        schemas.RetrieveResponse,
        schemas.RouteResponse,
        schemas.Problem,
    ]
    for model in models:
        examples = model.model_config["json_schema_extra"]["examples"]  # type: ignore[index]
        assert examples, model
        for example in examples:  # type: ignore[union-attr]
            model.model_validate(example)
