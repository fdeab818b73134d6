"""Quality benchmark: trained bundles against the maps a user would fit on the same pairs.

For each dataset and seed, a fifth of the samples is held out by sample (``--holdout 0.2`` with that
seed, so training never sees them); the bundle is trained with defaults on the rest. On the same
training pairs we fit what a user would fit themselves: identity, centring, per-dimension standardisation
(z-scoring), orthogonal Procrustes, ridge (alpha by 5-fold cross-validation over training samples, then refit
on all of them), CCA and SVCCA (SVD to 99% of the variance, then CCA).
Everything is scored on the hold-out the way the server ranks (cosine after the gallery's centring);
ridge is also scored under raw cosine and keeps the better of the two. The bundle is run through the
server's own code, each edge and route searched the way the bundle chose on cross-validation (chained, or
in the query's or a pivot's space); the translator alone is reported beside it. Routed pairs (audio →
text → image) are compared with a direct ridge map fitted on the same training samples' audio–image
pairs, and every route the server would choose is checked against the route with the best held-out R@1.

    python bench/quality.py [--datasets demo synthetic] [--seeds 0 1 2] [--out reports/quality]

``--kinds dmvae mlp ...`` also fits each named kind alone (``train --kind K``: its own cross-validation over the
training samples, then the refit on all of them) on the same training pairs, scores its translators on the
hold-out as the server ranks (chained, cosine after the gallery's centring) and times it per pair;
``--kinds-only`` does just that and the baselines, without training bundles, into
``<dataset>-seed<seed>-kinds.json``, and prints a kind × edge table (R@1 and R@10, mean ± std, seconds).

``--baselines-only`` refits just the baselines into per-seed results already in ``--out`` (they depend only
on the data and the seed's hold-out), so a new baseline joins old runs without retraining their bundles.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from latent_bridge.service.bundle.loader import Bundle, load_bundle
from latent_bridge.service.engine.graph import ModalityGraph
from latent_bridge.service.engine.scoring import ranks
from latent_bridge.training.bundling.pivots import VARIANTS, bank_rows, score_strategies
from latent_bridge.training.candidates import Pair
from latent_bridge.training.config import KIND_CHOICES, TrainConfig
from latent_bridge.training.datasets.builders.synthetic import make_dataset
from latent_bridge.training.datasets.reader import ModalityData, load_dataset, shared_samples
from latent_bridge.training.datasets.splits import Split, cv_folds, holdout_split, paired_rows
from latent_bridge.training.evaluate import retrieval_summary
from latent_bridge.training.fitting import refit
from latent_bridge.training.grow import add_edge
from latent_bridge.training.report.run_report import evaluate_bundle, route_runner, score_route
from latent_bridge.training.selection import select
from latent_bridge.training.train import train
from latent_bridge.training.translators import SpaceStats, fit_linear, translate
from threadpoolctl import threadpool_limits
from torch import nn

HOLDOUT = 0.2
BASELINES = ("identity", "centring", "standardise", "procrustes", "ridge", "cca", "svcca")
TRAINED = tuple(k for k in KIND_CHOICES if k not in ("auto", "unpaired"))  # what --kinds can fit alone
RIDGE_ALPHAS = (0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)
DATASETS: dict[str, dict[str, object]] = {
    "demo": {"edges": [("image", "text"), ("audio", "text")], "direct": [("audio", "image")]},
    "synthetic-nonlinear": {"relation": "nonlinear", "edges": [("a", "b")], "direct": []},
    "synthetic-linear": {"relation": "linear", "edges": [("a", "b")], "direct": []},
    "synthetic-rotation": {"relation": "rotation", "edges": [("a", "b")], "direct": []},
    # the benchmark suite (data/suite/, built from Debian packages by training/datasets/<name>.py)
    "emoji": {"suite": True, "edges": [("image", "text_en"), ("text_en", "text_de")], "direct": [("image", "text_de")]},
    "openclipart": {"suite": True, "edges": [("image", "text")], "direct": []},
    "migration": {"suite": True, "edges": [("text_minilm", "text_e5")], "direct": []},
}
SUITE = Path("data/suite")


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def raw_ranks(q: np.ndarray, qs: np.ndarray, g: np.ndarray, gs: np.ndarray) -> np.ndarray:
    """Ranks under plain cosine (no centring); ties count against, as in ``ranks``."""
    scores = unit(q) @ unit(g).T
    relevant = qs[:, None] == gs[None, :]
    best = np.where(relevant, scores, -np.inf).max(axis=1)
    return np.asarray(1 + ((scores >= best[:, None]) & ~relevant).sum(axis=1))


class Baselines:
    """The user's own maps for one direction a → b, fitted on ``train`` samples, scored on ``test``."""

    def __init__(self, a: ModalityData, b: ModalityData, train: frozenset[str], test: frozenset[str], seed: int):
        self.a, self.b, self.train, self.seed = a, b, train & shared_samples(a, b), seed
        self.test = test & shared_samples(a, b)
        self.sa = SpaceStats.fit(a.embeddings[a.rows_of(set(self.train))])
        self.sb = SpaceStats.fit(b.embeddings[b.rows_of(set(self.train))])

    def _rows(self, samples: frozenset[str]) -> tuple[np.ndarray, np.ndarray]:
        ia, ib = paired_rows(self.a, self.b, samples)
        return self.sa.standardise(self.a.embeddings[ia]), self.sb.standardise(self.b.embeddings[ib])

    def _score(self, m: np.ndarray | None, raw_too: bool = False, samples: frozenset[str] | None = None,
               sa: SpaceStats | None = None, sb: SpaceStats | None = None) -> dict[str, float]:
        samples = self.test if samples is None else samples
        sa, sb = sa or self.sa, sb or self.sb
        qa, gb = self.a.rows_of(set(samples)), self.b.rows_of(set(samples))
        x = self.a.embeddings[qa]
        pred = x if m is None else sa.standardise(x) @ m * sb.scale + sb.mean
        args = (self.a.samples[qa], self.b.embeddings[gb], self.b.samples[gb])
        best = retrieval_summary(ranks(pred, *args))
        if raw_too:
            raw = retrieval_summary(raw_ranks(pred, *args))
            best = max(best, raw, key=lambda s: (s["r1"], s["mrr"]))
        return best

    def score_module(self, module: nn.Module) -> dict[str, float]:
        """A translator a → b on the hold-out, as the server ranks (cosine after the gallery's centring)."""
        qa, gb = self.a.rows_of(set(self.test)), self.b.rows_of(set(self.test))
        pred = translate(module, self.a.embeddings[qa])
        return retrieval_summary(ranks(pred, self.a.samples[qa], self.b.embeddings[gb], self.b.samples[gb]))

    def ridge_alpha(self) -> float:
        """Alpha by 5-fold cross-validation over the training samples (R@1, centred cosine)."""
        totals = dict.fromkeys(RIDGE_ALPHAS, 0.0)
        for fold in cv_folds(self.train, self.seed + 101, 5):
            inner = Baselines(self.a, self.b, fold.train, fold.val, self.seed)
            xs, ys = inner._rows(inner.train)
            for alpha in RIDGE_ALPHAS:
                totals[alpha] += inner._score(fit_linear("ridge", xs, ys, alpha))["r1"]
        return max(totals, key=lambda k: totals[k])

    def all(self) -> dict[str, dict[str, float]]:
        xs, ys = self._rows(self.train)
        found = {}
        if self.a.dim == self.b.dim:
            found["identity"] = self._score(None)
            found["centring"] = self._score(np.eye(self.a.dim))
            found["standardise"] = self._score(fit_linear("standardise", xs, ys))
        found["procrustes"] = self._score(fit_linear("procrustes", xs, ys))
        found["ridge"] = self._score(fit_linear("ridge", xs, ys, self.ridge_alpha()), raw_too=True)
        found["cca"] = self._score(fit_linear("cca", xs, ys))
        found["svcca"] = self._score(fit_linear("svcca", xs, ys))
        return found


def dataset_dir(name: str, work: Path) -> Path:
    if name == "demo":
        return Path("data/demo")
    spec = DATASETS[name]
    if spec.get("suite"):
        if not (SUITE / name).is_dir():
            raise SystemExit(f"{SUITE / name} missing: python -m latent_bridge.training.datasets.{name}")
        return SUITE / name
    out = work / name
    if not out.exists():
        make_dataset(out, n=1500, dims={"a": 32, "b": 32}, relation=str(spec["relation"]), noise=0.6, seed=0)
    return out


def run_seed(name: str, data_dir: Path, work: Path, seed: int, out: Path, extras: bool = True) -> dict[str, object]:
    spec = DATASETS[name]
    edges = list(spec["edges"])  # type: ignore[call-overload]
    load = os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    manifest = train(TrainConfig(data=data_dir, out=work / f"{name}-{seed}", seed=seed, edges=edges,
                                 holdout=HOLDOUT, progress=False))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    data = load_dataset(data_dir)
    usable, test = holdout_split(set().union(*(set(d.samples.tolist()) for d in data.values())), seed, HOLDOUT)
    served = load_bundle(work / f"{name}-{seed}")
    split = Split(train=usable, test=test)
    result: dict[str, object] = {"seed": seed, "train_seconds": round(seconds, 1), "train_cpu_seconds": round(cpu, 1),
                                 "load_before": load,
                                 "edges": {}, "routes": {}}
    with threadpool_limits(1):
        for e in manifest.edges:
            alone = _pick(score_route([e.source, e.target], data, split, served))  # the translator, chained
            how = strategies(served, [e.source, e.target], data, usable, test)
            bundle = how["strategies"][how["chosen"]] if how else alone  # type: ignore[index]  # as served
            base = Baselines(data[e.source], data[e.target], usable, test, seed).all()
            cv = {k: {"r1": m.r1, "r10": m.r10} for k, m in e.candidates.items()}  # every kind, cross-validated
            result["edges"][e.key] = {"kind": e.kind, "bundle": bundle, "translator": alone,  # type: ignore[index]
                                      "baselines": base, "candidates": cv, **how}
        for a, c in spec["direct"]:  # type: ignore[attr-defined]
            for src, dst in ((a, c), (c, a)):
                route = [src, *ModalityGraph(served.manifest).best(src, dst).path[1:-1], dst]
                routed = score_route(route, data, split, served)
                direct = Baselines(data[src], data[dst], usable, test, seed).all()
                result["routes"][f"{src}__{dst}"] = {"path": route, "routed": _pick(routed),  # type: ignore[index]
                                                     "direct_ridge": direct["ridge"], "direct": direct,
                                                     **strategies(served, route, data, usable, test)}
    suite = bool(spec.get("suite"))  # the suite skips these: growing direct edges doubles the time
    if seed == 0 and extras and not suite:  # the eval report's plots (recall@k, modality gap) for the README
        evaluate_bundle(work / f"{name}-{seed}", data_dir, out / f"report-{name}")
    if spec["direct"] and extras and not suite:
        result["route_choice"] = route_choice(work / f"{name}-{seed}", data_dir, data, split, spec, seed)
    return result


def fit_kinds(data: dict[str, ModalityData], edges: list[tuple[str, str]], kinds: list[str], usable: frozenset[str],
              test: frozenset[str], seed: int) -> dict[str, dict[str, dict[str, float]]]:
    """Each kind fitted alone on every pair's training samples as ``train --kind K`` fits it (cross-validation
    over the same folds, then the refit on all of them), both directions scored on the hold-out; per directed
    edge key, kind → R@1, R@5, R@10, MRR and the pair's wall seconds (selection + refit, 1 thread)."""
    found: dict[str, dict[str, dict[str, float]]] = {}
    for a, b in edges:
        for kind in kinds:
            cfg = TrainConfig(data=Path("."), out=Path("."), kind=kind, seed=seed, holdout=HOLDOUT, progress=False)
            pair = Pair(data[a], data[b], cfg.max_pairs_per_sample)
            started = time.perf_counter()
            with threadpool_limits(1):
                selection = select(pair, cv_folds(usable, seed, cfg.folds, cfg.val_fraction), cfg)
                final = refit(pair, usable, selection, cfg)
            seconds = round(time.perf_counter() - started, 1)
            for src, dst, module in ((a, b, final.forward), (b, a, final.backward)):
                scored = Baselines(data[src], data[dst], usable, test, seed).score_module(module)
                found.setdefault(f"{src}__{dst}", {})[kind] = _pick(scored) | {"seconds": seconds}  # type: ignore[arg-type]
    return found


def run_kinds(name: str, data_dir: Path, seed: int, kinds: list[str]) -> dict[str, object]:
    """Baselines and ``kinds`` on one seed's split, without a bundle (``--kinds-only``)."""
    data = load_dataset(data_dir)
    usable, test = holdout_split(set().union(*(set(d.samples.tolist()) for d in data.values())), seed, HOLDOUT)
    edges = list(DATASETS[name]["edges"])  # type: ignore[call-overload]
    result: dict[str, object] = {"seed": seed, "load_before": os.getloadavg()[0], "edges": {}}
    fitted = fit_kinds(data, edges, kinds, frozenset(usable), frozenset(test), seed)
    with threadpool_limits(1):
        for key, by_kind in fitted.items():
            src, dst = key.split("__")
            result["edges"][key] = {"baselines": Baselines(data[src], data[dst], usable, test, seed).all(),  # type: ignore[index]
                                    "kinds": by_kind}
    return result


def kinds_table(name: str, runs: list[dict[str, object]], kinds: list[str]) -> str:
    """Kind × edge: held-out R@1 / R@10 (mean ± std over seeds) of each fitted kind beside the baselines."""
    edges = runs[0]["edges"]
    assert isinstance(edges, dict)
    shown = [*kinds, *(k for k in BASELINES if k not in kinds)]
    lines = [f"### {name}: kinds fitted alone", "", f"Held-out R@1 / R@10, mean ± std over seeds "
             f"{[r['seed'] for r in runs]}, every kind fitted on the same training pairs and scored as served "
             "(chained, cosine after the gallery's centring). Seconds: selection + refit of the pair, wall, "
             "1 thread.", "", "| edge | " + " | ".join(shown) + " | " + " | ".join(f"{k} s" for k in kinds) + " |",
             "|---|" + "---|" * (len(shown) + len(kinds))]
    for key in edges:
        rows = [r["edges"][key] for r in runs]  # type: ignore[index]
        cells = []
        for kind in shown:
            vals = [row.get("kinds", {}).get(kind) or row["baselines"].get(kind) for row in rows]
            cells.append("n/a" if None in vals else r1_r10(vals))
        secs = [ms([row["kinds"][k]["seconds"] for row in rows]) for k in kinds]
        lines.append(f"| {key.replace('__', ' → ')} | " + " | ".join(cells) + " | " + " | ".join(secs) + " |")
    loads = [float(r["load_before"]) for r in runs]  # type: ignore[arg-type]
    lines += ["", f"1-minute load average {min(loads):.1f}–{max(loads):.1f} before each seed."]
    return "\n".join(lines) + "\n"


def refresh_baselines(data_dir: Path, path: Path) -> None:
    """Refit every baseline of one per-seed result on its seed's split, keeping the bundle's numbers.

    The baselines the result already holds must come out the same, or the data or the split changed since
    the run and only a full run is comparable: then this result is left as it was.
    """
    run = json.loads(path.read_text())
    seed = int(run["seed"])
    before = {k for e in run["edges"].values() for k in e["baselines"]}
    data = load_dataset(data_dir)
    usable, test = holdout_split(set().union(*(set(d.samples.tolist()) for d in data.values())), seed, HOLDOUT)
    with threadpool_limits(1):
        for key, edge in run["edges"].items():
            src, dst = key.split("__")
            edge["baselines"] = _same_as_before(edge["baselines"], Baselines(data[src], data[dst], usable, test,
                                                                             seed).all(), f"{path.name} {key}")
        for key, route in run["routes"].items():
            direct = Baselines(data[route["path"][0]], data[route["path"][-1]], usable, test, seed).all()
            route["direct"] = _same_as_before(route["direct"], direct, f"{path.name} {key}")
            route["direct_ridge"] = direct["ridge"]
    added = {k for e in run["edges"].values() for k in e["baselines"]} - before
    run["baselines_added"] = sorted(set(run.get("baselines_added", [])) | added)
    path.write_text(json.dumps(run, indent=2) + "\n")


def _same_as_before(old: dict[str, dict[str, float]], new: dict[str, dict[str, float]],
                    where: str) -> dict[str, dict[str, float]]:
    for kind, scores in old.items():
        if any(abs(scores[m] - new[kind][m]) > 1e-9 for m in scores):
            raise SystemExit(f"{where}: {kind} refits to {new[kind]}, the run has {scores}; rerun it in full")
    return new


def strategies(served: Bundle, route: list[str], data: dict[str, ModalityData], usable: frozenset[str],
               test: frozenset[str]) -> dict[str, object]:
    """Chain, pivot and fused retrieval of a route on the hold-out (with and without CSLS, its bank the
    training rows), with the served translators, and the variant the bundle chose on cross-validation
    (on a direct edge the pivot is the query's own modality)."""
    if (route[-1], route[-2]) not in served.translators:
        return {}
    scored = score_strategies(route, data[route[0]], data[route[-1]], test,
                              lambda path, x: route_runner(served, list(path))(x), bank_rows(data[route[0]], usable))
    chosen = served.strategies.get(tuple(route))
    variant = "chain" if chosen is None else chosen.strategy + ("+csls" if chosen.hubness == "csls" else "")
    return {"strategies": {k: _pick(v) for k, v in scored.items()},  # type: ignore[arg-type]
            "chosen": variant, "cv": {k: v.model_dump() for k, v in chosen.scores.items()} if chosen else {}}


def route_choice(parent: Path, data_dir: Path, data: dict[str, ModalityData], split: Split,
                 spec: dict[str, object], seed: int) -> list[dict[str, object]]:
    """With the direct edges grown in too, is the route each criterion picks the best by held-out R@1?"""
    full = parent.with_name(parent.name + "-direct")
    for pair in spec["direct"]:  # type: ignore[attr-defined]
        add_edge(parent, data_dir, pair, TrainConfig(data=data_dir, out=full, seed=seed, progress=False))
    served = load_bundle(full)
    names = [m.name for m in served.manifest.modalities]
    found = []
    for src in names:
        for dst in names:
            if src == dst:
                continue
            scored = {tuple(r.path): score_route(list(r.path), data, split, served)["r1"]
                      for r in served.graph.ranked(src, dst, 5) if len(r.path) <= 3}
            best = max(scored, key=lambda p: scored[p])
            picks = {c: ModalityGraph(served.manifest, c).best(src, dst).path for c in ("mrr", "r1", "cycle_cosine")}
            found.append({"from": src, "to": dst, "r1": {" → ".join(p): v for p, v in scored.items()},
                          "best": " → ".join(best),
                          "picked": {c: " → ".join(p) for c, p in picks.items()},
                          "regret": {c: float(scored[best]) - float(scored[tuple(p)]) for c, p in picks.items()}})
    return found


def _pick(scored: dict[str, object]) -> dict[str, float]:
    return {k: float(scored[k]) for k in ("r1", "r5", "r10", "mrr")}  # type: ignore[arg-type]


def ms(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(name: str, runs: list[dict[str, object]]) -> str:
    edges = runs[0]["edges"]
    assert isinstance(edges, dict)
    lines = [f"### {name}", "", f"Held-out R@1 (mean ± std over seeds {[r['seed'] for r in runs]}); R@10 in brackets. "
             "`bundle` is retrieval as the server serves it (the edge's cross-validated search, choices in "
             "brackets); `translator` is the shipped translator alone, its query chained into the target space.",
             "", "| edge | bundle kinds | bundle | translator | " + " | ".join(BASELINES) + " | bundle / ridge |",
             "|---|---|---|---|" + "---|" * len(BASELINES) + "---|"]
    ratios = []
    for key in edges:
        rows = [r["edges"][key] for r in runs]  # type: ignore[index]
        cells = []
        for kind in BASELINES:
            vals = [row["baselines"].get(kind) for row in rows]
            cells.append("n/a" if None in vals else
                         f"{ms([v['r1'] for v in vals])} ({statistics.mean(v['r10'] for v in vals):.2f})")
        ratio = statistics.mean(row["bundle"]["r1"] for row in rows) / max(
            1e-9, statistics.mean(row["baselines"]["ridge"]["r1"] for row in rows))
        ratios.append(ratio)
        kinds = ", ".join(sorted({row["kind"] for row in rows}))
        alone = [row.get("translator", row["bundle"]) for row in rows]
        lines.append(f"| {key.replace('__', ' → ')} | {kinds} | {ms([row['bundle']['r1'] for row in rows])} "
                     f"({statistics.mean(row['bundle']['r10'] for row in rows):.2f}; {searches(rows)}) | "
                     f"{ms([a['r1'] for a in alone])} ({statistics.mean(a['r10'] for a in alone):.2f}) | "
                     + " | ".join(cells) + f" | {ratio:.2f}× |")
    lines += ["", f"Mean over edges of bundle / ridge R@1: {statistics.mean(ratios):.2f}×."]
    lines += added_note(runs)
    routes = runs[0]["routes"]
    assert isinstance(routes, dict)
    if routes:
        lines += ["", "| query | bundle route | routed R@1 | routed R@10 | direct ridge R@1 | direct ridge R@10 "
                  "| ratio |", "|---|---|---|---|---|---|---|"]
        for key in routes:
            rows = [r["routes"][key] for r in runs]  # type: ignore[index]
            ratio = statistics.mean(x["routed"]["r1"] for x in rows) / statistics.mean(
                x["direct_ridge"]["r1"] for x in rows)
            lines.append(f"| {key.replace('__', ' → ')} | {' → '.join(rows[0]['path'])} | "
                         f"{ms([x['routed']['r1'] for x in rows])} | {ms([x['routed']['r10'] for x in rows])} | "
                         f"{ms([x['direct_ridge']['r1'] for x in rows])} | "
                         f"{ms([x['direct_ridge']['r10'] for x in rows])} | {ratio:.2f}× |")
    if routes and "strategies" in next(iter(routes.values())):
        lines += ["", "Routed retrieval by strategy (held-out R@1, mean ± std; R@10 in brackets): the query chained "
                  "into the target space, searched in the pivot's space, or both fused, each pivot-space search "
                  "also with CSLS hubness reduction; `served` is the variant the bundle chose on cross-validated "
                  "R@1 (choices over seeds in brackets).", "",
                  "| query | " + " | ".join(VARIANTS) + " | served | direct ridge | served / ridge |",
                  "|---|" + "---|" * len(VARIANTS) + "---|---|---|"]
        for key in routes:
            rows = [r["routes"][key] for r in runs]  # type: ignore[index]
            cells = [f"{ms([x['strategies'][s]['r1'] for x in rows])} "
                     f"({statistics.mean(x['strategies'][s]['r10'] for x in rows):.2f})"
                     for s in VARIANTS]
            served = [x["strategies"][x["chosen"]]["r1"] for x in rows]
            direct = [x["direct_ridge"]["r1"] for x in rows]
            picks = ", ".join(x["chosen"] for x in rows)
            lines.append(f"| {key.replace('__', ' → ')} | " + " | ".join(cells) + f" | {ms(served)} ({picks}) | "
                         f"{ms(direct)} | {statistics.mean(served) / statistics.mean(direct):.2f}× |")
    if "route_choice" in runs[0]:
        lines += ["", "Route choice with a direct audio↔image edge grown in: held-out R@1 lost by the route each "
                  "criterion picks, against the best route, summed over the 6 directed pairs (0 = always best).", "",
                  "| criterion | mean regret (R@1) | picks the best route |", "|---|---|---|"]
        for c in ("mrr", "r1", "cycle_cosine"):
            regrets = [sum(x["regret"][c] for x in r["route_choice"]) for r in runs]  # type: ignore[index]
            hits = sum(x["picked"][c] == x["best"] for r in runs for x in r["route_choice"])  # type: ignore[index]
            total = sum(len(r["route_choice"]) for r in runs)  # type: ignore[arg-type]
            lines.append(f"| {c} | {ms(regrets)} | {hits}/{total} |")
    secs = [float(r["train_seconds"]) for r in runs]  # type: ignore[arg-type]
    cpus = [float(r.get("train_cpu_seconds", float("nan"))) for r in runs]  # type: ignore[arg-type]
    loads = [float(r["load_before"]) for r in runs]  # type: ignore[arg-type]
    lines += ["", f"Training took {ms(secs)} s of wall time per bundle, {ms(cpus)} s of CPU time (1 torch "
              f"thread; 1-minute load average {min(loads):.1f}–{max(loads):.1f} on 2 shared cores)."]
    return "\n".join(lines) + "\n"


def added_note(runs: list[dict[str, object]]) -> list[str]:
    """Say which baselines were fitted into these runs afterwards: their bundles never had them as candidates."""
    added = sorted({k for r in runs for k in r.get("baselines_added", [])})  # type: ignore[attr-defined]
    return ["", f"Baselines {', '.join(added)} were fitted into these runs afterwards (`--baselines-only`, same "
            "split and training pairs); the bundles were trained before `auto` considered them."] if added else []


def searches(rows: list[dict[str, object]]) -> str:
    """The search each seed's bundle chose for an edge (chain where it recorded none)."""
    return ", ".join(str(row.get("chosen", "chain")) for row in rows)


def r1_r10(values: list[dict[str, float]]) -> str:
    return f"{ms([v['r1'] for v in values])} / {ms([v['r10'] for v in values])}"


def best_baseline(rows: list[dict[str, dict[str, float]]]) -> str:
    """The baseline with the best mean R@1 over seeds (every seed has the same kinds)."""
    return max(rows[0], key=lambda k: statistics.mean(row[k]["r1"] for row in rows))


def suite_table(name: str, runs: list[dict[str, object]]) -> str:
    """Per edge: the chosen kind against every baseline, and whether it holds within 2 std over seeds."""
    edges, routes = runs[0]["edges"], runs[0]["routes"]
    assert isinstance(edges, dict) and isinstance(routes, dict)
    header = " | ".join(BASELINES) + " | best baseline | chosen − best R@1 | holds | MLP (cv) | best linear (cv) |"
    lines = [f"### {name}", "", f"Held-out R@1 / R@10, mean ± std over seeds {[r['seed'] for r in runs]}. `chosen` "
             "is retrieval as served (the search chosen per seed in brackets), `translator` the chosen kind alone.",
             "", "| edge | chosen kind | chosen | translator | " + header,
             "|---|---|---|---|" + "---|" * (len(BASELINES) + 5)]
    for key in edges:
        rows = [r["edges"][key] for r in runs]  # type: ignore[index]
        base = [row["baselines"] for row in rows]
        best = best_baseline(base)
        diff = [row["bundle"]["r1"] - b[best]["r1"] for row, b in zip(rows, base, strict=True)]
        holds = statistics.mean(diff) >= -2 * (statistics.stdev(diff) if len(diff) > 1 else 0.0)
        cells = ["n/a" if kind not in base[0] else r1_r10([b[kind] for b in base]) for kind in BASELINES]
        cv = [row["candidates"] for row in rows]
        linear = max((k for k in cv[0] if k != "mlp"), key=lambda k: statistics.mean(c[k]["r1"] for c in cv))
        mlp = ms([c["mlp"]["r1"] for c in cv]) if "mlp" in cv[0] else "n/a"
        kinds = ", ".join(sorted({row["kind"] for row in rows}))
        lines.append(f"| {key.replace('__', ' → ')} | {kinds} ({searches(rows)}) | "
                     f"{r1_r10([row['bundle'] for row in rows])} | "
                     f"{r1_r10([row.get('translator', row['bundle']) for row in rows])} | "
                     + " | ".join(cells) + f" | {best} | {ms(diff)} | {'yes' if holds else '**no**'} | {mlp} | "
                     f"{linear} {ms([c[linear]['r1'] for c in cv])} |")
    lines += added_note(runs)
    if routes:
        lines += ["", "| query | bundle route | routed, chained | routed, as served | best direct baseline (same "
                  "training pairs) | chained / direct R@1 | served / direct R@1 |", "|---|---|---|---|---|---|---|"]
        for key in routes:
            rows = [r["routes"][key] for r in runs]  # type: ignore[index]
            direct = [row["direct"] for row in rows]
            best = best_baseline(direct)
            served = [x["strategies"][x["chosen"]] if "strategies" in x else x["routed"] for x in rows]
            top = max(1e-9, statistics.mean(d[best]["r1"] for d in direct))
            lines.append(f"| {key.replace('__', ' → ')} | {' → '.join(rows[0]['path'])} | "
                         f"{r1_r10([x['routed'] for x in rows])} | {r1_r10(served)} ({searches(rows)}) | "
                         f"{best} {r1_r10([d[best] for d in direct])} | "
                         f"{statistics.mean(x['routed']['r1'] for x in rows) / top:.2f}× | "
                         f"{statistics.mean(s['r1'] for s in served) / top:.2f}× |")
    secs = [float(r["train_seconds"]) for r in runs]  # type: ignore[arg-type]
    cpus = [float(r["train_cpu_seconds"]) for r in runs]  # type: ignore[arg-type]
    loads = [float(r["load_before"]) for r in runs]  # type: ignore[arg-type]
    lines += ["", f"Training: {ms(secs)} s wall, {ms(cpus)} s CPU per bundle (1-minute load average "
              f"{min(loads):.1f}–{max(loads):.1f} on 2 shared cores)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("reports/quality"))
    parser.add_argument("--tables-only", action="store_true",
                        help="only print the tables from the per-seed results already in --out (seeds run apart)")
    parser.add_argument("--baselines-only", action="store_true",
                        help="refit only the baselines into the per-seed results already in --out, then the tables")
    parser.add_argument("--edges-and-routes-only", action="store_true",
                        help="skip the eval report and the route-choice check (the grown direct edges)")
    parser.add_argument("--kinds", nargs="+", default=[], choices=TRAINED, metavar="KIND",
                        help=f"also fit each of these kinds alone on the same training pairs ({', '.join(TRAINED)})")
    parser.add_argument("--kinds-only", action="store_true",
                        help="no bundles: only the baselines and --kinds, into <dataset>-seed<seed>-kinds.json")
    args = parser.parse_args()
    if args.kinds and not args.kinds_only:
        parser.error("--kinds goes with --kinds-only (the bundles' runs do not fit kinds alone)")
    if args.kinds_only:
        texts = []
        for name in args.datasets:
            with tempfile.TemporaryDirectory() as tmp:
                data_dir = dataset_dir(name, Path(tmp))
                for seed in [] if args.tables_only else args.seeds:
                    run = run_kinds(name, data_dir, seed, args.kinds)
                    (args.out / f"{name}-seed{seed}-kinds.json").write_text(json.dumps(run, indent=2) + "\n")
            runs = [json.loads((args.out / f"{name}-seed{s}-kinds.json").read_text()) for s in args.seeds]
            texts.append(kinds_table(name, runs, args.kinds))
            print(texts[-1], flush=True)
        (args.out / "kinds.md").write_text("\n".join(texts))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    texts = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            data_dir = dataset_dir(name, Path(tmp))
            for seed in args.seeds if args.baselines_only else []:
                refresh_baselines(data_dir, args.out / f"{name}-seed{seed}.json")
            for seed in [] if args.tables_only or args.baselines_only else args.seeds:
                run = run_seed(name, data_dir, Path(tmp), seed, args.out, not args.edges_and_routes_only)
                (args.out / f"{name}-seed{seed}.json").write_text(json.dumps(run, indent=2) + "\n")
            runs = [json.loads((args.out / f"{name}-seed{s}.json").read_text()) for s in args.seeds]
            texts.append((suite_table if DATASETS[name].get("suite") else table)(name, runs))
            print(texts[-1], flush=True)
    (args.out / "results.md").write_text("\n".join(texts))


if __name__ == "__main__":
    main()
