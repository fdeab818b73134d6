"""Routing criterion check: is the route each fidelity criterion picks the one with the best held-out R@1,
and where it is not, is the difference larger than the hold-out's own noise?

For each seed, the dataset's bundle (demo: image↔text, audio↔text; the suite's emoji: image↔English,
English↔German) is trained with ``--holdout 0.2`` and the missing direct edge (audio↔image;
image↔German) is grown in (same hold-out), so every directed pair has a direct and a two-hop route.
Each route is scored on the held-out samples through the server's code. Routes are picked twice per
criterion: on the manifest's metrics (with a hold-out these are measured on the very samples the check
scores) and on the cross-validated metrics of the chosen kind (what a bundle trained without
``--holdout`` routes on, and independent of the hold-out). For every pick that is not the best route, a
paired bootstrap over held-out samples gives the 90% interval of the R@1 it loses.

    python bench/route_choice.py [--dataset demo|emoji] [--seeds 0 1 2] [--out reports/route_choice]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from latent_bridge.service.bundle.loader import load_bundle
from latent_bridge.service.bundle.manifest import Manifest
from latent_bridge.service.engine.graph import ModalityGraph
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.reader import ModalityData, load_dataset, shared_samples
from latent_bridge.training.datasets.splits import holdout_split
from latent_bridge.training.grow import add_edge
from latent_bridge.training.report.run_report import route_runner
from latent_bridge.training.train import train
from threadpoolctl import threadpool_limits

HOLDOUT = 0.2
# per dataset: where its rows are, the edges trained, and the direct edge grown in afterwards
DATASETS: dict[str, tuple[Path, list[tuple[str, str]], tuple[str, str]]] = {
    "demo": (Path("data/demo"), [("image", "text"), ("audio", "text")], ("audio", "image")),
    "emoji": (Path("data/suite/emoji"), [("image", "text_en"), ("text_en", "text_de")], ("image", "text_de")),
}
CRITERIA = ("mrr", "r1", "cosine", "cycle_cosine")


def cross_validated(manifest: Manifest) -> Manifest:
    """The manifest with each edge's metrics replaced by its chosen kind's cross-validated ones."""
    edges = [e.model_copy(update={"metrics": e.candidates.get(e.kind, e.metrics)}) for e in manifest.edges]
    return manifest.model_copy(update={"edges": edges})


def hits_by_sample(route: list[str], data: dict[str, ModalityData], test: frozenset[str], served: object) -> tuple[
        np.ndarray, np.ndarray, np.ndarray]:
    """(query samples, R@1 hit per query, reciprocal rank per query) of ``route`` on the held-out rows."""
    a, c = data[route[0]], data[route[-1]]
    samples = set(test) & shared_samples(a, c)
    qa, gc = a.rows_of(samples), c.rows_of(samples)
    r = ranks(route_runner(served, route)(a.embeddings[qa]), a.samples[qa], c.embeddings[gc], c.samples[gc])  # type: ignore[arg-type]
    return a.samples[qa], (r <= 1).astype(float), 1.0 / r


def bootstrap_loss(q: np.ndarray, best: np.ndarray, picked: np.ndarray, seed: int, n: int = 2000) -> list[float]:
    """5th and 95th percentile of R@1(best) - R@1(picked), resampling held-out samples with replacement."""
    keys, inverse = np.unique(q, return_inverse=True)
    diff = np.bincount(inverse, weights=best - picked, minlength=len(keys))
    count = np.bincount(inverse, minlength=len(keys)).astype(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(keys), size=(n, len(keys)))
    values = diff[idx].sum(axis=1) / count[idx].sum(axis=1)
    return [float(np.percentile(values, 5)), float(np.percentile(values, 95))]


def run_seed(dataset: str, seed: int, work: Path) -> list[dict[str, object]]:
    where, edges, direct = DATASETS[dataset]
    parent, full = work / f"{dataset}-{seed}", work / f"{dataset}-{seed}-direct"
    train(TrainConfig(data=where, out=parent, seed=seed, edges=edges, holdout=HOLDOUT, progress=False))
    add_edge(parent, where, direct, TrainConfig(data=where, out=full, seed=seed, progress=False))
    served = load_bundle(full)
    data = load_dataset(where)
    _, test = holdout_split(set().union(*(set(d.samples.tolist()) for d in data.values())), seed, HOLDOUT)
    graphs = {"test": served.manifest, "cv": cross_validated(served.manifest)}
    found = []
    names = [m.name for m in served.manifest.modalities]
    with threadpool_limits(1):
        for src in names:
            for dst in [n for n in names if n != src]:
                routes = [list(r.path) for r in served.graph.ranked(src, dst, 5) if len(r.path) <= 3]
                scored = {" → ".join(r): hits_by_sample(r, data, test, served) for r in routes}
                best = max(scored, key=lambda k: (scored[k][1].mean(), scored[k][2].mean()))
                entry: dict[str, object] = {
                    "from": src, "to": dst, "best": best, "n_queries": len(scored[best][0]),
                    "r1": {k: float(v[1].mean()) for k, v in scored.items()},
                    "mrr": {k: float(v[2].mean()) for k, v in scored.items()},
                }
                for where, manifest in graphs.items():
                    for c in CRITERIA:
                        route = ModalityGraph(manifest, c).best(src, dst)  # type: ignore[arg-type]
                        key = " → ".join(route.path)
                        pick: dict[str, object] = {"route": key, "fidelity": route.fidelity,
                                                   "loss": float(scored[best][1].mean() - scored[key][1].mean())}
                        if key != best:
                            pick["loss_90"] = bootstrap_loss(scored[best][0], scored[best][1], scored[key][1], seed)
                        entry[f"{where}:{c}"] = pick
                found.append(entry)
    return found


def summary(runs: dict[int, list[dict[str, object]]]) -> str:
    lines = ["| metrics routed on | criterion | picks the best route | R@1 lost (sum over pairs and seeds) | "
             "misses whose 90% interval excludes 0 |", "|---|---|---|---|---|"]
    for where in ("test", "cv"):
        for c in CRITERIA:
            picks = [e[f"{where}:{c}"] for run in runs.values() for e in run]
            hits = sum(1 for run in runs.values() for e in run if e[f"{where}:{c}"]["route"] == e["best"])  # type: ignore[index]
            lost = sum(float(p["loss"]) for p in picks)  # type: ignore[index]
            sure = sum(1 for p in picks if "loss_90" in p and p["loss_90"][0] > 0)  # type: ignore[operator, index]
            lines.append(f"| {where} | {c} | {hits}/{len(picks)} | {lost:.3f} | {sure} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=list(DATASETS), default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("reports/route_choice"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            runs[seed] = run_seed(args.dataset, seed, Path(tmp))
            (args.out / f"seed{seed}.json").write_text(json.dumps(runs[seed], indent=2) + "\n")
            print(f"seed {seed} done", flush=True)
    text = summary(runs)
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
