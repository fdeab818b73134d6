"""latent_bridge.client against a real `latent-bridge serve` process on a tiny bundle."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from latent_bridge.client import AsyncLatentBridge, LatentBridge, ProblemError
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.engine.translate import run_route
from serverprocess import Server, running_server
from testsettings import API_KEY
from tinybundles import tiny_dataset, train_tiny

DIMS = {"a": 8, "b": 6, "c": 4}
pytestmark = pytest.mark.slow  # a real server process


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("client")
    data = tiny_dataset(root / "data", DIMS, relation="linear")
    return train_tiny(data, root / "bundle", edges=[("a", "b"), ("b", "c")])


@pytest.fixture(scope="module")
def server(bundle: Path) -> Iterator[Server]:
    with running_server(bundle) as server:
        yield server


def queries(n: int = 5, dim: int = DIMS["a"]) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((n, dim)).astype(np.float32)


def test_translate_returns_what_the_translators_compute(server: Server, bundle: Path) -> None:
    loaded = load_bundle(bundle)
    x = queries()
    with LatentBridge(server.base) as bridge:
        out = bridge.translate(x, "a", "c", normalize=False, confidence=True)
    expected = run_route(loaded.translators, loaded.graph.best("a", "c"), x)
    assert out.path == ["a", "b", "c"] and [(h.source, h.target) for h in out.hops] == [("a", "b"), ("b", "c")]
    assert out.vectors.dtype == np.float32 and out.vectors.shape == (5, DIMS["c"])
    np.testing.assert_allclose(out.vectors, expected, rtol=1e-6, atol=1e-7)
    assert out.confidence is not None and out.confidence.shape == (5,)
    assert out.fidelity == pytest.approx(out.hops[0].fidelity * out.hops[1].fidelity)


def test_one_vector_and_unit_outputs(server: Server) -> None:
    with LatentBridge(server.base) as bridge:
        out = bridge.translate(queries(1)[0], "a", "b")
    assert out.vectors.shape == (1, DIMS["b"]) and out.confidence is None
    np.testing.assert_allclose(np.linalg.norm(out.vectors, axis=1), 1.0, rtol=1e-5)


def test_retrieve_by_vectors_and_by_item(server: Server) -> None:
    with LatentBridge(server.base) as bridge:
        found = bridge.retrieve(queries(2), "a", "c", k=3)
        assert found.path == ["a", "b", "c"] and [len(r.hits) for r in found.results] == [3, 3]
        item = found.results[0].hits[0].id
        same = bridge.retrieve_item(item, "c", "c", k=1)
        assert same.results[0].query == item and same.results[0].hits[0].id == item
        assert bridge.route("a", "c").best.path == ["a", "b", "c"]
        assert [m.name for m in bridge.modalities().modalities] == ["a", "b", "c"]
        assert len(bridge.graph().edges) == 4 and bridge.ready().edges == 4


def test_problems_are_raised_with_their_fields(server: Server) -> None:
    with LatentBridge(server.base) as bridge:
        with pytest.raises(ProblemError) as unknown:
            bridge.translate(queries(), "a", "smell")
        with pytest.raises(ProblemError) as wrong_dim:
            bridge.translate(queries(dim=3), "a", "b")
    assert unknown.value.status == 404 and unknown.value.slug == "unknown-modality"
    assert unknown.value.extra["known"] == ["a", "b", "c"] and unknown.value.request_id
    assert "smell" in unknown.value.detail and "404 unknown-modality" in str(unknown.value)
    assert wrong_dim.value.status == 422 and wrong_dim.value.extra["expected"] == DIMS["a"]


def test_the_api_key_is_sent(bundle: Path) -> None:
    with running_server(bundle, env={"LATENT_BRIDGE_API_KEY": API_KEY}) as server:
        with LatentBridge(server.base) as anonymous, pytest.raises(ProblemError) as refused:
            anonymous.modalities()
        assert refused.value.status == 401
        with LatentBridge(server.base, api_key=API_KEY) as bridge:
            assert bridge.translate(queries(), "a", "b").vectors.shape == (5, DIMS["b"])


def test_the_async_client_gives_the_same_answers(server: Server) -> None:
    x = queries()

    async def both() -> tuple[np.ndarray, str]:
        async with AsyncLatentBridge(server.base) as bridge:
            out = await bridge.translate(x, "a", "c")
            try:
                await bridge.route("a", "zz")
            except ProblemError as exc:
                return out.vectors, exc.slug
        raise AssertionError("no problem raised")

    vectors, slug = asyncio.run(both())
    with LatentBridge(server.base) as bridge:
        np.testing.assert_array_equal(vectors, bridge.translate(x, "a", "c").vectors)
    assert slug == "unknown-modality"


def test_without_httpx_the_import_says_which_extra_to_install(tmp_path: Path) -> None:
    """A blocked httpx (as if the client extra were not installed): one line naming the extra."""
    (tmp_path / "httpx.py").write_text("raise ModuleNotFoundError('No module named httpx', name='httpx')\n")
    code = "import latent_bridge.client"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=os.environ | {"PYTHONPATH": str(tmp_path)})
    assert found.returncode != 0
    assert found.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: latent_bridge.client needs httpx: pip install 'latent-bridge[client]'")
