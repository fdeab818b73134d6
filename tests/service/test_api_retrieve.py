"""GET and POST /retrieve: cross-modal search finds planted partners; bad inputs get clear problems."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from bundle_edits import as_parquet_galleries, edit_manifest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.api.schemas import RetrieveResponse
from problems import problem
from testbundles import embeddings
from testsettings import MAX_K, settings_for


def test_a_stored_item_finds_its_partner_across_two_hops(gallery_client: TestClient) -> None:
    client = gallery_client
    response = client.get("/retrieve", params={"from": "a", "to": "c", "id": "a-17", "k": 5})
    assert response.status_code == 200, response.text
    body = RetrieveResponse.model_validate(response.json())
    assert body.path == ["a", "b", "c"] and body.k == 5
    (result,) = body.results
    assert result.query == "a-17" and len(result.hits) == 5
    top = result.hits[0]
    assert top.id == "c-17" and top.sample == "s17" and top.payload == {"caption": "c of s17"}
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True) and -1.0 <= scores[-1] <= top.score <= 1.0 + 1e-5


def test_same_modality_is_plain_search(gallery_client: TestClient) -> None:
    client = gallery_client
    body = client.get("/retrieve", params={"from": "b", "to": "b", "id": "b-3", "k": 3}).json()
    assert body["path"] == ["b"] and body["fidelity"] == 1.0
    assert body["results"][0]["hits"][0]["id"] == "b-3"
    assert body["results"][0]["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)


def test_raw_vectors_json_and_base64(gallery_client: TestClient, dataset: Path) -> None:
    client = gallery_client
    a = embeddings(dataset, "a")[[5, 6]]
    body = client.post("/retrieve", json={"from": "a", "to": "b", "vectors": a.tolist(), "k": 2}).json()
    assert [r["query"] for r in body["results"]] == [0, 1]
    assert [r["hits"][0]["id"] for r in body["results"]] == ["b-5", "b-6"]
    encoded = base64.b64encode(a.astype("<f4").tobytes()).decode()
    as_b64 = client.post(
        "/retrieve", json={"from": "a", "to": "b", "vectors": encoded, "encoding": "base64", "k": 2}
    )
    assert as_b64.json()["results"] == body["results"]
    single = client.post("/retrieve", json={"from": "a", "to": "b", "vector": a[0].tolist()}).json()
    assert len(single["results"]) == 1 and len(single["results"][0]["hits"]) == 10


def test_pinned_path_for_retrieval(routed_client: TestClient, dataset: Path) -> None:
    a = embeddings(dataset, "a")[9]
    body = routed_client.post(
        "/retrieve", json={"from": "a", "to": "c", "vector": a.tolist(), "path": ["a", "c"]}
    )
    assert body.json()["path"] == ["a", "c"]
    assert body.json()["results"][0]["hits"][0]["id"] == "c-9"


def test_ivf_gallery(ivf_client: TestClient) -> None:
    body = ivf_client.get("/retrieve", params={"from": "a", "to": "c", "id": "a-40", "k": 3}).json()
    assert body["results"][0]["hits"][0]["id"] == "c-40"


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1])
def test_k_out_of_range(client: TestClient, k: int) -> None:
    response = client.get("/retrieve", params={"from": "a", "to": "b", "id": "a-1", "k": k})
    if k < 1:
        body = problem(response, 422, "invalid-request")
        assert body["errors"][0]["loc"] == ["query", "k"]
    else:
        body = problem(response, 422, "k-out-of-range")
        assert body["limit"] == MAX_K and body["got"] == k
    response = client.post("/retrieve", json={"from": "a", "to": "b", "vector": [0.0] * 16, "k": k})
    assert response.status_code == 422


def test_unknown_id(client: TestClient) -> None:
    body = problem(
        client.get("/retrieve", params={"from": "a", "to": "b", "id": "nobody"}), 404, "unknown-item"
    )
    assert "'nobody'" in body["detail"] and "a-0" in body["detail"]


def test_unknown_modality_and_no_route(client: TestClient, split_client: TestClient) -> None:
    body = problem(
        client.get("/retrieve", params={"from": "a", "to": "smell", "id": "a-1"}), 404, "unknown-modality"
    )
    assert body["known"] == ["a", "b", "c"]
    problem(
        client.post("/retrieve", json={"from": "smell", "to": "a", "vector": [0.0] * 16}),
        404,
        "unknown-modality",
    )
    body = problem(
        split_client.get("/retrieve", params={"from": "a", "to": "c", "id": "a-1"}), 409, "no-route"
    )
    assert body["components"] == [["a", "b"], ["c"]]


def test_bad_vectors_for_retrieval(client: TestClient) -> None:
    problem(
        client.post("/retrieve", json={"from": "a", "to": "b", "vector": [0.0] * 3}),
        422,
        "dimension-mismatch",
    )
    problem(
        client.post("/retrieve", json={"from": "a", "to": "b", "vectors": "%%", "encoding": "base64"}),
        422,
        "malformed-vectors",
    )
    problem(
        client.post("/retrieve", content=b"a", headers={"content-type": "text/csv"}),
        415,
        "unsupported-media-type",
    )


def test_a_modality_without_gallery(chain_bundle: Path, tmp_path: Path) -> None:
    bundle = Path(shutil.copytree(chain_bundle, tmp_path / "no-c-gallery"))
    edit_manifest(bundle, lambda m: m.update(galleries=[g for g in m["galleries"] if g["modality"] != "c"],
                                             pivot_galleries=[p for p in m["pivot_galleries"] if p["modality"] != "c"]))
    with TestClient(create_app(settings_for(bundle))) as client:
        body = problem(
            client.get("/retrieve", params={"from": "a", "to": "c", "id": "a-1"}), 404, "no-gallery"
        )
        assert body["galleries"] == ["a", "b"]
        assert (
            client.post(
                "/translate", json={"from": "c", "to": "a", "vector": [0.1] * 16, "confidence": True}
            ).status_code
            == 200
        )
        modalities = client.get("/modalities").json()["modalities"]
        assert [m["gallery"] is None for m in modalities] == [False, False, True]


def test_work_off_the_event_loop_gives_the_same_results(chain_bundle: Path, client: TestClient) -> None:
    params = {"from": "a", "to": "c", "id": "a-5", "k": 4}
    vector = {"from": "a", "to": "c", "vector": [0.2] * 16, "k": 4}
    with TestClient(create_app(settings_for(chain_bundle, inline_max_values=0))) as threaded:
        assert (
            threaded.get("/retrieve", params=params).json() == client.get("/retrieve", params=params).json()
        )
        assert threaded.post("/retrieve", json=vector).json() == client.post("/retrieve", json=vector).json()


def test_a_query_by_id_is_the_stored_raw_vector(gallery_client: TestClient, dataset: Path) -> None:
    """The index keeps only centred unit rows; the raw rows beside it make a query by id exact."""
    client = gallery_client
    raw = embeddings(dataset, "a")[17]
    by_id = client.get("/retrieve", params={"from": "a", "to": "c", "id": "a-17", "k": 5}).json()
    by_vector = client.post("/retrieve", json={"from": "a", "to": "c", "vector": raw.tolist(), "k": 5}).json()
    assert by_id["results"][0]["hits"] == by_vector["results"][0]["hits"]


def test_an_older_bundle_with_a_parquet_id_table_serves_the_same(
    chain_bundle: Path, client: TestClient, tmp_path: Path
) -> None:
    """Bundles written before galleries became columnar files: Parquet ids with an `embedding` column."""
    bundle = as_parquet_galleries(Path(shutil.copytree(chain_bundle, tmp_path / "older")))
    params = {"from": "a", "to": "c", "id": "a-17", "k": 5, "strategy": "chain"}  # older bundles only chain
    with TestClient(create_app(settings_for(bundle))) as older:
        assert older.get("/retrieve", params=params).json() == client.get("/retrieve", params=params).json()
        payload = older.get("/modalities").json()["modalities"][0]["gallery"]["payload"]
        assert payload == ["caption"]  # the embedding column is not a payload
