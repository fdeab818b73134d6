import json
from pathlib import Path

import numpy as np
import pytest
from latent_bridge.cli import main
from latent_bridge.service.bundle.manifest import read_manifest
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.builders.synthetic import make_dataset, write_modality
from latent_bridge.training.grow import GrowError, add_edge, add_modality
from latent_bridge.training.report.run_report import evaluate_bundle
from latent_bridge.training.train import train


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("grow")
    data = make_dataset(root / "data", n=240, dims={"a": 12, "b": 10, "c": 8}, relation="linear", noise=0.2)
    parent = root / "parent"
    train(TrainConfig(data=data, out=parent, kind="ridge", edges=[("a", "b")], holdout=0.2, progress=False))
    child = root / "child"
    main(["add-modality", "--bundle", str(parent), "--data", str(data), "--modality", "c", "--link-to", "b",
          "--out", str(child), "--kind", "ridge", "--quiet"])
    return data, parent, child


def test_new_modality_keeps_old_edges_byte_identical(grown: tuple[Path, Path, Path]) -> None:
    _, parent, child = grown
    old, new = read_manifest(parent), read_manifest(child)
    old_edges = {e.key: e for e in old.edges}
    for key, edge in old_edges.items():
        carried = next(e for e in new.edges if e.key == key)
        assert carried == edge
        assert (child / edge.file).read_bytes() == (parent / edge.file).read_bytes()
    assert sorted(e.key for e in new.edges) == ["a__b", "b__a", "b__c", "c__b"]
    assert [m.name for m in new.modalities] == ["a", "b", "c"]
    assert {g.modality for g in new.galleries} == {"a", "b", "c"}
    assert new.lineage.parent == "parent" and new.lineage.parent_fingerprint == old.fingerprint
    assert sorted(new.lineage.new_edges) == ["b__c", "c__b"]
    assert new.training["seed"] == old.training["seed"] and new.training["holdout"] == old.training["holdout"]


def test_new_modality_reaches_the_others_through_its_partner(grown: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, _, child = grown
    report = evaluate_bundle(child, data, tmp_path / "report", curve_seeds=0)
    routes = {" ".join(r["route"]): r for r in report["routes"]}  # type: ignore[attr-defined, index]
    assert routes["c b a"]["r10"] > 0.5  # chance is about 10/48
    assert "c a" not in routes


def test_late_edge_adds_a_direct_pair(grown: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, _, child = grown
    manifest = add_edge(child, data, ("a", "c"), TrainConfig(data=data, out=tmp_path / "late", kind="ridge",
                                                              progress=False))
    assert sorted(manifest.lineage.new_edges) == ["a__c", "c__a"]
    assert len(manifest.edges) == 6
    with pytest.raises(GrowError, match="already has edge"):
        add_edge(tmp_path / "late", data, ("c", "a"), TrainConfig(data=data, out=tmp_path / "x", progress=False))


def _cfg(data: Path, out: Path) -> TrainConfig:
    return TrainConfig(data=data, out=out, kind="ridge", progress=False)


def test_grow_refuses_bad_requests(grown: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, parent, _ = grown
    with pytest.raises(GrowError, match="'a' is already in bundle parent"):
        add_modality(parent, data, "a", ["b"], _cfg(data, tmp_path / "x"))
    with pytest.raises(GrowError, match="partner 'z' is not in bundle parent"):
        add_modality(parent, data, "c", ["z"], _cfg(data, tmp_path / "x"))
    with pytest.raises(GrowError, match="'z' is not in bundle"):
        add_edge(parent, data, ("a", "z"), _cfg(data, tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_grow_names_too_few_shared_samples_and_dimension_clash(grown: tuple[Path, Path, Path],
                                                              tmp_path: Path) -> None:
    _, parent, _ = grown
    rng = np.random.default_rng(0)
    few = tmp_path / "few"
    few.mkdir()
    write_modality(few, "b", [f"s{i}" for i in range(240)], rng.standard_normal((240, 10)))
    write_modality(few, "d", [f"s{i}" for i in range(10)], rng.standard_normal((10, 5)))
    with pytest.raises(GrowError, match="d and b share 10 samples in the dataset; at least 32 are needed"):
        add_modality(parent, few, "d", ["b"], _cfg(few, tmp_path / "x"))
    clash = tmp_path / "clash"
    clash.mkdir()
    write_modality(clash, "b", [f"s{i}" for i in range(240)], rng.standard_normal((240, 7)))
    write_modality(clash, "d", [f"s{i}" for i in range(240)], rng.standard_normal((240, 5)))
    with pytest.raises(GrowError, match="b embeddings are 7-d but the bundle's b is 10-d"):
        add_modality(parent, clash, "d", ["b"], _cfg(clash, tmp_path / "x"))


def test_parent_is_untouched(grown: tuple[Path, Path, Path]) -> None:
    _, parent, _ = grown
    manifest = json.loads((parent / "manifest.json").read_text())
    assert sorted(e["source"] + e["target"] for e in manifest["edges"]) == ["ab", "ba"]
    assert sorted(p.name for p in (parent / "translators").iterdir()) == ["a__b.onnx", "b__a.onnx"]


def test_grown_bundle_keeps_the_parents_choices_and_chooses_for_the_new_edges(
    grown: tuple[Path, Path, Path]
) -> None:
    """add-modality no longer sends every route to chain: the parent's choices whose route is unchanged are
    carried as measured, and the new edges' routes are chosen on this run's folds."""
    _, parent, child = grown
    old = {tuple(r.path): r for r in read_manifest(parent).routes}
    new = {tuple(r.path): r for r in read_manifest(child).routes}
    assert old and set(old) <= set(new)
    for path, route in old.items():
        assert new[path] == route
    assert {("b", "c"), ("c", "b")} <= set(new)
    for path in (("b", "c"), ("c", "b")):
        assert new[path].n_queries > 0 and new[path].scores
    pivots = {(p.modality, p.pivot) for p in read_manifest(child).pivot_galleries}
    assert {(r.target, r.pivot) for r in new.values() if r.strategy != "chain"} <= pivots
