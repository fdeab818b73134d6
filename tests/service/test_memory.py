"""The heap is trimmed after big requests and answers only, once the route is done; gc.freeze after a load."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from latent_bridge.service.api import memory
from latent_bridge.service.api.app import create_app
from latent_bridge.service.api.memory import TRIM_BYTES
from testbundles import DIMS
from testsettings import settings_for


def test_the_heap_is_trimmed_after_a_big_request_or_answer_only(
    chain_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trims: list[int] = []
    monkeypatch.setattr(memory, "trim_heap", lambda: trims.append(1))
    settings = settings_for(chain_bundle, max_body_bytes=4 * TRIM_BYTES, max_batch=100_000, max_json_values=1 << 22)
    with TestClient(create_app(settings)) as client:
        trims.clear()  # the load's own trim
        one = {"from": "a", "to": "b", "vector": [0.1] * DIMS["a"]}
        assert client.post("/translate", json=one).status_code == 200
        assert trims == []
        big = [[0.1] * DIMS["a"]] * (TRIM_BYTES // (4 * DIMS["a"]))  # over a megabyte of JSON in, and out
        response = client.post("/translate", json={"from": "a", "to": "b", "vectors": big})
        assert response.status_code == 200 and len(response.content) >= TRIM_BYTES
        assert trims == [1]


def test_loading_freezes_the_bundle_out_of_the_collectors_scans(chain_bundle: Path) -> None:
    gc.unfreeze()
    with TestClient(create_app(settings_for(chain_bundle))) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 10_000
    gc.unfreeze()
