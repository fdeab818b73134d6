"""The grow walk-through on the real demo data: a bundle without audio, then audio linked to text only.

After a hot reload the running server routes audio → image through text, an edge pair that never saw
audio–image data.
"""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.settings import Settings
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.grow import add_modality
from latent_bridge.training.report.run_report import evaluate_bundle
from latent_bridge.training.train import train

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"
KEY = "walk-through-key-0123456789"


@pytest.mark.slow
def test_add_audio_to_a_bundle_without_it_and_reload(tmp_path: Path) -> None:
    parent = tmp_path / "no-audio"
    train(TrainConfig(data=DEMO, out=parent, edges=[("image", "text")], holdout=0.2, progress=False))
    child = tmp_path / "with-audio"
    add_modality(parent, DEMO, "audio", ["text"], TrainConfig(data=DEMO, out=child, progress=False))

    report = evaluate_bundle(child, DEMO, tmp_path / "report", curve_seeds=0)
    routed = next(r for r in report["routes"] if r["route"] == ["audio", "text", "image"])  # type: ignore[attr-defined]
    assert routed["r10"] > 3 * 10 / routed["n_gallery"]  # chance R@10 is 10 / gallery size

    with TestClient(create_app(Settings(bundle=parent, admin_key=KEY))) as client:  # the admin key reads too
        auth = {"X-API-Key": KEY}
        assert client.get("/route", params={"from": "audio", "to": "image"}, headers=auth).status_code == 404
        reloaded = client.post("/admin/reload", json={"bundle": str(child)}, headers=auth)
        assert reloaded.status_code == 200, reloaded.text
        route = client.get("/route", params={"from": "audio", "to": "image"}, headers=auth).json()
        assert route["best"]["path"] == ["audio", "text", "image"]
        hits = client.get("/retrieve", params={"from": "audio", "to": "image", "k": 10,
                                               "id": "audio:effect:animals/mammals/dogs/dog"}, headers=auth)
        assert hits.status_code == 200
        assert hits.json()["path"] == ["audio", "text", "image"]
        assert len(hits.json()["results"][0]["hits"]) == 10
