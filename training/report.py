"""`latent-bridge eval`: recompute a bundle's metrics on a dataset, and write a report.

The bundle is loaded and run by the server's own code (``load_bundle``, ``run_route``), so what is
measured is what is served.

The report scores every edge and every two-hop route (A→B→C through the bundle's edges) on the test
split the bundle was trained with, so a routed pair such as audio→text→image is compared with a direct
edge when one exists. Output: report.json, report.md and PNG plots (recall@k curves; the modality gap
before and after translation as a 2-D projection).
"""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from latent_bridge.service.bundle import Bundle, load_bundle  # noqa: E402
from latent_bridge.service.manifest import Manifest  # noqa: E402
from latent_bridge.service.translate import run_route  # noqa: E402
from latent_bridge.training.datasets.reader import ModalityData, load_dataset, shared_samples  # noqa: E402
from latent_bridge.training.datasets.splits import Split, bundle_split  # noqa: E402
from latent_bridge.training.evaluate import Translate, centred_unit, ranks, recall_curve, retrieval_summary  # noqa: E402

KS = [1, 2, 3, 5, 10, 20, 50]


def route_runner(bundle: Bundle, path: list[str]) -> Translate:
    """Translate along ``path`` exactly as the server does (its ``run_route``, unit-norm inputs included)."""
    route = bundle.graph.along(path, path[0], path[-1])

    def run(x: np.ndarray) -> np.ndarray:
        return run_route(bundle.translators, route, np.ascontiguousarray(x, dtype=np.float32), bundle.l2_inputs)

    return run


def train_mean(data: ModalityData, train: frozenset[str]) -> np.ndarray:
    """The training split's mean of a modality: the centre training measures cycle cosine around."""
    rows = data.rows_of(set(train))
    return data.embeddings[rows if len(rows) else slice(None)].mean(axis=0)


def candidate_routes(manifest: Manifest) -> list[list[str]]:
    """Every direct edge and every two-hop path between distinct modalities."""
    edges = {(e.source, e.target) for e in manifest.edges}
    names = [m.name for m in manifest.modalities]
    routes = [[a, b] for a, b in edges]
    routes += [[a, b, c] for a, b, c in permutations(names, 3) if (a, b) in edges and (b, c) in edges]
    return sorted(routes)


def score_route(route: list[str], data: dict[str, ModalityData], split: Split, bundle: Bundle) -> dict[str, object]:
    a, c = data[route[0]], data[route[-1]]
    samples = set(split.test) & shared_samples(a, c)
    qa, gc = a.rows_of(samples), c.rows_of(samples)
    translated = route_runner(bundle, route)(a.embeddings[qa])
    r = ranks(translated, a.samples[qa], c.embeddings[gc], c.samples[gc])
    back_path = route[::-1]
    cycle = None
    if all(bundle.graph.graph.has_edge(s, t) for s, t in zip(back_path, back_path[1:], strict=False)):
        back = route_runner(bundle, back_path)(translated)
        mean = train_mean(a, split.train)
        cycle = float((centred_unit(back, mean) * centred_unit(a.embeddings[qa], mean)).sum(axis=1).mean())
    return {
        "route": route,
        "n_queries": len(qa),
        "n_gallery": len(gc),
        "cycle_cosine": cycle,
        "recall_curve": dict(zip(map(str, KS), recall_curve(r, KS), strict=True)),
        **retrieval_summary(r),
    }


def plot_recall(results: list[dict[str, object]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.get_cmap("tab20")
    for i, res in enumerate(results):
        curve, route = res["recall_curve"], res["route"]
        assert isinstance(curve, dict) and isinstance(route, list)
        ax.plot(KS, list(curve.values()), marker="o", color=colours(i % 20), linestyle="-" if len(route) == 2 else "--",
                label=" → ".join(route) + (" (routed)" if len(route) > 2 else ""))
    ax.set(xscale="log", xlabel="k", ylabel="recall@k", title="Held-out retrieval, every edge and 2-hop route")
    ax.set_xticks(KS, [str(k) for k in KS])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_gap(source: str, target: str, data: dict[str, ModalityData], test: set[str],
             translate: Translate, path: Path) -> None:
    """Target test rows, the translated source rows and (when dims agree) the raw source rows, in 2-D."""
    a, b = data[source], data[target]
    samples = test & shared_samples(a, b)
    xa, xb = a.embeddings[a.rows_of(samples)], b.embeddings[b.rows_of(samples)]
    mean = xb.mean(axis=0)
    _, _, vt = np.linalg.svd(xb - mean, full_matrices=False)
    basis = vt[:2].T
    fig, ax = plt.subplots(figsize=(5.5, 5))
    layers = [(xb, f"{target}"), (translate(xa), f"{source} → {target} (after)")]
    if a.dim == b.dim:
        layers.insert(0, (xa, f"{source} (raw, before)"))
    for rows, label in layers:
        points = (rows - mean) @ basis
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.5, label=label)
    ax.set(title=f"Modality gap, {source} → {target} (PCA of {target})", xticks=[], yticks=[])
    ax.legend(fontsize=8, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(manifest: Manifest, results: list[dict[str, object]]) -> str:
    lines = [f"# Evaluation of bundle `{manifest.name}`", "", "## Edges (kinds tried, test split)", "",
             "| edge | chosen | kind | R@1 | R@10 | cycle cos | cosine |", "|---|---|---|---|---|---|---|"]
    for e in manifest.edges:
        for kind, m in sorted(e.candidates.items(), key=lambda kv: -kv[1].r1):
            mark = "**✓**" if kind == e.kind else ""
            lines.append(f"| {e.source} → {e.target} | {mark} | {kind} | {m.r1:.3f} | {m.r10:.3f} | "
                         f"{m.cycle_cosine:.3f} | {m.cosine:.3f} |")
    lines += ["", "## Routes recomputed through the server's translator code", "",
              "| route | queries | gallery | R@1 | R@5 | R@10 | MRR | median rank | cycle cos |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        cyc = "–" if r["cycle_cosine"] is None else f"{r['cycle_cosine']:.3f}"
        lines.append(f"| {' → '.join(r['route'])} | {r['n_queries']} | {r['n_gallery']} | {r['r1']:.3f} | "  # type: ignore[arg-type]
                     f"{r['r5']:.3f} | {r['r10']:.3f} | {r['mrr']:.3f} | {r['median_rank']:.0f} | {cyc} |")
    return "\n".join(lines) + "\n"


def evaluate_bundle(bundle: Path, data_dir: Path, report_dir: Path, seed: int | None = None) -> dict[str, object]:
    """Score the bundle's edges and routes on the test split of ``data_dir`` and write the report.

    The split seed is the one in the manifest unless ``seed`` is given."""
    bundle, report_dir = Path(bundle), Path(report_dir)
    served = load_bundle(bundle)
    manifest = served.manifest
    cfg = manifest.training
    data = load_dataset(data_dir, [m.name for m in manifest.modalities])
    seed = int(cfg.get("seed", 0)) if seed is None else seed  # type: ignore[call-overload]
    all_samples = set().union(*(set(d.samples.tolist()) for d in data.values()))
    split = bundle_split(cfg, all_samples, seed)
    if not split.test:
        raise ValueError(f"bundle {manifest.name} was fit on every pair of {data_dir} (no --holdout); "
                         "evaluate it on other data or train with --holdout FRACTION")
    results = [score_route(r, data, split, served) for r in candidate_routes(manifest)]
    report_dir.mkdir(parents=True, exist_ok=True)
    plot_recall(results, report_dir / "recall_at_k.png")
    for e in manifest.edges:
        plot_gap(e.source, e.target, data, set(split.test), route_runner(served, [e.source, e.target]),
                 report_dir / f"gap_{e.key}.png")
    report: dict[str, object] = {
        "bundle": manifest.name,
        "fingerprint": manifest.fingerprint,
        "seed": seed,
        "edges": [e.model_dump(mode="json") for e in manifest.edges],
        "routes": results,
    }
    (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (report_dir / "report.md").write_text(markdown(manifest, results))
    return report
