"""``train --joint``: the translators tuned together, kept per direction only where cross-validation says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from latent_bridge.cli import main
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.bundle.manifest import Manifest
from latent_bridge.service.engine.translate import run_route
from latent_bridge.training import joint as joint_module
from latent_bridge.training import train as train_module
from latent_bridge.training.datasets.builders.synthetic import make_dataset
from latent_bridge.training.joint import JointRun, decide, nested, two_hop_routes, wins
from latent_bridge.training.translators import AffineTranslator

DIMS = {"a": 16, "b": 12, "c": 8}


def _train(data: Path, out: Path, *extra: str) -> Manifest:
    main(["train", "--data", str(data), "--out", str(out), "--edges", "a:b,b:c", "--holdout", "0.2",
          "--no-pivots", "--quiet", *extra])
    return load_bundle(out).manifest


def _shas(manifest: Manifest) -> dict[str, str]:
    return {e.key: e.sha256 for e in manifest.edges}


@pytest.fixture(scope="module")
def nonlinear(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three modalities planted from one base (a nonlinear relation each), every sample with all three."""
    return make_dataset(tmp_path_factory.mktemp("joint") / "data", n=300, dims=DIMS, relation="nonlinear",
                        noise=0.3, seed=5)


@pytest.fixture(scope="module")
def exact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An already perfect linear relation: every per-edge map retrieves every partner."""
    return make_dataset(tmp_path_factory.mktemp("joint-exact") / "data", n=200, dims={"a": 8, "b": 8, "c": 8},
                        relation="rotation", noise=0.001, seed=2)


def test_joint_exports_tuned_translators_that_load_and_route(nonlinear: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Every direction kept (the rule bypassed, so the tuned path is exercised whatever the folds say): the
    tuned translators pass the ONNX parity check at export, the bundle loads, a 2-hop route answers."""
    monkeypatch.setattr(joint_module, "decide", lambda directions, routes, base, joint, epochs: list(directions))
    manifest = _train(nonlinear, tmp_path / "bundle", "--joint", "--kind", "ridge")
    assert {e.key for e in manifest.edges} == {"a__b", "b__a", "b__c", "c__b"}
    for edge in manifest.edges:
        assert "joint" in edge.candidates, edge.key  # the tuned translators' cross-validated metrics
        assert edge.fit is not None and edge.fit.hyperparameters["joint"] == 1
        assert isinstance(edge.fit.hyperparameters["joint_epochs"], int)
        assert edge.metrics.source == "test"
    assert manifest.training["joint"] is True
    bundle = load_bundle(tmp_path / "bundle")
    route = bundle.graph.best("a", "c")
    assert list(route.path) == ["a", "b", "c"]
    x = np.random.default_rng(0).standard_normal((5, DIMS["a"])).astype(np.float32)
    assert run_route(bundle.translators, route, x, bundle.l2_inputs).shape == (5, DIMS["c"])


def test_joint_keeps_the_per_edge_translators_where_it_cannot_win(exact: Path, tmp_path: Path) -> None:
    """Per-edge R@1 is already 1.0 on every fold: no lead, so every direction ships its per-edge translator,
    byte for byte the one a run without --joint ships; the joint candidate is recorded all the same."""
    plain = _train(exact, tmp_path / "plain", "--kind", "procrustes")
    tuned = _train(exact, tmp_path / "joint", "--kind", "procrustes", "--joint")
    assert _shas(tuned) == _shas(plain)
    for edge in tuned.edges:
        assert edge.fit is not None and "joint" not in edge.fit.hyperparameters
        assert "joint" in edge.candidates
        assert edge.metrics.r1 == 1.0


def test_without_joint_the_joint_code_never_runs(exact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Off by default: the per-edge path is the one that ran before ``--joint`` existed, and is deterministic."""
    first = _train(exact, tmp_path / "first", "--kind", "procrustes")

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the joint fine-tune ran without --joint")

    monkeypatch.setattr(train_module, "tune", boom)
    monkeypatch.setattr(train_module, "joint_artifacts", boom)
    second = _train(exact, tmp_path / "second", "--kind", "procrustes")
    assert _shas(second) == _shas(first)
    assert first.training["joint"] is False
    assert all("joint" not in e.candidates for e in second.edges)


def test_two_hop_routes_and_the_nested_score() -> None:
    directions = [("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")]
    assert sorted(two_hop_routes(directions)) == [("a", "b", "c"), ("c", "b", "a")]
    curve = np.array([[0.1, 0.2, 0.3], [0.5, 0.1, 0.4], [0.2, 0.9, 0.3]])  # epochs x folds
    # fold 0 at the epoch folds 1, 2 pick (epoch 2), fold 1 at folds 0, 2's (epoch 1), fold 2 at epoch 2
    np.testing.assert_allclose(nested(curve, curve), [0.2, 0.1, 0.3])


def test_the_keep_rule_on_fake_fold_scores() -> None:
    """Kept: a lead beyond one standard error over the folds with no 2-hop route through it losing."""
    ab, ba, bc, cb = ("a", "b"), ("b", "a"), ("b", "c"), ("c", "b")
    abc, cba = ("a", "b", "c"), ("c", "b", "a")
    base = {k: np.array([0.30, 0.32, 0.28, 0.31, 0.29]) for k in (ab, ba, bc, cb, abc, cba)}
    joint = dict(base)
    joint[ab] = base[ab] + np.array([0.05, 0.04, 0.06, 0.05, 0.05])  # a clear, steady lead: kept
    joint[ba] = base[ba] + np.array([0.20, -0.15, 0.10, -0.12, 0.02])  # a mean lead inside the spread: not kept
    joint[bc] = base[bc] + 0.05  # a steady lead ...
    joint[cba] = base[cba] - 0.01  # ... but c → b → a (through c → b) loses: c → b is not kept either
    joint[cb] = base[cb] + 0.05
    assert wins(joint[ab], base[ab]) and not wins(joint[ba], base[ba])
    kept = decide([ab, ba, bc, cb], [abc, cba], base, joint, epochs=3)
    assert kept == [ab, bc]
    assert decide([ab, ba, bc, cb], [abc, cba], base, joint, epochs=0) == []
    joint[abc] = base[abc] - 0.001  # a → b → c loses: neither of its hops is kept now
    assert decide([ab, ba, bc, cb], [abc, cba], base, joint, epochs=3) == []


def test_frozen_directions_do_not_move(nonlinear: Path) -> None:
    """In the refit only the kept directions train; the others stay the per-edge fit exactly."""
    from latent_bridge.training.config import TrainConfig
    from latent_bridge.training.datasets.reader import load_dataset

    data = load_dataset(nonlinear)
    rng = np.random.default_rng(0)
    modules = {(s, t): AffineTranslator(rng.standard_normal((DIMS[s], DIMS[t])).astype(np.float32) * 0.1,
                                        np.zeros(DIMS[t], np.float32))
               for s, t in (("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"))}
    samples = frozenset(data["a"].samples.tolist())
    run = JointRun(data, modules, {("a", "b")}, samples, TrainConfig(data=nonlinear, out=nonlinear))
    run.epoch()
    for key, module in modules.items():
        moved = not torch.equal(run.modules[key].linear.weight, module.linear.weight)
        assert moved == (key == ("a", "b")), key
