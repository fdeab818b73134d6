"""What made training cheaper must not change what it chooses: shared linear fits, the MLP's guard."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from latent_bridge.service.bundle.manifest import EdgeMetrics
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.selection import Board, _choose, _nested_r1
from latent_bridge.training.translators import fit_linear, fit_linear_both


@pytest.mark.parametrize("kind", ["procrustes", "ridge", "cca", "svcca"])
@pytest.mark.parametrize("n", [300, 40])  # 40 < 48: ridge takes its dual form
def test_both_directions_at_once_equal_two_separate_fits(kind: str, n: int) -> None:
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((n, 48))
    ys = np.tanh(xs @ rng.standard_normal((48, 24))) + 0.1 * rng.standard_normal((n, 24))
    f, g = fit_linear_both(kind, xs, ys, (0.1, 3.0), cca_dim=16)
    np.testing.assert_allclose(f, fit_linear(kind, xs, ys, 0.1, cca_dim=16), atol=1e-10)
    np.testing.assert_allclose(g, fit_linear(kind, ys, xs, 3.0, cca_dim=16), atol=1e-10)
    if kind == "ridge":  # the closed form it must equal, primal or dual
        primal = np.linalg.solve(xs.T @ xs + 0.1 * n / 48 * np.eye(48), xs.T @ ys)
        np.testing.assert_allclose(f, primal, atol=1e-8)


def _board(mlp_folds: list[float], ridge_folds: list[float]) -> Board:
    board = Board()
    base = EdgeMetrics(cosine=0.5, cycle_cosine=0.5, r1=0.0, r5=0.5, r10=0.6, mrr=0.3, median_rank=3.0,
                       n_train=100, n_test=100, source="cross_validation")
    for d in (0, 1):
        for kind, folds in (("mlp", mlp_folds), ("ridge", ridge_folds)):
            board.metrics[d][kind] = base.model_copy(update={"r1": float(np.mean(folds))})
            board.fold_r1[d][kind] = folds
    return board


def test_auto_keeps_the_mlp_only_when_its_lead_beats_the_fold_noise(tmp_path: Path) -> None:
    cfg = TrainConfig(data=tmp_path, out=tmp_path)
    noisy = _board([0.62, 0.58, 0.66, 0.55, 0.64], [0.60, 0.61, 0.60, 0.59, 0.60])  # +0.008, spread 0.02
    steady = _board([0.64, 0.63, 0.65, 0.62, 0.66], [0.60, 0.61, 0.60, 0.59, 0.60])  # +0.04 on every fold
    assert [c.kind for c in _choose(noisy, cfg, ("ridge", "ridge"), (3, 3))] == ["ridge", "ridge"]
    assert [c.kind for c in _choose(steady, cfg, ("ridge", "ridge"), (3, 3))] == ["mlp", "mlp"]
    asked = replace(cfg, kind="mlp")  # asked for by name, the MLP is what the user gets
    assert [c.kind for c in _choose(noisy, asked, ("ridge", "ridge"), (3, 3))] == ["mlp", "mlp"]


def test_each_fold_is_scored_at_an_epoch_the_other_folds_chose() -> None:
    # epochs x folds: fold 0 alone peaks at epoch 2, the others agree on epoch 1
    curves = [[0.50, 0.50, 0.50], [0.52, 0.60, 0.60], [0.56, 0.55, 0.55]]
    assert _nested_r1(curves) == [0.52, 0.60, 0.60]
    assert _nested_r1([[0.5], [0.6]]) == [0.6]  # one split: nothing to nest
