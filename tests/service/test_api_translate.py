"""POST /translate against a real bundle: vectors, encodings, routes, confidence and every bad input."""

from __future__ import annotations

import asyncio
import base64
import shutil
from pathlib import Path
from typing import Any

import latent_bridge.service.api.routes.translate as translate_routes
import numpy as np
import onnxruntime as ort
import pytest
from bundle_edits import edit_manifest
from fastapi.testclient import TestClient
from latent_bridge.service.api.app import create_app
from latent_bridge.service.api.schemas import TranslateResponse
from problems import problem
from testbundles import embeddings
from testsettings import MAX_BATCH, settings_for


def b64(x: np.ndarray) -> str:
    return base64.b64encode(np.asarray(x, dtype="<f4").tobytes()).decode()


def onnx_chain(bundle: Path, path: list[str], x: np.ndarray) -> np.ndarray:
    for a, b in zip(path, path[1:], strict=False):
        session = ort.InferenceSession(str(bundle / f"translators/{a}__{b}.onnx"))
        x = session.run(["output"], {"input": x})[0]
    return x


@pytest.fixture(scope="module")
def a_rows(dataset: Path) -> np.ndarray:
    return embeddings(dataset, "a")[:8]


def test_translate_a_batch_along_the_best_route(
    client: TestClient, chain_bundle: Path, a_rows: np.ndarray
) -> None:
    response = client.post(
        "/translate", json={"from": "a", "to": "c", "vectors": a_rows.tolist(), "normalize": False}
    )
    assert response.status_code == 200, response.text
    body = TranslateResponse.model_validate(response.json())
    assert body.path == ["a", "b", "c"] and [(h.source, h.target) for h in body.hops] == [
        ("a", "b"),
        ("b", "c"),
    ]
    assert body.fidelity == pytest.approx(body.hops[0].fidelity * body.hops[1].fidelity)
    assert body.count == 8 and body.dim == 16 and body.confidence is None
    expected = onnx_chain(chain_bundle, ["a", "b", "c"], a_rows)
    np.testing.assert_allclose(np.array(body.vectors), expected, rtol=1e-5, atol=1e-6)


def test_outputs_are_unit_norm_by_default(client: TestClient, a_rows: np.ndarray) -> None:
    body = client.post("/translate", json={"from": "a", "to": "b", "vector": a_rows[0].tolist()}).json()
    assert np.linalg.norm(body["vectors"], axis=1) == pytest.approx([1.0], abs=1e-5)


def test_base64_in_and_out_equals_json(client: TestClient, a_rows: np.ndarray) -> None:
    as_json = client.post("/translate", json={"from": "a", "to": "c", "vectors": a_rows.tolist()}).json()
    as_b64 = client.post(
        "/translate", json={"from": "a", "to": "c", "vectors": b64(a_rows), "encoding": "base64"}
    )
    assert as_b64.status_code == 200, as_b64.text
    body = as_b64.json()
    assert body["encoding"] == "base64" and isinstance(body["vectors"], str)
    decoded = np.frombuffer(base64.b64decode(body["vectors"]), dtype="<f4").reshape(
        body["count"], body["dim"]
    )
    np.testing.assert_allclose(decoded, np.array(as_json["vectors"]), rtol=1e-6)
    single = client.post(
        "/translate", json={"from": "a", "to": "c", "vector": b64(a_rows[0]), "encoding": "base64"}
    )
    assert single.json()["count"] == 1


def test_round_trip_confidence(client: TestClient, a_rows: np.ndarray) -> None:
    body = client.post(
        "/translate", json={"from": "a", "to": "c", "vectors": a_rows.tolist(), "confidence": True}
    )
    confidence = body.json()["confidence"]
    assert len(confidence) == 8
    assert min(confidence) > 0.95  # a planted rotation: the round trip a→b→c→b→a comes back nearly exactly
    noise = np.random.default_rng(0).standard_normal((2, 16)) * 50
    far = client.post(
        "/translate", json={"from": "a", "to": "c", "vectors": noise.tolist(), "confidence": True}
    )
    assert all(-1.0 <= c <= 1.0 for c in far.json()["confidence"])


def test_pinned_path(routed_client: TestClient, routed_bundle: Path, a_rows: np.ndarray) -> None:
    best = routed_client.post("/translate", json={"from": "a", "to": "c", "vectors": a_rows.tolist()}).json()
    assert best["path"] == ["a", "b", "c"]
    pinned = routed_client.post(
        "/translate",
        json={"from": "a", "to": "c", "vectors": a_rows.tolist(), "path": ["a", "c"], "normalize": False},
    ).json()
    assert pinned["path"] == ["a", "c"] and pinned["fidelity"] == pytest.approx(0.6)
    np.testing.assert_allclose(
        np.array(pinned["vectors"]), onnx_chain(routed_bundle, ["a", "c"], a_rows), rtol=1e-5
    )


def test_same_modality_is_identity(client: TestClient, a_rows: np.ndarray) -> None:
    body = client.post(
        "/translate",
        json={"from": "b", "to": "b", "vectors": a_rows.tolist(), "normalize": False, "confidence": True},
    ).json()
    assert body["path"] == ["b"] and body["hops"] == [] and body["fidelity"] == 1.0
    np.testing.assert_allclose(np.array(body["vectors"]), a_rows, rtol=1e-6)
    assert body["confidence"] == pytest.approx([1.0] * 8)


def test_a_large_batch_runs_in_the_thread_pool(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small work runs on the event loop; past ``inline_max_values`` input numbers it runs in a worker
    thread (a thread with no running event loop)."""
    on_loop: list[bool] = []
    real = translate_routes.translation

    def spy(*args: Any) -> bytes:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(*args)

    monkeypatch.setattr(translate_routes, "translation", spy)
    x = np.random.default_rng(2).standard_normal((MAX_BATCH, 16)).astype(np.float32)
    app_settings = client.app.state.settings  # type: ignore[attr-defined]
    assert x.size <= app_settings.inline_max_values
    # Only the count of numbers decides here: the translators' cost, timed at load, may exceed the time limit
    # on a loaded machine, so the time limit is lifted for both requests.
    untimed = app_settings.model_copy(update={"inline_max_seconds": 1.0})
    client.app.state.settings = untimed  # type: ignore[attr-defined]
    try:
        assert client.post("/translate", json={"from": "a", "to": "c", "vectors": x.tolist()}).status_code == 200
        client.app.state.settings = untimed.model_copy(update={"inline_max_values": x.size - 1})  # type: ignore[attr-defined]
        body = client.post("/translate", json={"from": "a", "to": "c", "vectors": x.tolist()}).json()
        assert body["count"] == MAX_BATCH
    finally:
        client.app.state.settings = app_settings  # type: ignore[attr-defined]
    assert on_loop == [True, False]


def test_unknown_modality_lists_the_known_ones(client: TestClient) -> None:
    body = problem(
        client.post("/translate", json={"from": "a", "to": "smell", "vector": [0.0] * 16}),
        404,
        "unknown-modality",
    )
    assert body["known"] == ["a", "b", "c"] and "smell" in body["detail"]


def test_wrong_dimension_says_expected_and_got(client: TestClient) -> None:
    body = problem(
        client.post("/translate", json={"from": "a", "to": "b", "vectors": [[0.0] * 16, [0.0] * 12]}),
        422,
        "dimension-mismatch",
    )
    assert body["expected"] == 16 and body["got"] == 12 and body["row"] == 1
    body = problem(
        client.post(
            "/translate", json={"from": "a", "to": "b", "vectors": b64(np.zeros(20)), "encoding": "base64"}
        ),
        422,
        "dimension-mismatch",
    )
    assert body["expected"] == 16


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e39"])
def test_non_finite_values_are_refused(client: TestClient, value: str) -> None:
    vector = ",".join(["0.5"] * 15 + [value])
    content = f'{{"from": "a", "to": "b", "vectors": [[{",".join(["0.1"] * 16)}], [{vector}]]}}'
    body = problem(
        client.post("/translate", content=content, headers={"content-type": "application/json"}),
        422,
        "non-finite-input",
    )
    assert body["rows"] == [1]


def test_non_finite_base64_is_refused(client: TestClient) -> None:
    x = np.zeros((2, 16), dtype=np.float32)
    x[0, 3] = np.nan
    problem(
        client.post("/translate", json={"from": "a", "to": "b", "vectors": b64(x), "encoding": "base64"}),
        422,
        "non-finite-input",
    )


def test_empty_and_oversized_batches(client: TestClient) -> None:
    problem(client.post("/translate", json={"from": "a", "to": "b", "vectors": []}), 422, "empty-batch")
    problem(client.post("/translate", json={"from": "a", "to": "b"}), 422, "empty-batch")
    too_many = [[0.0] * 16] * (MAX_BATCH + 1)
    body = problem(
        client.post("/translate", json={"from": "a", "to": "b", "vectors": too_many}), 413, "batch-too-large"
    )
    assert body["limit"] == MAX_BATCH and body["got"] == MAX_BATCH + 1
    body = problem(
        client.post(
            "/translate",
            json={
                "from": "a",
                "to": "b",
                "vectors": b64(np.zeros((MAX_BATCH + 1, 16))),
                "encoding": "base64",
            },
        ),
        413,
        "batch-too-large",
    )
    assert body["limit"] == MAX_BATCH


def test_malformed_base64(client: TestClient) -> None:
    body = problem(
        client.post(
            "/translate", json={"from": "a", "to": "b", "vectors": "@@not base64@@", "encoding": "base64"}
        ),
        422,
        "malformed-vectors",
    )
    assert "base64" in body["detail"]
    problem(
        client.post("/translate", json={"from": "a", "to": "b", "vectors": "AAAA", "encoding": "float"}),
        422,
        "malformed-vectors",
    )


def test_pinned_path_problems(routed_client: TestClient, client: TestClient) -> None:
    vector = [0.1] * 16
    body = problem(
        client.post("/translate", json={"from": "a", "to": "c", "vector": vector, "path": ["a", "c"]}),
        409,
        "missing-edge",
    )
    assert body["edge"] == ["a", "c"] and body["available"] == ["b"]
    problem(
        routed_client.post("/translate", json={"from": "a", "to": "c", "vector": vector, "path": ["b", "c"]}),
        422,
        "invalid-path",
    )
    problem(
        routed_client.post(
            "/translate", json={"from": "a", "to": "c", "vector": vector, "path": ["a", "x", "c"]}
        ),
        404,
        "unknown-modality",
    )


def test_no_route(split_client: TestClient) -> None:
    body = problem(
        split_client.post("/translate", json={"from": "a", "to": "c", "vector": [0.1] * 16}), 409, "no-route"
    )
    assert body["components"] == [["a", "b"], ["c"]]


def test_schema_violations_and_unknown_fields(client: TestClient) -> None:
    body = problem(
        client.post("/translate", json={"from": "a", "to": "b", "vectors": [["x"] * 16]}),
        422,
        "invalid-request",
    )
    assert body["errors"] and body["errors"][0]["loc"][:2] == ["body", "vectors"]
    body = problem(
        client.post(
            "/translate", json={"from": "a", "to": "b", "vector": [0.0] * 16, "encoding_format": "base64"}
        ),
        422,
        "invalid-request",
    )
    assert "encoding_format" in body["detail"]
    problem(client.post("/translate", json={"to": "b", "vector": [0.0] * 16}), 422, "invalid-request")


def test_malformed_json_and_wrong_content_type(client: TestClient) -> None:
    body = problem(
        client.post("/translate", content=b'{"from": "a",', headers={"content-type": "application/json"}),
        422,
        "invalid-request",
    )
    assert "JSON" in body["detail"]
    body = problem(
        client.post("/translate", content=b"from=a&to=b", headers={"content-type": "text/plain"}),
        415,
        "unsupported-media-type",
    )
    assert body["supported"] == ["application/json"]
    ok = client.post(
        "/translate",
        content=b'{"from": "a", "to": "b", "vector": [' + b",".join([b"0.1"] * 16) + b"]}",
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200


def test_the_server_stays_up_after_bad_requests(client: TestClient) -> None:
    for _ in range(3):
        bad = client.post("/translate", json={"from": "a", "to": "b", "vectors": "@@", "encoding": "base64"})
        problem(bad, 422, "malformed-vectors")
    assert client.get("/readyz").status_code == 200
    assert client.post("/translate", json={"from": "a", "to": "b", "vector": [0.5] * 16}).status_code == 200


def test_l2_modalities_get_unit_inputs(chain_bundle: Path, tmp_path: Path) -> None:
    """A modality whose manifest says normalization 'l2' has its inputs scaled to unit norm first."""
    bundle = Path(shutil.copytree(chain_bundle, tmp_path / "l2"))
    edit_manifest(bundle, lambda m: m["modalities"][0].update(normalization="l2"))
    x = np.random.default_rng(4).standard_normal(16)
    with TestClient(create_app(settings_for(bundle))) as client:
        request = {"from": "a", "to": "b", "vectors": [x.tolist(), (5 * x).tolist()], "normalize": False}
        out = np.array(client.post("/translate", json=request).json()["vectors"])
    np.testing.assert_allclose(out[0], out[1], rtol=1e-5)
    expected = onnx_chain(chain_bundle, ["a", "b"], (x / np.linalg.norm(x)).astype(np.float32)[None])
    np.testing.assert_allclose(out[0], expected[0], rtol=1e-5, atol=1e-6)
