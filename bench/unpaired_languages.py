"""Unpaired alignment across languages: emoji English names (MiniLM) ↔ German names (multilingual-e5-small).

    pip install emoji                 # BSD licence; the names, English and German (Unicode CLDR)
    python bench/unpaired_languages.py run --json reports/bench/unpaired_languages.json
    python bench/unpaired_languages.py markdown reports/bench/unpaired_languages.json   # docs/migration.md

Data: every fully-qualified emoji of the PyPI package ``emoji`` (``EMOJI_DATA``, German loaded with
``emoji.config.load_language("de")``) with both names; a name is its ``:snake_case:`` alias made text
(``:tanzender_mann:`` → ``tanzender mann``). Each emoji is one sample; names are deduplicated (casefolded)
per language and ordered by a hash of the emoji, so the order does not follow the package's. Subsets:
``all`` (skin-tone variants included) and ``no_skin_tones`` (without them: fewer and less templated names).

Spaces: English names embedded by all-MiniLM-L6-v2 (``encode_texts``, the project's text encoder), German
names by multilingual-e5-small (``encode_texts_e5``, e5's ``query:`` prefix); cached under
``reports/bench/unpaired-languages-cache/`` (gitignored).

Per seed the samples are split into a held-out gallery (1,000, or fewer where the subset cannot spare
them beside 1,000 training samples) and training samples. ``training/unpaired.py``'s ``align`` (the fit of
``--kind unpaired``) gets every training row of both sides as unpaired rows plus ``n`` shared pairs (the
first ``n`` training samples in that seed's order) as anchors; ridge and Procrustes (``fit_linear``) get
the same ``n`` pairs. Scored as the server ranks (``bench/migration.py``'s ``_r1``: centred cosine over the
gallery): R@1 of EN → DE, and DE → EN (the unpaired map is orthogonal, so DE → EN is its transpose; ridge
and Procrustes are fitted in that direction).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import migration  # noqa: E402  (bench/migration.py: R@1 as the server ranks, mean ± std, env settings)
from marked_block import replace_between  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "reports" / "bench" / "unpaired-languages-cache"
DOCS = migration.DOCS
BEGIN = "<!-- bench/unpaired_languages.py table: begin -->"
END = "<!-- bench/unpaired_languages.py table: end -->"
FULLY_QUALIFIED = 2  # emoji.STATUS["fully_qualified"]
SKIN_TONES = frozenset(range(0x1F3FB, 0x1F400))
SUBSETS = ("all", "no_skin_tones")
PAIR_COUNTS = migration.PAIR_COUNTS
SEEDS = migration.SEEDS


@dataclass(frozen=True)
class Name:
    """One emoji and its names in the two languages."""

    emoji: str
    en: str
    de: str
    skin_tone: bool


def clean(alias: str) -> str:
    """``:tanzender_mann:`` → ``tanzender mann`` (the alias as text, whitespace collapsed)."""
    return re.sub(r"\s+", " ", alias.strip().strip(":").replace("_", " ")).strip()


def emoji_data(lang: str = "de") -> Mapping[str, Mapping[str, Any]]:
    """``emoji.EMOJI_DATA`` with ``lang`` loaded (the package ships the other languages on demand)."""
    try:
        import emoji
    except ImportError as exc:
        raise SystemExit("the PyPI package 'emoji' is missing: pip install emoji") from exc
    emoji.config.load_language(lang)
    return emoji.EMOJI_DATA


def emoji_names(data: Mapping[str, Mapping[str, Any]], lang: str = "de", skin_tones: bool = True) -> list[Name]:
    """Fully-qualified emoji with both names, deduplicated on each name (casefolded), in hashed order."""
    ordered = sorted(data, key=lambda e: hashlib.sha256(e.encode()).hexdigest())
    seen_en: set[str] = set()
    seen_de: set[str] = set()
    kept = []
    for e in ordered:
        entry = data[e]
        if entry.get("status") != FULLY_QUALIFIED or not entry.get("en") or not entry.get(lang):
            continue
        tone = any(ord(c) in SKIN_TONES for c in e)
        if tone and not skin_tones:
            continue
        en, de = clean(entry["en"]), clean(entry[lang])
        if not en or not de or en.casefold() in seen_en or de.casefold() in seen_de:
            continue
        seen_en.add(en.casefold())
        seen_de.add(de.casefold())
        kept.append(Name(e, en, de, tone))
    return kept


def _encode(fn: Any, texts: Sequence[str], desc: str, batch: int = 256) -> np.ndarray:
    from tqdm.auto import tqdm

    out = [fn(list(texts[s : s + batch])) for s in tqdm(range(0, len(texts), batch), desc=desc)]
    return np.concatenate(out).astype(np.float32)


def embed(names: Sequence[Name], cache: Path = CACHE) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(English names by MiniLM, German names by e5, seconds per encoder), cached by the texts' hash."""
    import torch
    from latent_bridge.training.datasets.builders import encoders

    key = hashlib.sha256(json.dumps([(n.en, n.de) for n in names]).encode()).hexdigest()[:16]
    path = cache / f"names-{key}.npz"
    if path.exists():
        z = np.load(path)
        return z["en"], z["de"], json.loads(str(z["timing"]))
    torch.set_num_threads(2)
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    en = _encode(encoders.encode_texts, [n.en for n in names], "MiniLM (English names)")
    t_en = time.perf_counter() - t
    t = time.perf_counter()
    de = _encode(encoders.encode_texts_e5, [n.de for n in names], "e5 (German names)")
    timing = {"minilm": round(t_en, 1), "e5": round(time.perf_counter() - t, 1)}
    np.savez(path, en=en, de=de, timing=json.dumps(timing))
    return en, de, timing


def run_one(xa: np.ndarray, xb: np.ndarray, n_pairs: int, seed: int, gallery: int = 1000,
            max_pairs: int = max(PAIR_COUNTS)) -> dict[str, Any]:
    """One seed, one pair count: R@1 a → b and b → a of the unpaired kind, ridge and Procrustes.

    The gallery is held out (``min(gallery, n - max_pairs)`` samples, so every pair count has the same
    split for a seed); every other sample is a training row on both sides; the pairs are its first
    ``n_pairs``."""
    from latent_bridge.training.translators import SpaceStats, fit_linear
    from latent_bridge.training.unpaired import AlignOptions, align

    n = len(xa)
    g = min(gallery, n - max_pairs)
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:g], order[g:]
    paired = train[:n_pairs]
    sa, sb = SpaceStats.fit(xa[train]), SpaceStats.fit(xb[train])
    pa, pb = sa.standardise(xa[paired]), sb.standardise(xb[paired])
    qa, qb = sa.standardise(xa[test]), sb.standardise(xb[test])
    t = time.perf_counter()
    found = align(sa.standardise(xa[train]), sb.standardise(xb[train]), (pa, pb) if n_pairs else None,
                  AlignOptions(seed=seed))
    out: dict[str, Any] = {
        "pairs": n_pairs, "seed": seed, "gallery": g, "training_rows": len(train),
        "unpaired_ab_r1": migration._r1(qa @ found.m, qb), "unpaired_ba_r1": migration._r1(qb @ found.m.T, qa),
        "unpaired_start": found.start, "unpaired_seconds": round(time.perf_counter() - t, 1)}
    if n_pairs >= 2:
        for kind in ("ridge", "procrustes"):
            out[f"{kind}_ab_r1"] = migration._r1(qa @ fit_linear(kind, pa, pb), qb)
            out[f"{kind}_ba_r1"] = migration._r1(qb @ fit_linear(kind, pb, pa), qa)
    return out


def ceiling(xa: np.ndarray, xb: np.ndarray, seed: int, gallery: int = 1000,
            max_pairs: int = max(PAIR_COUNTS)) -> dict[str, float]:
    """Ridge and Procrustes on every training sample as a pair (the same split): what a linear map reaches."""
    from latent_bridge.training.translators import SpaceStats, fit_linear

    g = min(gallery, len(xa) - max_pairs)
    order = np.random.default_rng(seed).permutation(len(xa))
    test, train = order[:g], order[g:]
    sa, sb = SpaceStats.fit(xa[train]), SpaceStats.fit(xb[train])
    ta, tb, qa, qb = (sa.standardise(xa[train]), sb.standardise(xb[train]), sa.standardise(xa[test]),
                      sb.standardise(xb[test]))
    return {f"{kind}_ab_r1": migration._r1(qa @ fit_linear(kind, ta, tb), qb) for kind in ("ridge", "procrustes")}


def isometry(xa: np.ndarray, xb: np.ndarray, n: int = 1000, seed: int = 0) -> float:
    """How alike the two clouds' similarity structures are (what unpaired alignment relies on): Pearson
    correlation of the pairwise cosines (each side centred) of the same ``n`` items in both spaces."""
    idx = np.random.default_rng(seed).permutation(len(xa))[:n]
    a, b = xa[idx] - xa[idx].mean(0), xb[idx] - xb[idx].mean(0)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    upper = np.triu_indices(len(idx), 1)
    return float(np.corrcoef((a @ a.T)[upper], (b @ b.T)[upper])[0, 1])


def run(subsets: Sequence[str] = SUBSETS, pair_counts: Sequence[int] = PAIR_COUNTS, seeds: Sequence[int] = SEEDS,
        gallery: int = 1000) -> dict[str, Any]:
    import emoji
    from tqdm.auto import tqdm

    data = emoji_data("de")
    report: dict[str, Any] = {"source": f"PyPI emoji {emoji.__version__} (BSD licence; names from Unicode CLDR)",
                              "seeds": list(seeds), "subsets": {}, "runs": []}
    for subset in subsets:
        names = emoji_names(data, "de", skin_tones=subset == "all")
        xa, xb, timing = embed(names)
        report["subsets"][subset] = {
            "samples": len(names), "skin_tone_variants": sum(n.skin_tone for n in names), "embedding_seconds": timing,
            "examples": [[n.en, n.de] for n in names[:5]], "isometry": isometry(xa, xb),
            "ceiling": [ceiling(xa, xb, s, gallery, max(pair_counts)) for s in seeds]}
        jobs = [(k, s) for k in pair_counts for s in seeds]
        for k, s in tqdm(jobs, desc=f"unpaired EN↔DE ({subset})"):
            report["runs"].append({"subset": subset, **run_one(xa, xb, k, s, gallery, max(pair_counts))})
    return report


def markdown(report: dict[str, Any]) -> str:
    pm = migration._pm
    lines: list[str] = []
    for subset, info in report["subsets"].items():
        rs_all = [r for r in report["runs"] if r["subset"] == subset]
        if not rs_all:
            continue
        r0 = rs_all[0]
        label = "all fully-qualified emoji" if subset == "all" else "without skin-tone variants"
        ceil = info["ceiling"]
        lines += [f"**{label}**: {info['samples']:,} emoji ({info['skin_tone_variants']:,} skin-tone variants); "
                  f"held-out gallery {r0['gallery']:,}, {r0['training_rows']:,} training rows a side (the same "
                  f"items on both sides, unpaired). Chance R@1 = {1 / r0['gallery']:.3f}. A linear map fitted on "
                  f"all {r0['training_rows']:,} training pairs reaches EN → DE R@1 "
                  f"{pm([c['procrustes_ab_r1'] for c in ceil])} (Procrustes), "
                  f"{pm([c['ridge_ab_r1'] for c in ceil])} (ridge). Similarity structures (pairwise cosines of the "
                  f"same items, EN vs DE) correlate at {info['isometry']:.2f}. Mean ± std over seeds "
                  f"{', '.join(map(str, report['seeds']))}.", "",
                  "| pairs | unpaired EN → DE | ridge EN → DE | Procrustes EN → DE "
                  "| unpaired DE → EN | ridge DE → EN | Procrustes DE → EN |",
                  "|---|---|---|---|---|---|---|"]
        for k in sorted({r["pairs"] for r in rs_all}):
            rs = [r for r in rs_all if r["pairs"] == k]

            def col(key: str, rs: list[dict[str, Any]] = rs) -> str:
                return pm([r[key] for r in rs]) if key in rs[0] else "n/a"

            lines.append(f"| {k:,} | {col('unpaired_ab_r1')} | {col('ridge_ab_r1')} | {col('procrustes_ab_r1')} "
                         f"| {col('unpaired_ba_r1')} | {col('ridge_ba_r1')} | {col('procrustes_ba_r1')} |")
        lines.append("")
    return "\n".join(lines).rstrip()


def write_docs(report: dict[str, Any], docs: Path = DOCS) -> None:
    replace_between(docs, BEGIN, END, markdown(report))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="embed (cached) and measure")
    p_run.add_argument("--json", type=Path, default=ROOT / "reports" / "bench" / "unpaired_languages.json")
    p_run.add_argument("--subset", action="append", choices=SUBSETS, default=None)
    p_run.add_argument("--pairs", type=int, nargs="+", default=list(PAIR_COUNTS))
    p_run.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p_run.add_argument("--gallery", type=int, default=1000)
    p_md = sub.add_parser("markdown", help="the docs/migration.md table from a saved run")
    p_md.add_argument("report", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        report = run(args.subset or SUBSETS, args.pairs, args.seeds, args.gallery)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        report = json.loads(args.report.read_text())
        write_docs(report)
    print(markdown(report))


if __name__ == "__main__":
    main()
