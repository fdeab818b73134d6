"""`compact` of the demo bundle (real encoders, media thumbnails) after 1,000 run-time writes: the new
bundle carries the encoders and media like every other file, holds every written item, and serves the same
answers (issue: compact and index failed with "encoders/text/model.onnx: missing")."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from encoder_bundle import DEMO_DATA, DOG_IMAGE_ID, EncoderBundles
from fastapi.testclient import TestClient
from latent_bridge.cli import main
from latent_bridge.service.api.app import create_app
from latent_bridge.service.bundle.manifest import read_manifest
from latent_bridge.service.settings import Settings
from latent_bridge.training.datasets.reader import load_modality
from testsettings import ADMIN_KEY, API_KEY, KEYS

pytestmark = [pytest.mark.slow, pytest.mark.encoders]
READ = {"X-API-Key": API_KEY}
ADMIN = {"X-API-Key": ADMIN_KEY}
WRITES = 1000
QUERIES = [{"from": "audio", "to": "text", "ids": ["audio:effect:animals/mammals/dogs/dog"]},
           {"from": "image", "to": "text", "ids": [DOG_IMAGE_ID]},
           {"from": "text", "to": "image", "text": "a fire truck"}]


def served(bundle: Path) -> Settings:
    return Settings(bundle=bundle, **KEYS)  # type: ignore[arg-type]  # the default limits, as `serve` runs


def answers(client: TestClient) -> list[list[tuple[str, float]]]:
    found = []
    for query in QUERIES:
        response = client.post("/retrieve", headers=READ, json=query | {"k": 5})
        assert response.status_code == 200, response.text
        found.append([(h["id"], h["score"]) for h in response.json()["results"][0]["hits"]])
    return found


def test_compact_after_1000_writes_carries_encoders_and_media_and_serves_the_same(
    encoder_bundles: EncoderBundles, tmp_path: Path
) -> None:
    bundle = Path(shutil.copytree(encoder_bundles.with_encoders, tmp_path / "demo"))
    with TestClient(create_app(served(bundle))) as client:
        captions = load_modality(DEMO_DATA / "text.parquet").embeddings
        mean, spread = captions.mean(axis=0), float(np.linalg.norm(captions - captions.mean(axis=0), axis=1).mean())
        rng = np.random.default_rng(0)
        noise = rng.standard_normal((WRITES, captions.shape[1]))
        # random directions around the captions' mean: far from every caption (no answer moves) and leaving
        # the gallery's centring where it was
        far = (mean + spread * noise / np.linalg.norm(noise, axis=1, keepdims=True)).astype(np.float32)
        for start in range(0, WRITES, 25):
            ids = [f"written/{i}" for i in range(start, start + 25)]
            put = client.put("/galleries/text/items", headers=ADMIN,
                             json={"ids": ids, "vectors": far[start:start + 25].tolist()})
            assert put.status_code == 200, put.text
        before = answers(client)
        count = client.get("/galleries/text", headers=READ).json()["count"]
    out = tmp_path / "compacted"
    main(["compact", "--bundle", str(bundle), "--out", str(out), "--quiet"])
    manifest, parent = read_manifest(out), read_manifest(bundle)
    assert [e.model_dump() for e in manifest.encoders] == [e.model_dump() for e in parent.encoders]
    for file in manifest.fixed_files():
        assert (out / file).read_bytes() == (bundle / file).read_bytes(), file
    with TestClient(create_app(served(out))) as client:
        assert client.get("/galleries/text", headers=READ).json()["count"] == count
        assert client.get("/galleries/text/items/written/7", headers=READ).status_code == 200
        assert client.get("/media", headers=READ, params={"modality": "image", "id": DOG_IMAGE_ID}).status_code == 200
        after = answers(client)
    for old, new in zip(before, after, strict=True):
        assert [i for i, _ in new] == [i for i, _ in old]
        # Scores move together at most: a CSLS route's terms now cover the written items too, which moves
        # the gallery's mean term (CSLS's centre) and so every score by the same amount.
        shift = np.array([s for _, s in new]) - np.array([s for _, s in old])
        assert np.ptp(shift) < 0.005 and abs(shift.mean()) < 0.05, shift
