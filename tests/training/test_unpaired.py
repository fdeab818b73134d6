"""The unpaired kind: two spaces aligned from each side's own rows, with few or no shared samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from latent_bridge.cli import main
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.service.engine.translate import run_route
from latent_bridge.training.datasets.builders.synthetic import random_rotation, write_modality
from latent_bridge.training.evaluate import retrieval_summary
from latent_bridge.training.translators import SpaceStats, fit_linear
from latent_bridge.training.unpaired import align
from threadpoolctl import threadpool_limits

DIM = 64


class Plant:
    """Clustered 64-d rows (100 centres, anisotropic) and a planted rotation with an offset to a second space."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.centres = self.rng.standard_normal((100, DIM)) * np.linspace(1.5, 0.3, DIM)
        self.q = random_rotation(DIM, self.rng)

    def latent(self, n: int) -> np.ndarray:
        return self.centres[self.rng.integers(len(self.centres), size=n)] + 0.15 * self.rng.standard_normal((n, DIM))

    def a(self, z: np.ndarray) -> np.ndarray:
        return z + 0.5

    def b(self, z: np.ndarray) -> np.ndarray:
        return z @ self.q - 1.0


def r1(pred: np.ndarray, gallery: np.ndarray) -> float:
    keys = np.array([f"s{i}" for i in range(len(gallery))])
    return retrieval_summary(ranks(pred, keys, gallery, keys))["r1"]


@pytest.fixture(autouse=True)
def one_thread() -> object:
    with threadpool_limits(1):  # two shared cores: threaded BLAS on 64x64 SVDs is 30x slower
        yield


def test_planted_rotation_is_recovered_with_zero_shared_samples() -> None:
    plant = Plant()
    xa, xb = plant.a(plant.latent(1500)), plant.b(plant.latent(1500))  # different samples on each side
    sa, sb = SpaceStats.fit(xa), SpaceStats.fit(xb)
    found = align(sa.standardise(xa), sb.standardise(xb))
    assert np.linalg.norm(found.m - plant.q) / np.sqrt(DIM) < 0.15  # the planted orthogonal matrix
    z = plant.latent(500)
    assert r1(sa.standardise(plant.a(z)) @ found.m, sb.standardise(plant.b(z))) >= 0.9
    assert r1(sb.standardise(plant.b(z)) @ found.m.T, sa.standardise(plant.a(z))) >= 0.9


def test_ten_pairs_with_unpaired_rows_beat_procrustes_and_ridge_on_those_pairs() -> None:
    plant = Plant(seed=1)
    xa, xb = plant.a(plant.latent(800)), plant.b(plant.latent(800))
    sa, sb = SpaceStats.fit(xa), SpaceStats.fit(xb)
    zp = plant.latent(10)
    pa, pb = sa.standardise(plant.a(zp)), sb.standardise(plant.b(zp + 0.05 * plant.rng.standard_normal(zp.shape)))
    z = plant.latent(400)
    queries, gallery = sa.standardise(plant.a(z)), sb.standardise(plant.b(z))
    semi = r1(queries @ align(sa.standardise(xa), sb.standardise(xb), (pa, pb)).m, gallery)
    procrustes = r1(queries @ fit_linear("procrustes", pa, pb), gallery)
    ridge = max(r1(queries @ fit_linear("ridge", pa, pb, alpha), gallery) for alpha in (0.01, 0.1, 1.0, 10.0))
    assert semi >= 0.9
    assert semi > procrustes + 0.3 and semi > ridge + 0.3


def write_unpaired(root: Path, plant: Plant, n: int, shared: int = 0) -> Path:
    """a.parquet and c.parquet with their own samples; the first ``shared`` samples on both sides."""
    root.mkdir(parents=True)
    za, zc = plant.latent(n), plant.latent(n)
    zc[:shared] = za[:shared]
    write_modality(root, "a", [f"s{i}" if i < shared else f"a{i}" for i in range(n)], plant.a(za))
    write_modality(root, "c", [f"s{i}" if i < shared else f"c{i}" for i in range(n)], plant.b(zc))
    return root


def test_other_kinds_refuse_an_edge_without_shared_samples_and_name_the_unpaired_kind(tmp_path: Path) -> None:
    data = write_unpaired(tmp_path / "data", Plant(), 60)
    with pytest.raises(SystemExit, match="only 0 shared samples.*--kind unpaired"):
        main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--edges", "a:c", "--quiet"])
    with pytest.raises(SystemExit, match="--kind unpaired needs --edges"):
        main(["train", "--data", str(data), "--out", str(tmp_path / "m"), "--kind", "unpaired", "--quiet"])


def test_cli_trains_an_unpaired_edge_into_a_bundle_the_service_loads(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    plant = Plant(seed=2)
    data = write_unpaired(tmp_path / "data", plant, 1200)
    out = tmp_path / "bundle"
    main(["train", "--data", str(data), "--out", str(out), "--edges", "a:c", "--kind", "unpaired", "--quiet"])
    assert "not measured: no shared samples" in capsys.readouterr().out
    bundle = load_bundle(out)  # the service's loader: files, dimensions, ONNX parity of the export
    assert {e.kind for e in bundle.manifest.edges} == {"unpaired"}
    edge = next(e for e in bundle.manifest.edges if e.key == "a__c")
    assert edge.metrics.n_test == 0 and edge.fit is not None and edge.fit.n_pairs == 0
    z = plant.latent(400)
    served = run_route(bundle.translators, bundle.graph.best("a", "c"), plant.a(z).astype(np.float32))
    assert r1(served, plant.b(z)) >= 0.9
    bundle.close()


def test_shared_samples_make_the_unpaired_edge_cross_validated(tmp_path: Path) -> None:
    data = write_unpaired(tmp_path / "data", Plant(seed=3), 600, shared=40)
    out = tmp_path / "bundle"
    main(["train", "--data", str(data), "--out", str(out), "--edges", "a:c", "--kind", "unpaired", "--quiet"])
    bundle = load_bundle(out)
    edge = next(e for e in bundle.manifest.edges if e.key == "a__c")
    assert edge.metrics.source == "cross_validation" and edge.metrics.n_test == 40
    assert edge.metrics.r1 >= 0.9 and edge.fit is not None and edge.fit.n_pairs == 40
    bundle.close()
