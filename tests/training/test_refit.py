"""Selection by cross-validation, the final refit on every pair, and metrics that cannot be gamed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from latent_bridge.cli import main
from latent_bridge.service.bundle.manifest import BundleError
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training.bundling.writer import EdgeArtifact, write_bundle
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import make_dataset, write_modality
from latent_bridge.training.datasets.reader import fingerprint, load_dataset
from latent_bridge.training.datasets.splits import holdout_split
from latent_bridge.training.evaluate import retrieval_summary
from latent_bridge.training.export import to_onnx
from latent_bridge.training.fitting import CollapsedTranslatorError
from latent_bridge.training.train import train
from latent_bridge.training.translators import AffineTranslator, SpaceStats, fit_linear


def onnx_run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"input": x.astype(np.float32)})[0])


def test_a_constant_or_nan_map_scores_r1_zero() -> None:
    rng = np.random.default_rng(0)
    gallery = rng.standard_normal((20, 4))
    samples = np.array([f"s{i}" for i in range(20)])
    constant = np.tile(gallery.mean(axis=0), (20, 1))  # centred by the gallery: the zero vector
    assert retrieval_summary(ranks(constant, samples, gallery, samples))["r1"] == 0.0
    assert retrieval_summary(ranks(np.full((20, 4), np.nan), samples, gallery, samples))["r1"] == 0.0
    shifted = np.tile(gallery[0] + 1.0, (20, 1))  # one point for every query: one lucky hit at most
    assert retrieval_summary(ranks(shifted, samples, gallery, samples))["r1"] <= 1 / 20
    assert retrieval_summary(ranks(gallery, samples, gallery, samples))["r1"] == 1.0


def test_a_tie_counts_against_the_model() -> None:
    gallery = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    samples = np.array(["s0", "s1", "s2"])
    # query 0 scores its partner and row 1 alike: rank 2, not 1
    assert ranks(gallery[:1], samples[:1], gallery, samples).tolist() == [2]


def test_shipped_translator_is_refit_on_every_pair(tmp_path: Path) -> None:
    data_dir = make_dataset(tmp_path / "data", n=200, dims={"a": 8, "b": 6}, relation="linear", noise=0.3)
    manifest = train(TrainConfig(data=data_dir, out=tmp_path / "b", kind="ridge", progress=False))
    data = load_dataset(data_dir)
    a, b = data["a"], data["b"]
    edge = next(e for e in manifest.edges if e.key == "a__b")
    assert edge.fit is not None and edge.fit.n_samples == 200 and edge.fit.n_pairs == 200
    assert edge.metrics.source == "cross_validation" and edge.metrics.n_test == 200
    # the ONNX file is ridge at the chosen alpha fitted on all 200 pairs, not on a fold
    alpha = float(edge.fit.hyperparameters["ridge_alpha"])
    sa, sb = SpaceStats.fit(a.embeddings), SpaceStats.fit(b.embeddings)
    m = fit_linear("ridge", sa.standardise(a.embeddings), sb.standardise(b.embeddings), alpha)
    expected = sa.standardise(a.embeddings) @ m * sb.scale + sb.mean
    np.testing.assert_allclose(onnx_run(tmp_path / "b" / edge.file, a.embeddings), expected, atol=1e-4)


def test_holdout_keeps_a_test_split_out_of_every_fit(tmp_path: Path) -> None:
    data_dir = make_dataset(tmp_path / "data", n=200, dims={"a": 8, "b": 8}, relation="linear", noise=0.3)
    manifest = train(TrainConfig(data=data_dir, out=tmp_path / "b", holdout=0.25, seed=3, epochs=5, hidden=16,
                                 progress=False))
    usable, test = holdout_split({f"s{i}" for i in range(200)}, seed=3, fraction=0.25)
    assert manifest.training["holdout"] == 0.25
    for edge in manifest.edges:
        assert edge.fit is not None and edge.fit.n_samples == len(usable)
        assert edge.metrics.source == "test" and edge.metrics.n_test == len(test)
        assert all(c.source == "cross_validation" for c in edge.candidates.values())
        assert set(edge.candidates) == {"identity", "centroid", "standardise", "procrustes", "ridge", "cca", "svcca",
                                        "mlp"}


def test_a_collapsed_translator_is_refused(tmp_path: Path) -> None:
    data_dir = make_dataset(tmp_path / "data", n=100, dims={"a": 8})
    write_modality(data_dir, "b", [f"s{i}" for i in range(100)], np.ones((100, 4)))
    with pytest.raises(CollapsedTranslatorError, match=r"edge a→b: the fitted translator collapsed"):
        train(TrainConfig(data=data_dir, out=tmp_path / "b", kind="ridge", progress=False))
    assert not (tmp_path / "b").exists()


def test_the_service_refuses_the_bundle_before_it_is_renamed_into_place(tmp_path: Path) -> None:
    """An edge whose ONNX file disagrees with the manifest's dimensions never becomes a bundle."""
    data_dir = make_dataset(tmp_path / "data", n=60, dims={"a": 8, "b": 8})
    data = load_dataset(data_dir)
    manifest = train(TrainConfig(data=data_dir, out=tmp_path / "good", kind="ridge", progress=False))
    wrong = to_onnx(AffineTranslator(np.eye(8, 5, dtype=np.float32), np.zeros(5, np.float32)), 8)
    edge = manifest.edges[0]
    artifact = EdgeArtifact(edge.source, edge.target, edge.kind, wrong, edge.metrics, {})
    with pytest.raises(BundleError, match=r"a__b\.onnx"):
        write_bundle(tmp_path / "bad", data, [artifact], fingerprint(data), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "good"]


def test_eval_of_a_bundle_fit_on_every_pair_says_why_it_cannot_score(tmp_path: Path) -> None:
    data_dir = make_dataset(tmp_path / "data", n=60, dims={"a": 8, "b": 8})
    train(TrainConfig(data=data_dir, out=tmp_path / "b", kind="ridge", progress=False))
    with pytest.raises(SystemExit, match=r"fit on every pair .* train with --holdout"):
        main(["eval", "--bundle", str(tmp_path / "b"), "--data", str(data_dir), "--report", str(tmp_path / "r")])
