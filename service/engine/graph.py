"""The modality graph: modalities are nodes, translators are directed edges, routes minimise information loss.

An edge's cost is ``-log(fidelity)`` with fidelity one of its held-out metrics, so the cheapest path is
the one whose product of fidelities is largest. A tiny per-hop cost breaks ties in favour of fewer hops
(two perfect hops are not better than one). The default fidelity is held-out MRR, which tracks
retrieval; the seeds' reconstruction cosine stays selectable, but alone it cannot see the loss of an
invertible map (a Procrustes edge has cycle cosine 1 whatever its error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import islice

import networkx as nx
from latent_bridge.service.bundle.manifest import EdgeKind, EdgeSpec, Manifest
from latent_bridge.service.errors import InvalidPath, MissingEdge, NoRoute, UnknownModality
from latent_bridge.service.settings import DEFAULT_FIDELITY, FidelityCriterion

MIN_FIDELITY = 1e-6
HOP_COST = 1e-9
MAX_ECHOED = 16  # entries of a refused path quoted back in the error


@dataclass(frozen=True)
class Hop:
    source: str
    target: str
    kind: EdgeKind
    fidelity: float


@dataclass(frozen=True)
class Route:
    """A path through the graph and its estimated fidelity (product of the hops' fidelities)."""

    path: tuple[str, ...]
    hops: tuple[Hop, ...]

    @property
    def fidelity(self) -> float:
        return math.prod(h.fidelity for h in self.hops)

    @property
    def cost(self) -> float:
        return sum(edge_cost(h.fidelity) for h in self.hops)

    def reversed_path(self) -> tuple[str, ...]:
        return tuple(reversed(self.path))


def edge_fidelity(edge: EdgeSpec, criterion: FidelityCriterion) -> float:
    """The edge's metric named by ``criterion``, clipped into [MIN_FIDELITY, 1] so its log is finite."""
    value = float(getattr(edge.metrics, criterion))
    if not math.isfinite(value):
        return MIN_FIDELITY
    return min(1.0, max(MIN_FIDELITY, value))


def edge_cost(fidelity: float) -> float:
    return -math.log(fidelity) + HOP_COST


class ModalityGraph:
    """Routing over a bundle's edges; built once per bundle, read-only afterwards."""

    def __init__(self, manifest: Manifest, criterion: FidelityCriterion = DEFAULT_FIDELITY) -> None:
        self.criterion = criterion
        self.graph = nx.DiGraph()
        for m in manifest.modalities:
            self.graph.add_node(m.name, dim=m.dim)
        for e in manifest.edges:
            fidelity = edge_fidelity(e, criterion)
            self.graph.add_edge(e.source, e.target, spec=e, fidelity=fidelity, cost=edge_cost(fidelity))
        self.modalities = sorted(self.graph.nodes)
        self._best: dict[tuple[str, str], Route] = {}

    def require(self, name: str) -> None:
        if name not in self.graph:
            raise UnknownModality(name, self.modalities)

    def _route(self, path: list[str] | tuple[str, ...]) -> Route:
        hops = tuple(
            Hop(a, b, self.graph.edges[a, b]["spec"].kind, self.graph.edges[a, b]["fidelity"])
            for a, b in zip(path, path[1:], strict=False)
        )
        return Route(tuple(path), hops)

    def components(self) -> list[list[str]]:
        """Weakly connected groups of modalities, each sorted, largest first."""
        groups = [sorted(c) for c in nx.weakly_connected_components(self.graph)]
        return sorted(groups, key=lambda g: (-len(g), g))

    def _no_route(self, source: str, target: str) -> NoRoute:
        components = self.components()
        where = {m: c for c in components for m in c}
        if where[source] is where[target]:
            detail = (
                f"no directed route from {source!r} to {target!r}; "
                f"from {source!r} one reaches {sorted(nx.descendants(self.graph, source))}"
            )
        else:
            detail = (
                f"no route from {source!r} to {target!r}: {source!r} is in {where[source]}, "
                f"{target!r} is in {where[target]}; components: {components}"
            )
        return NoRoute(detail, components=components)

    def best(self, source: str, target: str) -> Route:
        """The cheapest route; ``NoRoute`` names the components when there is none."""
        key = (source, target)
        found = self._best.get(key)
        if found is not None:
            return found
        self.require(source)
        self.require(target)
        try:
            path = nx.shortest_path(self.graph, source, target, weight="cost")
        except nx.NetworkXNoPath:
            raise self._no_route(source, target) from None
        route = self._route(path)
        self._best[key] = route
        return route

    def ranked(self, source: str, target: str, count: int) -> list[Route]:
        """The ``count`` cheapest simple routes, best first."""
        self.require(source)
        self.require(target)
        if source == target:
            return [self._route([source])]
        try:
            paths = list(islice(nx.shortest_simple_paths(self.graph, source, target, weight="cost"), count))
        except nx.NetworkXNoPath:
            raise self._no_route(source, target) from None
        return [self._route(p) for p in paths]

    def along(self, path: list[str], source: str, target: str) -> Route:
        """The route of a pinned path, checked against the request and the bundle's edges.

        Only simple paths are accepted (each modality at most once), so a pinned route has at most one hop
        per modality: its cost is bounded by the bundle, never by the request."""
        if len(path) > len(self.modalities) or len(set(path)) != len(path):
            raise InvalidPath(
                f"a pinned path must be simple: each modality at most once, at most {len(self.modalities)} "
                f"modalities (got {len(path)} entries, {len(set(path))} distinct)",
                path=path[:MAX_ECHOED],
            )
        for name in path:
            self.require(name)
        if not path or path[0] != source or path[-1] != target:
            raise InvalidPath(
                f"a pinned path must start at {source!r} and end at {target!r}, got {path}", path=path
            )
        for a, b in zip(path, path[1:], strict=False):
            if not self.graph.has_edge(a, b):
                known = sorted(self.graph.successors(a))
                raise MissingEdge(
                    f"pinned path {path} needs edge {a}→{b}, which the bundle lacks; "
                    f"edges from {a!r} go to {known}",
                    edge=[a, b],
                    available=known,
                )
        return self._route(path)

    def label(self, route: Route) -> str:
        """The route's metric label: its path when it is the best route between its ends, else
        ``from>…>to (pinned)``. At most two labels per pair of modalities, whatever requests pin."""
        source, target = route.path[0], route.path[-1]
        if route.path == self.best(source, target).path:
            return ">".join(route.path)
        return f"{source}>…>{target} (pinned)"

    def resolve(self, source: str, target: str, path: list[str] | None = None) -> Route:
        """The route a request asks for: its pinned ``path`` when given, else the best one."""
        self.require(source)
        self.require(target)
        return self.along(path, source, target) if path is not None else self.best(source, target)

    def back(self, route: Route) -> Route:
        """The way back for a round trip: the reversed path when every reverse edge exists, else the best."""
        reverse = route.reversed_path()
        if all(self.graph.has_edge(a, b) for a, b in zip(reverse, reverse[1:], strict=False)):
            return self._route(reverse)
        return self.best(route.path[-1], route.path[0])
