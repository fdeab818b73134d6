"""`latent-bridge index`: a corpus larger than the training rows becomes a modality's gallery in a new
bundle; translators are carried byte for byte; retrieval returns corpus items with their payload."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from gallerycorpus import CORPUS_ROWS, TRAINING_ROWS, Served, settings_for
from latent_bridge.cli import main
from latent_bridge.service.api.app import create_app


def manifest(bundle: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((bundle / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_translators_and_other_galleries_are_carried_byte_for_byte(trained: tuple[Path, Path], indexed: Path) -> None:
    parent, child = manifest(trained[1]), manifest(indexed)
    assert child["edges"] == parent["edges"]
    for edge in parent["edges"]:
        assert (indexed / edge["file"]).read_bytes() == (trained[1] / edge["file"]).read_bytes()
    kept = [g for g in parent["galleries"] if g["modality"] != "c"]
    assert [g for g in child["galleries"] if g["modality"] != "c"] == kept
    for g in kept:
        assert (indexed / g["ids_file"]).read_bytes() == (trained[1] / g["ids_file"]).read_bytes()
    assert child["lineage"]["parent"] == "trained" and child["lineage"]["new_galleries"] == ["c"]
    (c,) = [g for g in child["galleries"] if g["modality"] == "c"]
    assert c["size"] == CORPUS_ROWS > TRAINING_ROWS and c["index_type"] == "hnsw"


def test_the_corpus_gallery_is_served_and_searched_with_payload(served: Served) -> None:
    with TestClient(create_app(settings_for(served[0], **served[1]))) as client:
        body = client.get("/retrieve", params={"from": "a", "to": "c", "id": "a-17", "k": 3}).json()
        top = body["results"][0]["hits"][0]
        assert top["id"] == "doc-17" and top["payload"] == {"title": "doc 17", "shelf": "train"}
        if served[1]:  # Milvus: pivot galleries are in-process FAISS, so every search chains and says why
            route = client.get("/route", params={"from": "a", "to": "c"}).json()["strategy"]
            assert body["strategy"] == route["strategy"] == "chain" and route["available"] == ["chain"]
            assert "served by MilvusGallery" in route["note"]
        gallery = client.get("/galleries/c").json()
        assert gallery["size"] == gallery["count"] == CORPUS_ROWS
        assert gallery["payload"] == ["shelf", "title"]
        item = client.get("/galleries/c/items/doc-4000").json()
        assert item["payload"] == {"title": "doc 4000", "shelf": "extra"} and len(item["vector"]) == 16


def test_search_effort_is_tuned_to_the_target_recall_and_recorded(indexed: Path) -> None:
    (c,) = [g for g in manifest(indexed)["galleries"] if g["modality"] == "c"]
    search = c["search"]
    assert search["parameter"] == "efSearch" and search["recall_at_10"] >= search["target_recall"] == 0.95
    assert search["queries"] > 0 and "translated into c" in search["query_source"]
    assert search["p50_ms"] > 0 and search["value"] <= search["limit"]


def test_a_request_may_raise_the_effort_within_limits(indexed: Path) -> None:
    (c,) = [g for g in manifest(indexed)["galleries"] if g["modality"] == "c"]
    limit = c["search"]["limit"]
    with TestClient(create_app(settings_for(indexed))) as client:
        params = {"from": "a", "to": "c", "id": "a-5", "k": 3}
        assert client.get("/retrieve", params=params | {"effort": limit}).status_code == 200
        refused = client.get("/retrieve", params=params | {"effort": limit + 1})
        assert refused.status_code == 422 and refused.json()["type"].endswith("effort-out-of-range")


def test_where_filters_on_payload_equality_and_in(served: Served, trained: tuple[Path, Path]) -> None:
    a = np.stack(pd.read_parquet(trained[0] / "a.parquet")["embedding"].to_list())[17]
    with TestClient(create_app(settings_for(served[0], **served[1]))) as client:
        def hits(where: dict[str, object], k: int = 10) -> list[dict[str, object]]:
            body = {"from": "a", "to": "c", "vector": a.tolist(), "k": k, "where": where}
            response = client.post("/retrieve", json=body)
            assert response.status_code == 200, response.text
            return response.json()["results"][0]["hits"]  # type: ignore[no-any-return]

        assert {h["payload"]["shelf"] for h in hits({"shelf": "extra"})} == {"extra"}
        assert [h["id"] for h in hits({"title": ["doc 17", "doc 4000"]}, k=5)] == ["doc-17", "doc-4000"]
        assert hits({"shelf": "nowhere"}) == []
        assert hits({"shelf": 'extra" or shelf != "'}) == []  # quoted, never part of the filter's syntax
        unknown = client.post("/retrieve", json={"from": "a", "to": "c", "vector": a.tolist(), "where": {"x": 1}})
        assert unknown.status_code == 422 and "shelf" in unknown.json()["detail"]


def test_a_batch_of_ids_and_exclude_self(served: Served) -> None:
    with TestClient(create_app(settings_for(served[0], **served[1]))) as client:
        body = {"from": "c", "to": "c", "ids": ["doc-3", "doc-4000"], "k": 2}
        plain = client.post("/retrieve", json=body).json()["results"]
        assert [r["query"] for r in plain] == ["doc-3", "doc-4000"]
        assert [r["hits"][0]["id"] for r in plain] == ["doc-3", "doc-4000"]
        excluded = client.post("/retrieve", json=body | {"exclude_self": True}).json()["results"]
        assert all(r["query"] not in [h["id"] for h in r["hits"]] and len(r["hits"]) == 2 for r in excluded)
        assert excluded[0]["hits"][0] == plain[0]["hits"][1]
        by_get = client.get("/retrieve", params={"from": "c", "to": "c", "id": "doc-3", "k": 2, "exclude_self": True})
        got = by_get.json()["results"][0]["hits"]
        assert [h["id"] for h in got] == [h["id"] for h in excluded[0]["hits"]]
        assert [h["score"] for h in got] == pytest.approx([h["score"] for h in excluded[0]["hits"]], abs=1e-5)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda f: f.drop(columns=["embedding"]), "missing column(s) ['embedding']"),
        (lambda f: f.assign(embedding=[np.zeros(8, np.float32)] * len(f)), "embedding of 8 values at row 0"),
        (lambda f: f.assign(id=["same"] * len(f)), "duplicate id 'same'"),
    ],
)
def test_a_bad_corpus_is_refused_naming_the_file(
    trained: tuple[Path, Path], corpus: Path, tmp_path: Path, change: object, reason: str
) -> None:
    bad = tmp_path / "bad.parquet"
    change(pd.read_parquet(corpus).head(100)).to_parquet(bad)  # type: ignore[operator]
    with pytest.raises(SystemExit) as exited:
        main(["index", "--bundle", str(trained[1]), "--modality", "c", "--data", str(bad),
              "--out", str(tmp_path / "o"), "--quiet"])
    assert str(bad) in str(exited.value) and reason in str(exited.value)
    assert not (tmp_path / "o").exists()


def test_train_with_gallery_data_indexes_the_corpus_in_the_same_run(trained: tuple[Path, Path], corpus: Path,
                                                                    tmp_path: Path) -> None:
    folder = tmp_path / "galleries"
    folder.mkdir()
    (folder / "c.parquet").write_bytes(corpus.read_bytes())
    out = tmp_path / "with-corpus"
    main(["train", "--data", str(trained[0]), "--edges", "a:b,b:c", "--kind", "ridge", "--out", str(out),
          "--gallery-data", str(folder), "--gallery-index-type", "flat", "--quiet"])
    built = manifest(out)
    sizes = {g["modality"]: g["size"] for g in built["galleries"]}
    assert sizes == {"a": TRAINING_ROWS, "b": TRAINING_ROWS, "c": CORPUS_ROWS}
    assert built["lineage"] == {"parent": None, "parent_fingerprint": None, "new_edges": built["lineage"]["new_edges"],
                                "new_galleries": ["c"], "folded_writes": {}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["galleries", "with-corpus"]  # no trained leftover


def test_a_filter_leaving_many_rows_goes_through_the_ann_index(
    indexed: Path, trained: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above EXACT_SUBSET_MAX rows a filter becomes a FAISS selector on the HNSW search itself."""
    import latent_bridge.service.galleries.faiss_gallery as gallery_module

    monkeypatch.setattr(gallery_module, "EXACT_SUBSET_MAX", 0)
    a = np.stack(pd.read_parquet(trained[0] / "a.parquet")["embedding"].to_list())[17]
    with TestClient(create_app(settings_for(indexed))) as client:
        body = {"from": "a", "to": "c", "vector": a.tolist(), "k": 10}
        extra = client.post("/retrieve", json=body | {"where": {"shelf": "extra"}}).json()["results"][0]["hits"]
        assert len(extra) == 10 and {h["payload"]["shelf"] for h in extra} == {"extra"}
        train = client.post("/retrieve", json=body | {"where": {"shelf": ["train"]}}).json()["results"][0]["hits"]
        assert train[0]["id"] == "doc-17" and {h["payload"]["shelf"] for h in train} == {"train"}


def test_ivf_pq_is_tuned_with_exact_rescoring_and_served(trained: tuple[Path, Path], corpus: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "pq"
    main(["index", "--bundle", str(trained[1]), "--modality", "c", "--data", str(corpus),
          "--index-type", "ivf-pq", "--out", str(out), "--quiet"])
    (c,) = [g for g in manifest(out)["galleries"] if g["modality"] == "c"]
    assert c["index_type"] == "ivf-pq" and c["search"]["parameter"] == "nprobe"
    assert c["search"]["rerank"] > 1 and c["search"]["recall_at_10"] >= 0.95
    with TestClient(create_app(settings_for(out))) as client:
        top = client.get("/retrieve", params={"from": "a", "to": "c", "id": "a-17", "k": 3}).json()
        assert top["results"][0]["hits"][0]["id"] == "doc-17"


@pytest.mark.parametrize("backend", ["faiss", "milvus"])
def test_a_folder_of_corpora_indexes_every_gallery_in_one_bundle(
    trained: tuple[Path, Path], corpus: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """`index --data <folder>`: each <modality>.parquet becomes that modality's gallery (what the compose
    Milvus profile runs over the demo dataset); with --modality, only that one."""
    import shutil

    folder = tmp_path / "corpora"
    folder.mkdir()
    for name in ("b", "c"):
        shutil.copyfile(corpus, folder / f"{name}.parquet")
    args = ["index", "--bundle", str(trained[1]), "--data", str(folder), "--out", str(tmp_path / "all"), "--quiet"]
    if backend == "milvus":
        args += ["--backend", "milvus", "--milvus-uri", request.getfixturevalue("milvus_lite").uri]
    main(args)
    manifest = json.loads((tmp_path / "all" / "manifest.json").read_text())
    sizes = {g["modality"]: g["size"] for g in manifest["galleries"]}
    assert sizes["b"] == sizes["c"] == CORPUS_ROWS and sizes["a"] == TRAINING_ROWS
    assert sorted(manifest["lineage"]["new_galleries"]) == ["b", "c"]
    if backend == "milvus":
        assert all(g.get("milvus") for g in manifest["galleries"] if g["modality"] in ("b", "c"))
    main(["index", "--bundle", str(trained[1]), "--data", str(folder), "--modality", "c", "--out",
          str(tmp_path / "one"), "--quiet"])
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert one["lineage"]["new_galleries"] == ["c"]
