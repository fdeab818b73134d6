"""Every path that writes a bundle keeps the search it measured: a route's strategy and its CSLS terms
survive `index` (a new corpus as the gallery) and `compact` (run-time writes folded in), the terms
recomputed from the route's bank against the new items, as the server then serves them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from gallerycorpus import API_KEY
from latent_bridge.cli import main
from latent_bridge.service.api.app import create_app
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.bundle.manifest import RouteStrategySpec, read_manifest, write_manifest
from latent_bridge.training.bundling.pivots import RouteChoice, with_hubness
from latent_bridge.training.datasets.reader import load_modality
from testsettings import settings_for

CSLS_K = 10
KEYED = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def with_csls(trained: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained bundle with b → c set to pivot + CSLS, as training writes it (bank and means)."""
    data, parent = trained
    bundle_dir = Path(shutil.copytree(parent, tmp_path_factory.mktemp("csls") / "bundle"))
    manifest = read_manifest(bundle_dir)
    (spec,) = [r for r in manifest.routes if r.path == ["b", "c"]]
    choice = RouteChoice(spec.model_copy(update={"strategy": "pivot"}), load_modality(data / "b.parquet").embeddings)
    chosen = with_hubness(bundle_dir, load_bundle(bundle_dir), choice)
    write_manifest(manifest.model_copy(update={"routes": [chosen if r.path == ["b", "c"] else r
                                                          for r in manifest.routes]}), bundle_dir)
    return bundle_dir


def _route(bundle_dir: Path) -> RouteStrategySpec:
    (route,) = [r for r in read_manifest(bundle_dir).routes if r.path == ["b", "c"]]
    return route


def _expected_means(bundle_dir: Path, route: RouteStrategySpec) -> np.ndarray:
    """CSLS terms from first principles: each pivot-gallery row's mean cosine to its 10 nearest bank rows,
    both centred by the rows' mean."""
    assert route.bank_file is not None
    bank = np.load(bundle_dir / route.bank_file)
    (pivot,) = [p for p in read_manifest(bundle_dir).pivot_galleries if (p.modality, p.pivot) == ("c", "b")]
    items = np.load(bundle_dir / pivot.vectors_file).astype(np.float64)
    mean = items.mean(axis=0)

    def unit(x: np.ndarray) -> np.ndarray:
        x = x - mean
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    sims = unit(items) @ unit(bank.astype(np.float64)).T
    return np.sort(sims, axis=1)[:, -CSLS_K:].mean(axis=1)


def _assert_csls_kept(bundle_dir: Path, parent: Path, items: int) -> None:
    route, before = _route(bundle_dir), _route(parent)
    assert (route.strategy, route.hubness) == (before.strategy, before.hubness) == ("pivot", "csls")
    assert route.scores == before.scores and route.bank_sha256 == before.bank_sha256
    assert route.hubness_file is not None
    means = np.load(bundle_dir / route.hubness_file)
    assert means.shape == (items,)  # one term per item of the new gallery
    assert np.allclose(means, _expected_means(bundle_dir, route), atol=1e-4)
    with TestClient(create_app(settings_for(bundle_dir, api_key=API_KEY))) as client:
        found = client.post("/retrieve", headers=KEYED, json={"from": "b", "to": "c", "ids": ["b-3"], "k": 5})
    assert found.status_code == 200, found.text
    assert (found.json()["strategy"], found.json()["hubness"]) == ("pivot", "csls")


def test_index_keeps_the_strategy_and_recomputes_csls_for_the_new_gallery(
    with_csls: Path, corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "indexed"
    main(["index", "--bundle", str(with_csls), "--modality", "c", "--data", str(corpus), "--out", str(out), "--quiet"])
    size = next(g.size for g in read_manifest(out).galleries if g.modality == "c")
    assert size != next(g.size for g in read_manifest(with_csls).galleries if g.modality == "c")
    _assert_csls_kept(out, with_csls, size)


def test_compact_keeps_the_strategy_and_recomputes_csls_with_the_writes(with_csls: Path, tmp_path: Path) -> None:
    bundle_dir = Path(shutil.copytree(with_csls, tmp_path / "bundle"))
    with TestClient(create_app(settings_for(bundle_dir, admin_key=API_KEY))) as client:
        vectors = np.random.default_rng(0).normal(size=(5, 16)).tolist()
        written = client.put("/galleries/c/items", headers=KEYED,
                             json={"ids": [f"new-{i}" for i in range(5)], "vectors": vectors})
        assert written.status_code == 200, written.text
    out = tmp_path / "compacted"
    main(["compact", "--bundle", str(bundle_dir), "--out", str(out), "--quiet"])
    size = next(g.size for g in read_manifest(out).galleries if g.modality == "c")
    assert size == next(g.size for g in read_manifest(with_csls).galleries if g.modality == "c") + 5
    _assert_csls_kept(out, with_csls, size)


def test_a_bundle_without_a_bank_still_indexes_and_drops_csls_on_the_rebuilt_route(
    with_csls: Path, corpus: Path, tmp_path: Path
) -> None:
    """Bundles written before banks existed: the route keeps its strategy, without CSLS (logged)."""
    old = Path(shutil.copytree(with_csls, tmp_path / "old"))
    manifest = read_manifest(old)
    routes = [r.model_copy(update={"bank_file": None, "bank_sha256": None}) for r in manifest.routes]
    write_manifest(manifest.model_copy(update={"routes": routes}), old)
    out = tmp_path / "indexed"
    main(["index", "--bundle", str(old), "--modality", "c", "--data", str(corpus), "--out", str(out), "--quiet"])
    route = _route(out)
    assert (route.strategy, route.hubness, route.hubness_file) == ("pivot", "none", None)
