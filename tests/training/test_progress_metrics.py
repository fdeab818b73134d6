"""The seeds' progress metrics in `latent-bridge eval`: modality gap, separability, learning curve, plots."""

import json
from pathlib import Path

import numpy as np
import pytest
from latent_bridge.cli import main
from latent_bridge.service.bundle.manifest import Manifest
from latent_bridge.training.report.learning_curve import subset
from latent_bridge.training.report.modality_gap import distance, gap_metrics, separability


def _cloud(n: int, dim: int, centre: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x[:, 0] += centre
    return x


def test_identical_spaces_have_no_distance() -> None:
    x = _cloud(50, 8, 0.0, 0)
    assert distance(x, x) == pytest.approx({"cosine_distance": 0.0, "euclidean": 0.0, "centroid_gap": 0.0}, abs=1e-9)
    assert distance(x, 3.0 * x)["cosine_distance"] == pytest.approx(0.0, abs=1e-9)  # scale does not count


def test_distance_of_orthogonal_pairs_and_of_opposite_centres() -> None:
    eye = np.eye(4)
    assert distance(eye[:2], eye[2:]) == pytest.approx(
        {"cosine_distance": 1.0, "euclidean": np.sqrt(2), "centroid_gap": 1.0})
    assert distance(eye[:1], -eye[:1])["centroid_gap"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same shape"):
        distance(eye, eye[:, :3])


def test_separated_modalities_have_a_high_silhouette_and_mixed_ones_none() -> None:
    apart = separability(_cloud(300, 16, 12.0, 1), _cloud(300, 16, -12.0, 2))
    mixed = separability(_cloud(300, 16, 0.0, 3), _cloud(300, 16, 0.0, 4))
    assert apart > 0.8
    assert abs(mixed) < 0.05


def test_silhouette_sample_is_bounded_and_seeded() -> None:
    x, y = _cloud(500, 8, 2.0, 5), _cloud(400, 8, -2.0, 6)
    assert separability(x, y, seed=1, max_rows=50) == separability(x, y, seed=1, max_rows=50)
    assert separability(x, y, seed=1, max_rows=50) != separability(x, y, seed=2, max_rows=50)


def test_gap_before_translation_needs_equal_dimensions() -> None:
    source, target = _cloud(40, 6, 5.0, 7), _cloud(40, 4, -5.0, 8)
    translated = np.hstack([source[:, :3], -source[:, 3:4]])  # some map into the 4-d space
    paired = (np.arange(40), np.arange(40))
    gap = gap_metrics(source, translated, target, paired)
    assert gap["before"] is None
    assert gap["after"] is not None and gap["after"]["silhouette"] > 0.5
    same = gap_metrics(target, target, target, paired)
    assert same["before"] == same["after"]
    assert same["after"] is not None and same["after"]["cosine_distance"] == pytest.approx(0.0, abs=1e-9)


def test_learning_curve_subsets_are_nested_and_sized() -> None:
    samples = frozenset(f"s{i}" for i in range(200))
    small, large = subset(samples, 0.1, 0), subset(samples, 0.5, 0)
    assert len(small) == 20 and len(large) == 100 and small < large
    assert subset(samples, 1.0, 0) == samples
    assert subset(samples, 0.1, 1) != small


def test_eval_writes_progress_metrics_and_plots(rotation_bundle: tuple[Path, Path, Manifest], tmp_path: Path) -> None:
    """The report holds gap metrics per route and a learning curve whose 100% point, at the bundle's own
    seed, refits exactly the shipped translator (its held-out R@1 is the manifest's)."""
    data, bundle, manifest = rotation_bundle
    main(["eval", "--bundle", str(bundle), "--data", str(data), "--report", str(tmp_path / "r"),
          "--curve-seeds", "1", "--quiet"])
    for name in ("report.json", "report.md", "learning_curve.png", "modality_gap.png", "recall_at_k.png"):
        assert (tmp_path / "r" / name).stat().st_size > 100, name
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    for route in report["routes"]:
        assert route["gap"]["before"] is not None  # 64-d ↔ 64-d: raw rows are comparable
        assert 0 <= route["gap"]["after"]["cosine_distance"] < route["gap"]["before"]["cosine_distance"]
    curves = {(c["source"], c["target"]): c for c in report["learning_curves"]}
    assert set(curves) == {(e.source, e.target) for e in manifest.edges}
    for edge in manifest.edges:
        curve = curves[(edge.source, edge.target)]
        assert set(curve["mean"]) == {"chosen", "ridge", "procrustes"}
        assert len(curve["mean"]["ridge"]) == len(curve["fractions"]) == 5
        assert curve["r1"]["chosen"]["1.0"][0] == pytest.approx(edge.metrics.r1, abs=1e-9)
    assert "## Learning curve" in (tmp_path / "r" / "report.md").read_text()
