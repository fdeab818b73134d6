"""`latent-bridge eval`: recompute a bundle's metrics on a dataset, and write a report.

The bundle is loaded and run by the server's own code (``load_bundle``, ``run_route``), so what is
measured is what is served.

The report scores every edge and every two-hop route (A→B→C through the bundle's edges) on the test
split the bundle was trained with, so a routed pair such as audio→text→image is compared with a direct
edge when one exists. Besides retrieval (R@1/5/10, MRR, median rank) it holds the seeds' progress
metrics: the inter-modality distance and the silhouette of the modality labels before and after
translation (``modality_gap``), and a learning curve of the chosen kind beside ridge and Procrustes
(``learning_curve``). Output: report.json, report.md and PNG plots (recall@k curves; the modality gap
as a 2-D projection and as distance/silhouette bars; the learning curves).
"""

from __future__ import annotations

import json
import math
from itertools import permutations
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from latent_bridge.service.bundle.loader import Bundle, load_bundle  # noqa: E402
from latent_bridge.service.bundle.manifest import Manifest  # noqa: E402
from latent_bridge.service.engine.scoring import centred_unit, ranks  # noqa: E402
from latent_bridge.service.engine.translate import run_route  # noqa: E402
from latent_bridge.training.datasets.reader import ModalityData, load_dataset, shared_samples  # noqa: E402
from latent_bridge.training.datasets.splits import Split, bundle_split, paired_rows  # noqa: E402
from latent_bridge.training.evaluate import Translate, recall_curve, retrieval_summary  # noqa: E402
from latent_bridge.training.report.learning_curve import config_of, learning_curves  # noqa: E402
from latent_bridge.training.report.modality_gap import gap_metrics  # noqa: E402

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


def route_gap(route: list[str], data: dict[str, ModalityData], split: Split, bundle: Bundle,
              seed: int) -> dict[str, dict[str, float] | None]:
    """Inter-modality distance and silhouette of ``route``'s ends on the test rows, before and after."""
    a, c = data[route[0]], data[route[-1]]
    samples = set(split.test) & shared_samples(a, c)
    qa, gc = a.rows_of(samples), c.rows_of(samples)
    ia, ic = paired_rows(a, c, samples)
    x = a.embeddings[qa]
    paired = (np.searchsorted(qa, ia), np.searchsorted(gc, ic))
    return gap_metrics(x, route_runner(bundle, route)(x), c.embeddings[gc], paired, seed)


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


GAP_PANELS = (("centroid_gap", "distance between the modality centres"),
              ("cosine_distance", "mean cosine distance of true pairs"),
              ("silhouette", "silhouette of the modality labels"))


def plot_gap_bars(results: list[dict[str, object]], path: Path) -> None:
    """Per route, the gap metrics before (raw source rows, where dims agree) and after translation."""
    names = [" → ".join(r["route"]) for r in results]  # type: ignore[arg-type]
    fig, axes = plt.subplots(1, len(GAP_PANELS), figsize=(4.2 * len(GAP_PANELS), 0.45 * len(names) + 1.6),
                             sharey=True)
    y = np.arange(len(names))
    for ax, (key, title) in zip(axes, GAP_PANELS, strict=True):
        for offset, when, colour in ((0.2, "before", "tab:grey"), (-0.2, "after", "tab:blue")):
            values = [np.nan if r["gap"][when] is None else r["gap"][when][key] for r in results]  # type: ignore[index]
            ax.barh(y + offset, values, height=0.4, color=colour, label=f"{when} translation")
        ax.set(title=title, yticks=y)
        ax.axvline(0, color="black", lw=0.5)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticklabels(names, fontsize=8)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8)
    fig.suptitle("Modality gap on held-out rows (no grey bar: the two spaces' dimensions differ)", fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(curves: list[dict[str, object]], path: Path) -> None:
    """Held-out R@1 against the share of training pairs, one panel per directed edge, mean ± std over seeds."""
    cols = min(2, len(curves))
    rows = math.ceil(len(curves) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, curve in zip(axes.flat, curves, strict=False):
        x = [100 * f for f in curve["fractions"]]  # type: ignore[attr-defined]
        for label, style in (("chosen", "-o"), ("ridge", "--s"), ("procrustes", ":^")):
            mean, std = np.array(curve["mean"][label]), np.array(curve["std"][label])  # type: ignore[index]
            name = f"{curve['kind']} (chosen)" if label == "chosen" else label
            ax.plot(x, mean, style, label=name)
            ax.fill_between(x, mean - std, mean + std, alpha=0.15)
        ax.set(title=f"{curve['source']} → {curve['target']}", xlabel="% of training pairs", ylabel="held-out R@1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _gap_cells(gap: dict[str, dict[str, float] | None]) -> str:
    cells = []
    for key in ("centroid_gap", "cosine_distance", "silhouette"):
        before = gap["before"]
        cells.append(f"{'–' if before is None else f'{before[key]:.3f}'} → {gap['after'][key]:.3f}")  # type: ignore[index]
    return " | ".join(cells)


def _curve_lines(curves: list[dict[str, object]]) -> list[str]:
    fractions = curves[0]["fractions"]
    assert isinstance(fractions, list)
    lines = ["", "## Learning curve (held-out R@1, mean ± std over seeds)", "",
             "| edge | fitted | " + " | ".join(f"{100 * f:.0f}%" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    for c in curves:
        for label in ("chosen", "ridge", "procrustes"):
            name = f"{c['kind']} (chosen)" if label == "chosen" else label
            cells = [f"{m:.3f} ± {s:.3f}" for m, s in zip(c["mean"][label], c["std"][label], strict=True)]  # type: ignore[index]
            lines.append(f"| {c['source']} → {c['target']} | {name} | " + " | ".join(cells) + " |")
    return lines


def markdown(manifest: Manifest, results: list[dict[str, object]],
             curves: list[dict[str, object]] | None = None) -> str:
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
    lines += ["", "## Modality gap on held-out rows, before → after translation", "",
              "Unit rows, not centred; before: the raw source rows (– where the dimensions differ).", "",
              "| route | centroid gap | cosine distance of pairs | silhouette |", "|---|---|---|---|"]
    lines += [f"| {' → '.join(r['route'])} | {_gap_cells(r['gap'])} |" for r in results]  # type: ignore[arg-type]
    if curves:
        lines += _curve_lines(curves)
    return "\n".join(lines) + "\n"


def evaluate_bundle(bundle: Path, data_dir: Path, report_dir: Path, seed: int | None = None, curve_seeds: int = 3,
                    progress: bool = True) -> dict[str, object]:
    """Score the bundle's edges and routes on the test split of ``data_dir`` and write the report.

    The split seed is the one in the manifest unless ``seed`` is given. The learning curve refits every
    pair several times over ``curve_seeds`` seeds (0: no curve)."""
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
    results = [score_route(r, data, split, served) | {"gap": route_gap(r, data, split, served, seed)}
               for r in candidate_routes(manifest)]
    curves: list[dict[str, object]] = []
    if curve_seeds > 0:
        curves = learning_curves(manifest, data, split.train, split.test, config_of(manifest, progress=progress),
                                 [seed + i for i in range(curve_seeds)], progress=progress)
    report_dir.mkdir(parents=True, exist_ok=True)
    plot_recall(results, report_dir / "recall_at_k.png")
    plot_gap_bars(results, report_dir / "modality_gap.png")
    if curves:
        plot_learning_curves(curves, report_dir / "learning_curve.png")
    for e in manifest.edges:
        plot_gap(e.source, e.target, data, set(split.test), route_runner(served, [e.source, e.target]),
                 report_dir / f"gap_{e.key}.png")
    report: dict[str, object] = {
        "bundle": manifest.name,
        "fingerprint": manifest.fingerprint,
        "seed": seed,
        "edges": [e.model_dump(mode="json") for e in manifest.edges],
        "routes": results,
        "learning_curves": curves,
    }
    (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (report_dir / "report.md").write_text(markdown(manifest, results, curves))
    return report
