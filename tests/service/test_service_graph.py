"""Routing on hand-made manifests: -log(fidelity) cost, criterion, alternatives, pinned paths, no route."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from latent_bridge.service.bundle.manifest import SCHEMA_VERSION, EdgeMetrics, EdgeSpec, Manifest, ModalitySpec
from latent_bridge.service.engine.graph import ModalityGraph, edge_fidelity
from latent_bridge.service.errors import InvalidPath, MissingEdge, NoRoute, UnknownModality


def metrics(fidelity: float, cosine: float = 0.9, r1: float = 0.5, cycle: float | None = None) -> EdgeMetrics:
    """Held-out MRR (the default fidelity) and cycle cosine are ``fidelity`` unless ``cycle`` is given."""
    return EdgeMetrics(
        cosine=cosine,
        cycle_cosine=fidelity if cycle is None else cycle,
        r1=r1,
        r5=0.9,
        r10=0.95,
        mrr=fidelity,
        median_rank=1.0,
        n_train=100,
        n_test=20,
    )


def manifest(edges: dict[tuple[str, str], EdgeMetrics], names: str = "abcd") -> Manifest:
    return Manifest(
        schema_version=SCHEMA_VERSION,
        name="hand-made",
        created_at=datetime.now(UTC),
        modalities=[ModalitySpec(name=n, dim=4) for n in names],
        edges=[
            EdgeSpec(
                source=s,
                target=t,
                kind="ridge",
                file=f"translators/{s}__{t}.onnx",
                sha256="0" * 64,
                metrics=m,
            )
            for (s, t), m in edges.items()
        ],
        dataset_fingerprint="0" * 64,
    )


def both_ways(edges: dict[tuple[str, str], EdgeMetrics]) -> dict[tuple[str, str], EdgeMetrics]:
    return edges | {(t, s): m for (s, t), m in edges.items()}


def test_two_good_hops_beat_a_poor_direct_edge() -> None:
    graph = ModalityGraph(
        manifest(both_ways({("a", "b"): metrics(0.95), ("b", "c"): metrics(0.95), ("a", "c"): metrics(0.8)}))
    )
    best = graph.best("a", "c")
    assert best.path == ("a", "b", "c")
    assert best.fidelity == pytest.approx(0.95 * 0.95)
    assert best.cost == pytest.approx(-2 * math.log(0.95), abs=1e-6)
    ranked = graph.ranked("a", "c", 5)
    assert [r.path for r in ranked] == [("a", "b", "c"), ("a", "c")]


def test_a_good_direct_edge_wins_and_ties_prefer_fewer_hops() -> None:
    graph = ModalityGraph(
        manifest(both_ways({("a", "b"): metrics(1.0), ("b", "c"): metrics(1.0), ("a", "c"): metrics(1.0)}))
    )
    assert graph.best("a", "c").path == ("a", "c")


def test_the_criterion_changes_the_route() -> None:
    edges = both_ways(
        {
            ("a", "b"): metrics(0.99, r1=0.5),
            ("b", "c"): metrics(0.99, r1=0.5),
            ("a", "c"): metrics(0.9, r1=0.9),
        }
    )
    assert ModalityGraph(manifest(edges), "cycle_cosine").best("a", "c").path == ("a", "b", "c")
    assert ModalityGraph(manifest(edges), "r1").best("a", "c").path == ("a", "c")


def test_an_invertible_edge_does_not_win_by_default_on_its_cycle_cosine() -> None:
    """A Procrustes edge has cycle cosine 1 whatever its accuracy; the default criterion tracks retrieval."""
    edges = both_ways(
        {
            ("a", "b"): metrics(0.6, cycle=0.8),
            ("b", "c"): metrics(0.6, cycle=0.8),
            ("a", "c"): metrics(0.1, cycle=1.0),
        }
    )
    assert ModalityGraph(manifest(edges)).criterion == "mrr"
    assert ModalityGraph(manifest(edges)).best("a", "c").path == ("a", "b", "c")
    assert ModalityGraph(manifest(edges), "cycle_cosine").best("a", "c").path == ("a", "c")


def test_fidelity_is_clipped_so_its_log_is_finite() -> None:
    edge = manifest({("a", "b"): metrics(-0.2, r1=0.0)}).edges[0]
    assert edge_fidelity(edge, "cycle_cosine") > 0
    assert edge_fidelity(edge, "r1") > 0
    graph = ModalityGraph(manifest({("a", "b"): metrics(-0.2)}))
    assert math.isfinite(graph.best("a", "b").cost)


def test_same_modality_is_an_empty_route() -> None:
    graph = ModalityGraph(manifest({("a", "b"): metrics(0.9)}))
    route = graph.best("a", "a")
    assert route.path == ("a",) and route.hops == () and route.fidelity == 1.0


def test_no_route_names_the_components() -> None:
    graph = ModalityGraph(manifest(both_ways({("a", "b"): metrics(0.9), ("c", "d"): metrics(0.9)})))
    with pytest.raises(NoRoute) as caught:
        graph.best("a", "c")
    assert caught.value.extra["components"] == [["a", "b"], ["c", "d"]]
    assert "'a' is in ['a', 'b']" in caught.value.detail


def test_no_directed_route_inside_one_component() -> None:
    graph = ModalityGraph(manifest({("a", "b"): metrics(0.9)}, names="ab"))
    with pytest.raises(NoRoute, match="no directed route from 'b' to 'a'"):
        graph.best("b", "a")


def test_unknown_modality_lists_the_known_ones() -> None:
    graph = ModalityGraph(manifest({("a", "b"): metrics(0.9)}))
    with pytest.raises(UnknownModality) as caught:
        graph.best("a", "zebra")
    assert caught.value.extra["known"] == ["a", "b", "c", "d"]


def test_pinned_paths() -> None:
    graph = ModalityGraph(
        manifest(both_ways({("a", "b"): metrics(0.9), ("b", "c"): metrics(0.8), ("a", "c"): metrics(0.99)}))
    )
    assert graph.along(["a", "b", "c"], "a", "c").fidelity == pytest.approx(0.72)
    with pytest.raises(MissingEdge) as caught:
        graph.along(["a", "d", "c"], "a", "c")
    assert caught.value.extra["edge"] == ["a", "d"]
    with pytest.raises(InvalidPath):
        graph.along(["b", "c"], "a", "c")
    with pytest.raises(InvalidPath):
        graph.along(["a", "a", "c"], "a", "c")
    with pytest.raises(UnknownModality):
        graph.along(["a", "x", "c"], "a", "c")


def test_the_way_back_reverses_the_path_or_takes_the_best() -> None:
    edges = both_ways({("a", "b"): metrics(0.9), ("b", "c"): metrics(0.9)}) | {("c", "a"): metrics(0.99)}
    graph = ModalityGraph(manifest(edges))
    route = graph.along(["a", "b", "c"], "a", "c")
    assert graph.back(route).path == ("c", "b", "a")
    one_way = ModalityGraph(
        manifest({("a", "b"): metrics(0.9), ("b", "c"): metrics(0.9), ("c", "a"): metrics(0.9)})
    )
    assert one_way.back(one_way.best("a", "c")).path == ("c", "a")
