"""The dmvae kind: a disentangled multimodal VAE per pair, exported as one translator graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from latent_bridge.cli import main
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.bundle.manifest import EdgeMetrics, Manifest
from latent_bridge.service.engine.translate import run_route
from latent_bridge.training.candidates import Pair
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import make_dataset
from latent_bridge.training.datasets.reader import load_dataset
from latent_bridge.training.datasets.splits import cv_folds
from latent_bridge.training.dmvae import DMVAERun
from latent_bridge.training.export import ExportError, check_parity, to_onnx
from latent_bridge.training.selection import Board, _trained_or_simpler, select
from torch import nn

DIMS = {"a": 24, "b": 16}


@pytest.fixture(scope="module")
def nonlinear(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A planted nonlinear relation (tanh of a random projection, then a random mix), 24-d ↔ 16-d."""
    root = tmp_path_factory.mktemp("dmvae")
    return make_dataset(root / "data", n=400, dims=DIMS, relation="nonlinear", noise=0.3, seed=3)


@pytest.fixture(scope="module")
def trained(nonlinear: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """``train --kind dmvae`` with a fifth of the samples held out, trained once for the module."""
    out = tmp_path_factory.mktemp("dmvae-bundle") / "bundle"
    main(["train", "--data", str(nonlinear), "--out", str(out), "--kind", "dmvae", "--holdout", "0.2",
          "--epochs", "60", "--no-pivots", "--quiet"])
    return out, load_bundle(out).manifest


def test_dmvae_translator_exports_to_onnx_with_torch_parity(nonlinear: Path, tmp_path: Path) -> None:
    data = load_dataset(nonlinear)
    pair = Pair(data["a"], data["b"])
    samples = frozenset(data["a"].samples.tolist())
    run = DMVAERun(pair, samples, pair.stats(samples), TrainConfig(data=nonlinear, out=tmp_path))
    for _ in range(3):
        run.epoch()
    for module, src in ((run.f, data["a"]), (run.g, data["b"])):
        onnx_bytes = to_onnx(module, src.dim)  # raises on a checker or parity failure
        got = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"]).run(
            None, {"input": src.embeddings})[0]
        with torch.no_grad():
            expected = module.eval()(torch.from_numpy(src.embeddings)).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        assert got.shape == (len(src.embeddings), DIMS["b" if src.name == "a" else "a"])
    # the parity check can fail: a graph from another module does not pass for this one
    with pytest.raises(ExportError):
        check_parity(run.f, to_onnx(nn.Sequential(nn.Linear(24, 16)), 24), 24)


def test_train_kind_dmvae_bundle_loads_and_translates(trained: tuple[Path, Manifest], nonlinear: Path) -> None:
    out, manifest = trained
    assert {e.kind for e in manifest.edges} == {"dmvae"}
    bundle = load_bundle(out)  # the service's loader: files, dimensions, ONNX models
    for edge in manifest.edges:
        assert edge.fit is not None
        hp = edge.fit.hyperparameters
        assert int(hp["epochs"]) >= 1 and hp["shared_dim"] == TrainConfig.dmvae_shared
    x = load_dataset(nonlinear)["a"].embeddings[:5]
    y = run_route(bundle.translators, bundle.graph.best("a", "b"), x)
    assert y.shape == (5, DIMS["b"]) and np.isfinite(y).all()


def test_dmvae_retrieves_a_planted_nonlinear_relation_on_held_out_samples(trained: tuple[Path, Manifest]) -> None:
    _, manifest = trained
    for edge in manifest.edges:
        m = edge.metrics
        assert m.source == "test" and m.n_test >= 60
        # chance is 1 / n_test (about 0.0125); a translator that ignores its input or is untrained stays there
        assert m.r1 > 0.5, (edge.key, m.r1)
        assert m.r10 > 0.9, (edge.key, m.r10)


def test_auto_scores_dmvae_among_its_candidates_when_asked(nonlinear: Path, tmp_path: Path) -> None:
    data = load_dataset(nonlinear)
    pair = Pair(data["a"], data["b"])
    folds = cv_folds(frozenset(data["a"].samples.tolist()), 0, 3)
    cfg = TrainConfig(data=nonlinear, out=tmp_path, epochs=2, progress=False, auto_dmvae=True)
    for choice in select(pair, folds, cfg).choices():
        assert {"dmvae", "mlp", "ridge", "svcca"} <= set(choice.candidates)
        assert choice.candidates["dmvae"].n_test > 0
    plain = select(pair, folds, TrainConfig(data=nonlinear, out=tmp_path, epochs=2, progress=False))
    assert all("dmvae" not in choice.candidates for choice in plain.choices())  # opt-in: it doubles the cost


def _metrics(r1: float) -> EdgeMetrics:
    return EdgeMetrics(cosine=0.5, cycle_cosine=0.5, r1=r1, r5=r1, r10=r1, mrr=r1, median_rank=1.0, n_train=100,
                       n_test=20, source="cross_validation")


@pytest.mark.parametrize(("folds", "chosen"), [
    ([0.60, 0.61, 0.62, 0.63, 0.64], "dmvae"),  # ahead on every fold
    ([1.00, 0.20, 1.00, 0.20, 0.30], "ridge"),  # ahead on the mean (0.54), within one standard error
])
def test_auto_keeps_dmvae_only_beyond_one_standard_error(folds: list[float], chosen: str) -> None:
    board = Board()
    board.metrics[0] = {"ridge": _metrics(0.5), "dmvae": _metrics(float(np.mean(folds)))}
    board.fold_r1[0] = {"ridge": [0.5] * 5, "dmvae": folds}
    assert _trained_or_simpler(board, 0) == chosen
