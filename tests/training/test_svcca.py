"""SVCCA and per-dimension standardisation: the seeds' post-hoc alignments beside the other linear kinds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from latent_bridge.cli import main
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training.candidates import Pair, applies, fit_kind, standardised_rows
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import write_modality
from latent_bridge.training.datasets.reader import load_dataset
from latent_bridge.training.evaluate import retrieval_summary
from latent_bridge.training.selection import linear_kinds
from latent_bridge.training.translators import SpaceStats, fit_linear, fit_linear_both, svd_basis, translate


def planted(n: int, dims: tuple[int, int], rank: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two spaces sharing a ``rank``-dimensional latent through different linear maps, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, rank))
    x = z @ rng.standard_normal((rank, dims[0])) * 3 + 0.3 * rng.standard_normal((n, dims[0])) + 2.0
    y = z @ rng.standard_normal((rank, dims[1])) * 3 + 0.3 * rng.standard_normal((n, dims[1])) - 1.0
    return x, y


def spectrum(n: int, singular: list[float], dim: int, seed: int) -> np.ndarray:
    """Rows whose singular values are exactly ``singular`` (then zeros), in a random orthonormal basis."""
    rng = np.random.default_rng(seed)
    u = np.linalg.qr(rng.standard_normal((n, len(singular))))[0]
    v = np.linalg.qr(rng.standard_normal((dim, len(singular))))[0]
    return (u * singular) @ v.T


def write_pair(root: Path, x: np.ndarray, y: np.ndarray) -> Path:
    samples = [f"s{i}" for i in range(len(x))]
    root.mkdir(parents=True)
    write_modality(root, "a", samples, x)
    write_modality(root, "b", samples, y)
    return root


def test_svcca_recovers_a_planted_low_rank_relation_across_dimensions() -> None:
    x, y = planted(600, (40, 24), rank=6)
    sa, sb = SpaceStats.fit(x[:400]), SpaceStats.fit(y[:400])
    f, g = fit_linear_both("svcca", sa.standardise(x[:400]), sb.standardise(y[:400]))
    assert f.shape == (40, 24) and g.shape == (24, 40)
    held = np.array([f"s{i}" for i in range(200)])
    xt, yt = sa.standardise(x[400:]), sb.standardise(y[400:])
    for pred, gallery in ((xt @ f, yt), (yt @ g, xt)):
        assert retrieval_summary(ranks(pred, held, gallery, held))["r1"] > 0.95


def test_svcca_keeps_the_components_that_hold_99_percent_of_the_variance() -> None:
    # energies 25+16+9+4+1 over 55.04: four components hold 98.1%, five 99.9%; for y three hold 99.8%
    noise = [0.05] * 15
    x = spectrum(300, [5, 4, 3, 2, 1, *noise], 24, seed=1)
    y = spectrum(300, [4, 3, 2, *noise], 20, seed=2)
    assert svd_basis(x).shape == (24, 5) and svd_basis(y).shape == (20, 3)
    assert svd_basis(x, keep=0.9).shape == (24, 3)  # 50/55.04 = 90.8%
    f, g = fit_linear_both("svcca", x, y, cca_dim=128)
    # the map passes through both reduced spaces, so its rank is the smaller of the two kept ranks
    assert np.linalg.matrix_rank(f, tol=1e-8) == 3 and np.linalg.matrix_rank(g, tol=1e-8) == 3
    assert np.linalg.matrix_rank(fit_linear("svcca", x, y, cca_dim=2), tol=1e-8) == 2  # cca_dim still caps it


def test_standardise_is_per_dimension_zscoring_then_identity(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((120, 6)) * np.array([0.1, 1, 5, 20, 2, 0.5]) + 4.0
    y = x[:, ::-1] * 0.3 + rng.standard_normal((120, 6)) * np.array([3, 1, 0.2, 1, 8, 1])
    data = load_dataset(write_pair(tmp_path / "data", x, y))
    pair = Pair(data["a"], data["b"])
    samples = frozenset(data["a"].samples.tolist())
    stats = pair.stats(samples)
    cfg = TrainConfig(data=tmp_path, out=tmp_path / "out")
    fitted = fit_kind(pair, "standardise", standardised_rows(pair, samples, stats), stats, cfg)
    xa, yb = data["a"].embeddings.astype(np.float64), data["b"].embeddings.astype(np.float64)
    expected = (xa - xa.mean(0)) / xa.std(0) * yb.std(0) + yb.mean(0)
    np.testing.assert_allclose(translate(fitted.forward, xa), expected, rtol=1e-4, atol=1e-4)
    back = (yb - yb.mean(0)) / yb.std(0) * xa.std(0) + xa.mean(0)
    np.testing.assert_allclose(translate(fitted.backward, yb), back, rtol=1e-4, atol=1e-4)
    centroid = fit_kind(pair, "centroid", standardised_rows(pair, samples, stats), stats, cfg)
    assert not np.allclose(translate(centroid.forward, xa), expected, atol=1e-2)  # one scalar scale: not this


def test_auto_considers_the_new_kinds_where_they_apply(tmp_path: Path) -> None:
    x, y = planted(60, (8, 8), rank=3)
    data = load_dataset(write_pair(tmp_path / "eq", x, y))
    cfg = TrainConfig(data=tmp_path, out=tmp_path / "out")
    assert {"standardise", "svcca"} <= set(linear_kinds(Pair(data["a"], data["b"]), cfg))
    x, y = planted(60, (8, 5), rank=3)
    data = load_dataset(write_pair(tmp_path / "ne", x, y))
    pair = Pair(data["a"], data["b"])
    assert "svcca" in linear_kinds(pair, cfg) and "standardise" not in linear_kinds(pair, cfg)
    assert not applies("standardise", pair)


def test_train_kind_svcca_writes_a_bundle_the_service_loads(tmp_path: Path) -> None:
    x, y = planted(160, (12, 7), rank=4, seed=5)
    data_dir = write_pair(tmp_path / "data", x, y)
    out = tmp_path / "bundle"
    main(["train", "--data", str(data_dir), "--out", str(out), "--kind", "svcca", "--no-pivots", "--quiet"])
    bundle = load_bundle(out)  # the service's loader: files, dimensions, ONNX models
    edge = next(e for e in bundle.manifest.edges if e.key == "a__b")
    assert {e.kind for e in bundle.manifest.edges} == {"svcca"}
    assert edge.fit is not None and edge.fit.hyperparameters["svcca_variance"] == 0.99
    # the shipped ONNX file is SVCCA refitted on every pair, folded with the standardisation
    sa, sb = SpaceStats.fit(x.astype(np.float32)), SpaceStats.fit(y.astype(np.float32))
    m = fit_linear("svcca", sa.standardise(x.astype(np.float32)), sb.standardise(y.astype(np.float32)))
    expected = sa.standardise(x.astype(np.float32)) @ m * sb.scale + sb.mean
    session = ort.InferenceSession(str(out / edge.file), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.astype(np.float32)})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert edge.metrics.r1 > 0.5
