"""The demo results table, measured in one run on the committed real-embedding dataset.

Trains (1) the demo bundle: image↔text and audio↔text only, and (2) a comparison bundle that also has
a direct audio↔image edge, on the same split. Prints per edge the chosen kind against the baselines
(identity, centring, Procrustes, ridge, CCA), and audio→image routed through text against the direct edge.

    python bench/demo_results.py [--data data/demo] [--out reports/demo] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from latent_bridge.training.config import TrainConfig
from latent_bridge.training.report import evaluate_bundle
from latent_bridge.training.train import train

BASELINES = ("identity", "centroid", "procrustes", "ridge", "cca", "mlp")


def run_seed(data: Path, work: Path, seed: int) -> dict[str, object]:
    started = time.perf_counter()
    demo = train(TrainConfig(data=data, out=work / f"demo-{seed}", seed=seed,
                             edges=[("image", "text"), ("audio", "text")], progress=False))
    demo_seconds = time.perf_counter() - started
    direct = train(TrainConfig(data=data, out=work / f"direct-{seed}", seed=seed,
                               edges=[("image", "text"), ("audio", "text"), ("audio", "image")], progress=False))
    routed = evaluate_bundle(work / f"demo-{seed}", data, work / f"report-demo-{seed}")
    direct_report = evaluate_bundle(work / f"direct-{seed}", data, work / f"report-direct-{seed}")
    routes = {" ".join(r["route"]): r for r in routed["routes"]}  # type: ignore[attr-defined, index]
    direct_routes = {" ".join(r["route"]): r for r in direct_report["routes"]}  # type: ignore[attr-defined, index]
    edges = {
        e.key: {"kind": e.kind, "chosen": e.metrics.model_dump(),
                "candidates": {k: m.model_dump() for k, m in e.candidates.items()}}
        for e in demo.edges
    }
    direct_edges = {e.key: e for e in direct.edges}
    return {
        "seed": seed,
        "train_seconds": round(demo_seconds, 1),
        "edges": edges,
        "routed": {k: routes[k] for k in ("audio text image", "image text audio")},
        "direct": {k: direct_routes[k] for k in ("audio image", "image audio")},
        "direct_kind": {k: direct_edges[k].kind for k in ("audio__image", "image__audio")},
    }


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(runs: list[dict[str, object]]) -> str:
    first = runs[0]["edges"]
    assert isinstance(first, dict)
    lines = [
        f"Test split R@1 (mean ± std over seeds {[r['seed'] for r in runs]}); R@10 in brackets. "
        "Ratio = chosen R@1 / ridge R@1.",
        "",
        "| edge | chosen kinds | chosen | " + " | ".join(BASELINES) + " | ratio vs ridge |",
        "|---|---|---|" + "---|" * len(BASELINES) + "---|",
    ]
    for key in first:
        chosen = [r["edges"][key]["chosen"] for r in runs]  # type: ignore[index]
        kinds = sorted({r["edges"][key]["kind"] for r in runs})  # type: ignore[index]
        cells = []
        for kind in BASELINES:
            cands = [r["edges"][key]["candidates"].get(kind) for r in runs]  # type: ignore[index]
            cells.append("n/a" if None in cands else
                         f"{mean_std([c['r1'] for c in cands])} ({statistics.mean(c['r10'] for c in cands):.2f})")
        ridge = statistics.mean(r["edges"][key]["candidates"]["ridge"]["r1"] for r in runs)  # type: ignore[index]
        r1 = statistics.mean(c["r1"] for c in chosen)
        lines.append(f"| {key.replace('__', ' → ')} | {', '.join(kinds)} | "
                     f"{mean_std([c['r1'] for c in chosen])} ({statistics.mean(c['r10'] for c in chosen):.2f}) | "
                     + " | ".join(cells) + f" | {r1 / ridge:.2f}× |")
    lines += ["", "| query | path | R@1 | R@10 | MRR |", "|---|---|---|---|---|"]
    for routed_key, direct_key in (("audio text image", "audio image"), ("image text audio", "image audio")):
        for label, source, key in (("routed", "routed", routed_key), ("direct (comparison only)", "direct",
                                                                        direct_key)):
            rows = [r[source][key] for r in runs]  # type: ignore[index]
            lines.append(f"| {key.split()[0]} → {key.split()[-1]} {label} | {' → '.join(key.split())} | "
                         f"{mean_std([x['r1'] for x in rows])} | {mean_std([x['r10'] for x in rows])} | "
                         f"{mean_std([x['mrr'] for x in rows])} |")
    seconds = [r["train_seconds"] for r in runs]
    lines += ["", f"Training the demo bundle took {mean_std(seconds)} s per run (2 CPU cores)."]  # type: ignore[arg-type]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/demo"))
    parser.add_argument("--out", type=Path, default=Path("reports/demo"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_seed(args.data, Path(tmp), s) for s in args.seeds]
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("recall_at_k.png", "gap_audio__text.png", "gap_text__image.png"):
            src = Path(tmp) / f"report-demo-{args.seeds[0]}" / name
            (args.out / name).write_bytes(src.read_bytes())
    (args.out / "results.json").write_text(json.dumps(runs, indent=2) + "\n")
    text = table(runs)
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
