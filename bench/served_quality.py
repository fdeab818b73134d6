"""The user's path, measured: train on some pairs, make held-out items the gallery, query the served engine.

For each seed a fifth of the demo's samples is held out by sample and never trained on. Their rows become
the galleries (``latent-bridge train --data <train> --gallery-data <held-out>``, the README's command) and
their rows of each source modality the queries. Every directed edge and route is searched through the
engine exactly as served (``service/engine/retrieval.py``: the bundle's chosen strategy and hubness, its
tuned index), and compared with a ridge map fitted on the same training pairs (alpha by 5-fold
cross-validation over training samples) searched by centred cosine in the same gallery. A route
(audio → text → image) is compared with a ridge map fitted directly on the endpoints' training pairs.

    python bench/served_quality.py [--seeds 0 1 2] [--out reports/served] [--tables-only] [--joint] [--compare]

``--joint`` trains with ``train --joint`` (results in ``served-joint-seed*.json``); ``--compare`` prints
per-edge against joint, from both sets of results in ``--out``, with each run's training time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from latent_bridge.cli import main as cli
from latent_bridge.service.bundle.loader import Bundle, load_bundle
from latent_bridge.service.bundle.manifest import RouteStrategySpec
from latent_bridge.service.engine.retrieval import retrieve
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training.bundling.pivots import VARIANTS, rank_key
from latent_bridge.training.datasets.reader import ModalityData, load_dataset
from latent_bridge.training.datasets.splits import holdout_split
from latent_bridge.training.evaluate import retrieval_summary
from latent_bridge.training.translators import fit_linear
from quality import HOLDOUT, Baselines
from threadpoolctl import threadpool_limits

DEMO = Path("data/demo")
EDGES = "image:text,audio:text"
K = 10


def split_dataset(source: Path, samples: frozenset[str], out: Path) -> Path:
    """The dataset's rows whose sample is in ``samples``, one file per modality, columns as they were."""
    out.mkdir(parents=True)
    for file in sorted(source.glob("*.parquet")):
        table = pq.read_table(file)
        keep = pc.is_in(table.column("sample"), value_set=pa.array(sorted(samples)))
        pq.write_table(table.filter(keep), out / file.name)
    return out


def served_variant(route: RouteStrategySpec) -> str:
    return route.strategy + ("+csls" if route.hubness == "csls" else "")


def cv_choice(route: RouteStrategySpec) -> str:
    """The variant the cross-validated scores recorded in the manifest pick (training's own rule)."""
    return max((v for v in VARIANTS if v in route.scores), key=lambda v: rank_key(v, route.scores[v]))


def served_scores(bundle: Bundle, src: str, dst: str, queries: ModalityData, gallery: ModalityData
                  ) -> dict[str, object]:
    """R@1 and R@10 of the engine's answers for every held-out ``src`` row with a partner in the gallery."""
    route = bundle.graph.best(src, dst)
    _, answers = retrieve(bundle, route, np.ascontiguousarray(queries.embeddings, np.float32), K)
    found = [[hit.sample for hit in hits] for hits in answers]
    has_partner = np.isin(queries.samples, gallery.samples)
    top1 = [bool(f) and f[0] == s for f, s in zip(found, queries.samples, strict=True)]
    top10 = [s in f for f, s in zip(found, queries.samples, strict=True)]
    return {"r1": float(np.mean(np.array(top1)[has_partner])), "r10": float(np.mean(np.array(top10)[has_partner])),
            "queries": int(has_partner.sum()), "path": list(route.path)}


def ridge_scores(train: dict[str, ModalityData], usable: frozenset[str], test: dict[str, ModalityData],
                 src: str, dst: str, seed: int) -> dict[str, float]:
    """A ridge map fitted on the training pairs src → dst, searched by centred cosine in the same gallery."""
    base = Baselines(train[src], train[dst], usable, frozenset(), seed)
    xs, ys = base._rows(base.train)
    m = fit_linear("ridge", xs, ys, base.ridge_alpha())
    q, g = test[src], test[dst]
    pred = base.sa.standardise(q.embeddings) @ m * base.sb.scale + base.sb.mean
    keep = np.isin(q.samples, g.samples)
    return retrieval_summary(ranks(pred[keep], q.samples[keep], g.embeddings, g.samples))


def run_seed(seed: int, work: Path, joint: bool = False) -> dict[str, object]:
    data = load_dataset(DEMO)
    usable, test = holdout_split(set().union(*(set(d.samples.tolist()) for d in data.values())), seed, HOLDOUT)
    train_dir = split_dataset(DEMO, usable, work / f"train-{seed}")
    held_dir = split_dataset(DEMO, test, work / f"held-out-{seed}")
    out = work / f"bundle-{seed}"
    started = time.perf_counter()
    cli(["train", "--data", str(train_dir), "--out", str(out), "--gallery-data", str(held_dir), "--edges", EDGES,
         "--seed", str(seed), "--quiet", *(["--joint"] if joint else [])])
    seconds = time.perf_counter() - started
    bundle = load_bundle(out)
    train, held = load_dataset(train_dir), load_dataset(held_dir)
    tuned = sorted(e.key for e in bundle.manifest.edges if e.fit and e.fit.hyperparameters.get("joint") == 1)
    result: dict[str, object] = {"seed": seed, "pairs": {}, "train_seconds": round(seconds, 1), "joint_edges": tuned}
    with threadpool_limits(1):
        for src in sorted(held):
            for dst in sorted(held):
                if src == dst:
                    continue
                route = bundle.strategies.get(tuple(bundle.graph.best(src, dst).path))
                served = served_scores(bundle, src, dst, held[src], held[dst])
                ridge = ridge_scores(train, usable, held, src, dst, seed)
                result["pairs"][f"{src}__{dst}"] = {  # type: ignore[index]
                    "served": served, "ridge": ridge,
                    "served_variant": served_variant(route) if route else "chain",
                    "cv_choice": cv_choice(route) if route else "chain",
                }
    return result


def table(runs: list[dict[str, object]]) -> str:
    pairs = runs[0]["pairs"]
    assert isinstance(pairs, dict)
    lines = ["| query → gallery | path | served (choice = cross-validated?) | served R@1 | served R@10 | "
             "ridge R@1 | ridge R@10 | served / ridge R@1 |", "|---|---|---|---|---|---|---|---|"]

    def ms(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"

    for key in pairs:
        rows = [r["pairs"][key] for r in runs]  # type: ignore[index]
        served_r1 = [x["served"]["r1"] for x in rows]
        ridge_r1 = [x["ridge"]["r1"] for x in rows]
        same = all(x["served_variant"] == x["cv_choice"] for x in rows)
        lines.append(f"| {key.replace('__', ' → ')} | {' → '.join(rows[0]['served']['path'])} | "
                     f"{', '.join(x['served_variant'] for x in rows)} ({'yes' if same else '**no**'}) | "
                     f"{ms(served_r1)} | {ms([x['served']['r10'] for x in rows])} | {ms(ridge_r1)} | "
                     f"{ms([x['ridge']['r10'] for x in rows])} | "
                     f"{statistics.mean(served_r1) / max(statistics.mean(ridge_r1), 1e-9):.2f}× |")
    return "\n".join(lines) + "\n"


def compare(per_edge: list[dict[str, object]], joint: list[dict[str, object]]) -> str:
    """Per-edge against ``--joint``, served R@1 and R@10 (mean ± std over seeds), with the direct ridge map."""
    def ms(values: list[float]) -> str:
        return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"

    lines = ["| query → gallery | path | per-edge R@1 | joint R@1 | per-edge R@10 | joint R@10 | ridge R@1 | "
             "joint − per-edge R@1 | joint / ridge R@1 |", "|---|---|---|---|---|---|---|---|---|"]
    pairs = per_edge[0]["pairs"]
    assert isinstance(pairs, dict)
    for key in pairs:
        p = [r["pairs"][key] for r in per_edge]  # type: ignore[index]
        j = [r["pairs"][key] for r in joint]  # type: ignore[index]
        p1, j1 = [x["served"]["r1"] for x in p], [x["served"]["r1"] for x in j]
        ridge = [x["ridge"]["r1"] for x in p]
        lines.append(f"| {key.replace('__', ' → ')} | {' → '.join(p[0]['served']['path'])} | {ms(p1)} | {ms(j1)} | "
                     f"{ms([x['served']['r10'] for x in p])} | {ms([x['served']['r10'] for x in j])} | {ms(ridge)} | "
                     f"{ms([b - a for a, b in zip(p1, j1, strict=True)])} | "
                     f"{statistics.mean(j1) / max(statistics.mean(ridge), 1e-9):.2f}× |")
    times = (f"training time (s, with --gallery-data): per-edge "
             f"{ms([float(r.get('train_seconds', 0.0)) for r in per_edge])}, joint "  # type: ignore[arg-type]
             f"{ms([float(r.get('train_seconds', 0.0)) for r in joint])}")  # type: ignore[arg-type]
    kept = "; ".join(f"seed {r['seed']}: {', '.join(r.get('joint_edges') or []) or 'none'}"  # type: ignore[arg-type]
                     for r in joint)
    return "\n".join(lines) + f"\n\n{times}\n\njointly tuned directions kept: {kept}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("reports/served"))
    parser.add_argument("--tables-only", action="store_true", help="only the table, from the results in --out")
    parser.add_argument("--joint", action="store_true", help="train with --joint (results: served-joint-seed*.json)")
    parser.add_argument("--compare", action="store_true", help="only the per-edge vs --joint table, from --out")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    name = "served-joint" if args.joint else "served"
    if args.compare:
        load = lambda n: [json.loads((args.out / f"{n}-seed{s}.json").read_text()) for s in args.seeds]  # noqa: E731
        text = compare(load("served"), load("served-joint"))
        (args.out / "served-joint-compare.md").write_text(text)
        print(text)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for seed in [] if args.tables_only else args.seeds:
            run = run_seed(seed, Path(tmp), args.joint)
            (args.out / f"{name}-seed{seed}.json").write_text(json.dumps(run, indent=2) + "\n")
            print(f"seed {seed} done", flush=True)
    runs = [json.loads((args.out / f"{name}-seed{s}.json").read_text()) for s in args.seeds]
    text = table(runs)
    (args.out / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
