"""The `latent-bridge` command. Each subcommand imports its side lazily, so `serve` needs no torch."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from latent_bridge.service.bundle.manifest import Manifest as ManifestLike
    from latent_bridge.training.bundling.indexing import IndexOptions as IndexOptionsLike
    from latent_bridge.training.bundling.milvus_push import MilvusTarget as MilvusTargetLike
    from latent_bridge.training.config import TrainConfig as TrainConfigLike

from latent_bridge import __version__
from latent_bridge.service.bundle.manifest import BundleError
from latent_bridge.service.errors import ServiceError

TRAIN_HINT = "training needs the train extra: pip install torch==2.13.0 'latent-bridge[train]'"
INDEX_HINT = "indexing needs faiss and onnxruntime: pip install 'latent-bridge[serve]' tqdm"
SERVE_HINT = "serving needs the serve extra: pip install 'latent-bridge[serve]'"


class Failed(SystemExit):
    """A command's end on a user error: one line on stderr, exit code 2, never a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def fail(message: str) -> NoReturn:
    print(f"latent-bridge: {message}", file=sys.stderr, flush=True)
    raise Failed(message)


def _need(hint: str) -> Callable[[ModuleNotFoundError], None]:
    def missing(exc: ModuleNotFoundError) -> None:
        fail(f"missing package {exc.name!r}; {hint}")

    return missing


def parse_edges(text: str | None) -> list[tuple[str, str]] | None:
    if not text:
        return None
    edges = []
    for item in text.split(","):
        a, sep, b = item.strip().partition(":")
        if not sep or not a or not b:
            raise argparse.ArgumentTypeError(f"edge {item!r} is not of the form source:target")
        edges.append((a, b))
    return edges


def cmd_train(args: argparse.Namespace) -> None:
    try:
        import latent_bridge.training.train as training_train
    except ModuleNotFoundError as exc:
        _need(TRAIN_HINT)(exc)
    if Path(args.out).exists():  # before training, not after minutes of it
        fail(f"{args.out}: a bundle already exists there; bundles are immutable, pick a new name")
    if args.gallery_data is not None:
        manifest = _train_with_galleries(args, training_train.train)
    else:
        manifest = training_train.train(_config(args))
    print(f"wrote bundle {args.out} ({len(manifest.edges)} edges)")
    _print_edges(manifest)


def _train_with_galleries(args: argparse.Namespace, train: Callable[[TrainConfigLike], ManifestLike]) -> ManifestLike:
    """Train into a hidden bundle, then index the corpora of --gallery-data into the one asked for."""
    import shutil

    from latent_bridge.training.bundling.indexing import corpus_files, index_corpora

    corpora = corpus_files(args.gallery_data)
    out = Path(args.out)
    if out.exists():
        raise FileExistsError(f"{out}: a bundle already exists there; bundles are immutable, pick a new name")
    trained = out.with_name(f".{out.name}.trained")
    shutil.rmtree(trained, ignore_errors=True)
    try:
        train(_config(args, out=trained))
        return index_corpora(trained, corpora, out, _index_options(args), same_run=True)
    finally:
        shutil.rmtree(trained, ignore_errors=True)


def _index_options(args: argparse.Namespace, default_type: str = "auto") -> IndexOptionsLike:
    from latent_bridge.training.bundling.indexing import IndexOptions

    return IndexOptions(
        index_type=getattr(args, "gallery_index_type", None) or default_type,
        memory_budget=_bytes(args.memory_budget) if getattr(args, "memory_budget", None) else None,
        target_recall=getattr(args, "target_recall", None) or 0.95,
        queries=getattr(args, "queries", None),
        progress=not args.quiet,
        milvus=_milvus_target(args),
    )


def _milvus_target(args: argparse.Namespace) -> MilvusTargetLike | None:
    """Where ``--backend milvus`` pushes galleries: --milvus-uri, else LATENT_BRIDGE_MILVUS_URI (and its token
    and collection prefix), the settings the server reads."""
    if getattr(args, "backend", "faiss") != "milvus":
        return None
    from latent_bridge.service.settings import Settings
    from latent_bridge.training.bundling.milvus_push import MilvusTarget

    settings = Settings(milvus_uri=args.milvus_uri) if args.milvus_uri else Settings()
    if not settings.milvus_uri:
        fail("--backend milvus needs --milvus-uri or LATENT_BRIDGE_MILVUS_URI")
    token = None if settings.milvus_token is None else settings.milvus_token.get_secret_value()
    return MilvusTarget(settings.milvus_uri, token, settings.milvus_collection_prefix)


def _bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    try:
        return int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 2G or 512M") from None


def cmd_index(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.training.bundling.indexing import corpus_files, index_corpora
    except ModuleNotFoundError as exc:
        _need(INDEX_HINT)(exc)
    if Path(args.data).is_dir():  # a folder of <modality>.parquet corpora: every gallery in one new bundle
        corpora = corpus_files(args.data)
        if args.modality is not None:
            corpora = {args.modality: corpora[args.modality]} if args.modality in corpora else {}
            if not corpora:
                fail(f"{args.data}: no {args.modality}.parquet")
    elif args.modality is None:
        fail("--modality names the gallery a corpus file is for (or give --data a folder of <modality>.parquet)")
    else:
        corpora = {args.modality: args.data}
    manifest = index_corpora(args.bundle, corpora, args.out, _index_options(args))
    _print_galleries(manifest, args.out, sorted(corpora))


def cmd_compact(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.training.bundling.indexing import compact
    except ModuleNotFoundError as exc:
        _need(INDEX_HINT)(exc)
    manifest = compact(args.bundle, args.out, _index_options(args, default_type="same"))
    _print_galleries(manifest, args.out, manifest.lineage.new_galleries)


def _write_log(bundle: Path, modality: str) -> tuple[ManifestLike, Path]:
    from latent_bridge.service.bundle.manifest import read_manifest
    from latent_bridge.service.galleries.writelog import writes_dir

    manifest = read_manifest(bundle)
    galleries = [g.modality for g in manifest.galleries]
    if modality not in galleries:
        fail(f"{bundle}: no gallery for modality {modality!r} (galleries: {', '.join(galleries) or 'none'})")
    return manifest, writes_dir(bundle) / f"{modality}.log"


def cmd_writelog_check(args: argparse.Namespace) -> None:
    """Print what each gallery's write log holds; exit 2 naming the first damage, as a start would refuse."""
    from latent_bridge.service.bundle.manifest import read_manifest
    from latent_bridge.service.galleries.writelog import ack_path, describe, inspect_log, writes_dir

    manifest = read_manifest(args.bundle)
    modalities = [args.modality] if args.modality else [g.modality for g in manifest.galleries]
    paths = [_write_log(args.bundle, m)[1] for m in modalities]
    if not args.modality:
        paths = [p for p in paths if p.exists() or ack_path(p).exists()]
        if not paths:
            print(f"{writes_dir(args.bundle)}: no write logs")
    damage = []
    for path in paths:
        report = inspect_log(path, manifest.fingerprint)
        print("\n".join(describe(report)), flush=True)
        if report.damage is not None:
            damage.append(report.damage)
    if damage:
        more = f" (and {len(damage) - 1} more damaged logs)" if len(damage) > 1 else ""
        fail(f"{damage[0]}{more}")


def cmd_writelog_repair(args: argparse.Namespace) -> None:
    """Salvage a log's whole records up to its first damage into a new log; the original stays as it is."""
    from latent_bridge.service.galleries.writelog import ack_path, describe, salvage

    manifest, path = _write_log(args.bundle, args.modality)
    if not path.exists():
        fail(f"{path}: no write log to repair")
    report = salvage(path, args.out, manifest.fingerprint)
    print("\n".join(describe(report)))
    print(f"wrote {args.out} and {ack_path(args.out)}: {report.records} writes, {report.end} bytes "
          f"(left out: {report.size - report.end} bytes from byte {report.end})")
    print(f"to serve it: stop the server, then move {args.out} over {path} and {ack_path(args.out)} over "
          f"{ack_path(path)}")


def _print_galleries(manifest: ManifestLike, out: Path, names: list[str]) -> None:
    print(f"wrote bundle {out}")
    for g in manifest.galleries:
        if g.modality not in names:
            continue
        t = g.search
        measured = (
            f"recall@10 {t.recall_at_10:.3f} at {t.parameter or 'exact'}={t.value or '-'}, p50 {t.p50_ms} ms"
            if t.recall_at_10 is not None
            else "not measured"
        )
        folded = manifest.lineage.folded_writes.get(g.modality)
        print(f"  {g.modality:>8}: {g.size} items, {g.index_type}; {measured}"
              + (f"; {folded} logged writes folded in" if folded else ""))


def _config(args: argparse.Namespace, **fixed: object) -> TrainConfigLike:
    from latent_bridge.training.config import TrainConfig

    overrides = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__ and v is not None}
    return TrainConfig(**(overrides | fixed | {"progress": not args.quiet}))


def _print_edges(manifest: ManifestLike, only: list[str] | None = None) -> None:
    for edge in manifest.edges:
        if only is not None and edge.key not in only:
            continue
        m = edge.metrics
        if m.n_test == 0:
            fit = edge.fit.hyperparameters if edge.fit else {}
            print(f"  {edge.source:>8} → {edge.target:<8} {edge.kind:<10} not measured: no shared samples "
                  f"(alignment cosine {fit.get('alignment_cosine', '-')})")
            continue
        print(f"  {edge.source:>8} → {edge.target:<8} {edge.kind:<10} R@1 {m.r1:.3f}  R@10 {m.r10:.3f}  "
              f"cycle cos {m.cycle_cosine:.3f}")


def _grow_config(args: argparse.Namespace) -> TrainConfigLike:
    """Training options for a grown bundle; the split seed defaults to the parent's, so held-out samples agree."""
    from latent_bridge.training.grow import parent_seed

    seed = parent_seed(args.bundle) if args.seed is None else args.seed
    return _config(args, seed=seed, data=args.data, out=args.out)


def cmd_add_modality(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.training.grow import add_modality
    except ModuleNotFoundError as exc:
        _need(TRAIN_HINT)(exc)
    manifest = add_modality(args.bundle, args.data, args.modality, args.link_to, _grow_config(args))
    print(f"wrote bundle {args.out}: {args.bundle} + {args.modality} linked to {', '.join(args.link_to)}")
    _print_edges(manifest, manifest.lineage.new_edges)


def cmd_add_edge(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.training.grow import add_edge
    except ModuleNotFoundError as exc:
        _need(TRAIN_HINT)(exc)
    if len(args.edge) != 1:
        fail("--edge takes one pair, e.g. audio:image")
    (edge,) = args.edge
    manifest = add_edge(args.bundle, args.data, edge, _grow_config(args))
    print(f"wrote bundle {args.out}: {args.bundle} + edge {edge[0]}↔{edge[1]}")
    _print_edges(manifest, manifest.lineage.new_edges)


def cmd_eval(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.training.report.run_report import evaluate_bundle
    except ModuleNotFoundError as exc:
        _need(TRAIN_HINT)(exc)
    report = evaluate_bundle(args.bundle, args.data, args.report, seed=args.seed, curve_seeds=args.curve_seeds,
                             progress=not args.quiet)
    print(f"wrote {args.report}/report.md for bundle {report['bundle']}")


def cmd_data_demo(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.training.datasets.builders.demo import build_demo
    except ModuleNotFoundError as exc:
        _need("the demo dataset needs the encoders extra: pip install 'latent-bridge[encoders]'")(exc)
    build_demo(args.out, limit=args.limit)


def cmd_encoders_export(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.training.encoders_export import with_encoders
    except ModuleNotFoundError as exc:
        _need(f"{TRAIN_HINT}, and the encoders extra: pip install 'latent-bridge[encoders]'")(exc)
    from latent_bridge.training.datasets.builders.encoders import EncoderUnavailable

    try:
        manifest = with_encoders(args.bundle, args.out, args.modalities, args.media)
    except EncoderUnavailable as exc:
        fail(str(exc))
    parity = manifest.training.get("encoder_parity_cosine")
    parity = parity if isinstance(parity, dict) else {}
    print(f"wrote bundle {args.out}: {args.bundle} + encoders of {', '.join(e.modality for e in manifest.encoders)}")
    for encoder in manifest.encoders:
        print(f"  {encoder.modality:>8}: {encoder.model} (parity cosine {parity.get(encoder.modality)})")


def cmd_demo(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.demo import ensure_demo_bundle, examples
    except ModuleNotFoundError as exc:
        _need(TRAIN_HINT)(exc)
    bundle = ensure_demo_bundle(args.models, args.data)
    if args.no_serve:
        return
    print(examples(args.host, args.port))
    cmd_serve(argparse.Namespace(bundle=bundle, host=args.host, port=args.port, workers=None))


def cmd_serve(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.service.api.server import serve
    except ModuleNotFoundError as exc:
        _need(SERVE_HINT)(exc)
    serve(bundle=args.bundle, host=args.host, port=args.port, workers=args.workers)


def cmd_translate(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.corpus import translate_corpus
        from latent_bridge.service.errors import ServiceError
    except ModuleNotFoundError as exc:
        _need(SERVE_HINT)(exc)
    try:
        done = translate_corpus(args.bundle, args.source, args.target, args.corpus, args.out, batch=args.batch,
                                path=args.path, progress=not args.quiet)
    except ServiceError as exc:  # unknown modality, no route, a pinned path the bundle lacks
        fail(exc.detail)
    print(f"wrote {args.out}: {done.rows} rows along {' → '.join(done.path)} in {done.seconds:.1f} s "
          f"({done.rows / max(done.seconds, 1e-9):,.0f} rows/s)")


def cmd_migrate(args: argparse.Namespace) -> None:
    try:
        from latent_bridge.training.migrate import MigrationConfig, migrate, write_report
    except ModuleNotFoundError as exc:
        _need(TRAIN_HINT)(exc)
    if Path(args.out).exists():
        fail(f"{args.out}: a bundle already exists there; bundles are immutable, pick a new name")
    cfg = MigrationConfig(corpus=args.corpus, sample=args.sample, out=args.out, queries=args.queries,
                          reembedded=args.reembedded, old=args.old, new=args.new, holdout=args.holdout,
                          kind=args.kind, seed=args.seed, progress=not args.quiet)
    report = migrate(cfg)
    path = args.report or args.out.with_name(f"{args.out.name}.migration.json")
    write_report(report, path)
    print(f"wrote bundle {args.out} (gallery: the old corpus, {report['corpus']} items) and {path}")
    for scope in ("held_out_documents", "queries"):
        if scope in report:
            _print_migration(scope, report[scope])  # type: ignore[arg-type]


def _print_migration(scope: str, found: dict[str, object]) -> None:
    r10 = {k: v["r10"] for k, v in found.items() if isinstance(v, dict)}
    kept = found.get("recall_retained_adapter")
    print(f"  {scope} ({found['queries']} queries, gallery {found['gallery']}): R@10 "
          + ", ".join(f"{k} {v:.3f}" for k, v in r10.items())
          + (f"; recall retained {kept:.3f}" if isinstance(kept, float) else ""))


def _migrate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mg = sub.add_parser("migrate", help="serve new-encoder queries against an old corpus: adapter, gallery, report")
    mg.add_argument("--corpus", type=Path, required=True, help="old corpus Parquet: id, embedding (old encoder)")
    mg.add_argument("--sample", type=Path, required=True,
                    help="Parquet of a re-embedded sample: id (corpus ids), embedding (new encoder)")
    mg.add_argument("--out", type=Path, required=True, help="the new bundle folder")
    mg.add_argument("--queries", type=Path, default=None,
                    help="held-out queries: id, embedding (new encoder), relevant (corpus id), optional embedding_old")
    mg.add_argument("--reembedded", type=Path, default=None,
                    help="the whole corpus embedded by the new encoder (benchmarks): exact re-embedding recall")
    mg.add_argument("--old", default="old", help="modality name of the old encoder's space (default old)")
    mg.add_argument("--new", default="new", help="modality name of the new encoder's space (default new)")
    mg.add_argument("--holdout", type=float, default=0.2, help="share of the sample kept out to report on")
    mg.add_argument("--kind", default="auto", help="the adapter's kind (default auto)")
    mg.add_argument("--seed", type=int, default=0)
    mg.add_argument("--report", type=Path, default=None, help="report JSON (default <out>.migration.json)")
    mg.add_argument("--quiet", action="store_true", help="no progress bars")
    mg.set_defaults(func=cmd_migrate)


def _translate_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tr = sub.add_parser("translate", help="translate a corpus file's embeddings offline, streamed in batches")
    tr.add_argument("--bundle", type=Path, required=True)
    tr.add_argument("--from", dest="source", required=True, help="modality of the corpus's embeddings")
    tr.add_argument("--to", dest="target", required=True, help="modality to translate them into")
    tr.add_argument("--in", dest="corpus", type=Path, required=True, help="Parquet file with an `embedding` column")
    tr.add_argument("--out", type=Path, required=True, help="Parquet file to write (same columns, translated)")
    tr.add_argument("--path", type=lambda t: [x for x in t.split(",") if x], default=None,
                    help="pin the route, e.g. audio,text,image (default: the best one)")
    tr.add_argument("--batch", type=int, default=4096, help="rows per batch (default 4096)")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_translate)


def _training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that trains edges (unset ones keep TrainConfig's defaults)."""
    parser.add_argument("--kind", default=None,
                        help="auto (default), identity, centroid, standardise, procrustes, ridge, cca, svcca, mlp, "
                        "dmvae (a disentangled multimodal VAE per pair), "
                        "or unpaired (aligns two spaces from each side's own rows; shared samples optional)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--holdout", type=float, default=None,
                        help="fraction of samples kept out of every fit as a test split (default 0: the shipped "
                             "translators are refit on every pair; metrics are then cross-validated)")
    parser.add_argument("--folds", type=int, default=None, help="cross-validation folds by sample (default 5)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--infonce-weight", dest="infonce_weight", type=float, default=None)
    parser.add_argument("--cosine-weight", dest="cosine_weight", type=float, default=None)
    parser.add_argument("--recon-weight", dest="recon_weight", type=float, default=None)
    parser.add_argument("--min-shared", dest="min_shared", type=int, default=None)
    parser.add_argument("--index-type", dest="index_type", choices=["flat", "ivf", "hnsw"], default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 1)")
    parser.add_argument("--no-pivots", dest="pivots", action="store_const", const=False, default=None,
                        help="chain every retrieval: no per-edge or per-route strategy choice, no pivot galleries")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", default=None,
                        help="train the MLP in float32 throughout (default: bfloat16 steps where the CPU has them)")
    parser.add_argument("--auto-dmvae", dest="auto_dmvae", action="store_true", default=None,
                        help="auto also considers dmvae (about doubles training time; off by default)")
    parser.add_argument("--joint", dest="joint", action="store_true", default=None,
                        help="after the per-edge fits, fine-tune the translators together (InfoNCE per edge and per "
                        "2-hop route); each direction keeps it only where cross-validation says it wins (train only: "
                        "add-modality and add-edge ignore it)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _gallery_options(parser: argparse.ArgumentParser, type_flag: str, default_help: str = "auto") -> None:
    """How galleries are indexed (index, compact, train --gallery-data)."""
    parser.add_argument(type_flag, dest="gallery_index_type", default=None,
                        choices=["auto", "flat", "hnsw", "ivf", "ivf-pq", "same"],
                        help=f"default {default_help}: exact for small galleries, HNSW above, "
                        "IVF-PQ over --memory-budget")
    parser.add_argument("--memory-budget", dest="memory_budget", default=None,
                        help="most memory the index may take, e.g. 2G (auto picks IVF-PQ above it)")
    parser.add_argument("--target-recall", dest="target_recall", type=float, default=None,
                        help="recall@10 against exact search to tune the search effort to (default 0.95)")
    parser.add_argument("--queries", type=Path, default=None,
                        help="Parquet of held-out query embeddings of the modality (default: translated training rows)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latent-bridge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train translators between modalities and write a bundle")
    train.add_argument("--data", type=Path, required=True, help="dataset folder, one file per modality")
    train.add_argument("--out", type=Path, required=True, help="new bundle folder, e.g. models/NAME")
    train.add_argument("--edges", type=parse_edges, default=None,
                       help="pairs to train, e.g. audio:text,image:text (each gives both directions)")
    train.add_argument("--gallery-data", dest="gallery_data", type=Path, default=None,
                       help="folder of <modality>.parquet corpora to index as those modalities' galleries")
    _training_options(train)
    _gallery_options(train, "--gallery-index-type")
    train.set_defaults(func=cmd_train)

    grow = sub.add_parser("add-modality", help="new bundle = an existing one + a modality linked to some of its own")
    grow.add_argument("--bundle", type=Path, required=True, help="the bundle to grow from (left untouched)")
    grow.add_argument("--data", type=Path, required=True, help="dataset folder with the new modality and partners")
    grow.add_argument("--modality", required=True, help="name of the new modality (its file stem in --data)")
    grow.add_argument("--link-to", dest="link_to", type=lambda t: [x for x in t.split(",") if x], required=True,
                      help="modalities of the bundle it pairs with, e.g. text or text,image")
    grow.add_argument("--out", type=Path, required=True, help="the new bundle folder")
    _training_options(grow)
    grow.set_defaults(func=cmd_add_modality)

    late = sub.add_parser("add-edge", help="new bundle = an existing one + a direct edge between two of its modalities")
    late.add_argument("--bundle", type=Path, required=True)
    late.add_argument("--data", type=Path, required=True)
    late.add_argument("--edge", type=parse_edges, required=True, help="the pair, e.g. audio:image")
    late.add_argument("--out", type=Path, required=True)
    _training_options(late)
    late.set_defaults(func=cmd_add_edge)

    index = sub.add_parser("index", help="new bundle = an existing one with a modality's gallery built from a corpus")
    index.add_argument("--bundle", type=Path, required=True, help="the bundle (left untouched)")
    index.add_argument("--modality", default=None,
                       help="the gallery's modality, one of the bundle's (with a --data folder: only that one)")
    index.add_argument("--data", type=Path, required=True,
                       help="corpus Parquet: id, embedding, any payload columns (no sample needed); or a folder "
                       "of <modality>.parquet corpora, each indexed as that modality's gallery")
    index.add_argument("--out", type=Path, required=True, help="the new bundle folder")
    _gallery_options(index, "--index-type")
    index.add_argument("--backend", choices=["faiss", "milvus"], default="faiss",
                       help="milvus: also push the gallery into a Milvus collection the manifest names")
    index.add_argument("--milvus-uri", dest="milvus_uri", default=None,
                       help="milvus-lite file or http://host:19530 (default: LATENT_BRIDGE_MILVUS_URI)")
    index.add_argument("--quiet", action="store_true", help="no progress bars")
    index.set_defaults(func=cmd_index)

    compact = sub.add_parser("compact",
                             help="new bundle = an existing one with its galleries' run-time writes folded in")
    compact.add_argument("--bundle", type=Path, required=True, help="the bundle whose <bundle>.writes/ log to fold")
    compact.add_argument("--out", type=Path, required=True, help="the new bundle folder")
    _gallery_options(compact, "--index-type", default_help="same (each gallery keeps its type)")
    compact.add_argument("--quiet", action="store_true", help="no progress bars")
    compact.set_defaults(func=cmd_compact)

    wl = sub.add_parser("writelog", help="check a bundle's run-time write logs, or salvage a damaged one")
    wl_sub = wl.add_subparsers(dest="action", required=True)
    check = wl_sub.add_parser("check", help="what each write log holds; exit 2 at damage (a start would refuse)")
    check.add_argument("bundle", type=Path, help="the bundle whose <bundle>.writes/ logs to read")
    check.add_argument("--modality", default=None, help="only this gallery's log (default: every gallery's)")
    check.set_defaults(func=cmd_writelog_check)
    repair = wl_sub.add_parser("repair", help="copy a log's whole records up to its first damage into a new log")
    repair.add_argument("bundle", type=Path, help="the bundle whose <bundle>.writes/<modality>.log to salvage")
    repair.add_argument("--modality", required=True)
    repair.add_argument("--out", type=Path, required=True,
                        help="the new log (its marker goes to <out>.ack); never an existing file")
    repair.set_defaults(func=cmd_writelog_repair)

    ev = sub.add_parser("eval", help="recompute a bundle's metrics on a dataset and write a report")
    ev.add_argument("--bundle", type=Path, required=True)
    ev.add_argument("--data", type=Path, required=True)
    ev.add_argument("--report", type=Path, required=True, help="folder for report.json, report.md, *.png")
    ev.add_argument("--seed", type=int, default=None,
                    help="the split seed (default: the one the bundle was trained with, from its manifest)")
    ev.add_argument("--curve-seeds", type=int, default=3,
                    help="seeds of the learning curve, each refitting every pair 5 times (0: no curve; default 3)")
    ev.add_argument("--quiet", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_eval)

    data = sub.add_parser("data", help="build datasets")
    data_sub = data.add_subparsers(dest="dataset", required=True)
    demo = data_sub.add_parser("demo", help="build the image/text/audio demo dataset from Debian media")
    demo.add_argument("--out", type=Path, default=Path("data/demo"))
    demo.add_argument("--limit", type=int, default=None, help="only the first N stamps")
    demo.set_defaults(func=cmd_data_demo)

    enc = sub.add_parser("encoders", help="package encoders into a bundle, so the server takes raw input")
    enc_sub = enc.add_subparsers(dest="action", required=True)
    export = enc_sub.add_parser("export", help="new bundle = a bundle + the demo's real encoders (text, image, audio)")
    export.add_argument("--bundle", type=Path, required=True, help="the bundle to start from (left untouched)")
    export.add_argument("--out", type=Path, required=True, help="the new bundle folder")
    export.add_argument("--modalities", type=lambda t: [x for x in t.split(",") if x], default=None,
                        help="which encoders, e.g. text,image (default: every demo modality the bundle has)")
    export.add_argument("--media", type=Path, default=None,
                        help="dataset folder whose media/ thumbnails the search page shows (e.g. data/demo)")
    export.set_defaults(func=cmd_encoders_export)

    demo_cmd = sub.add_parser("demo", help="train the demo bundle if missing, then serve it")
    demo_cmd.add_argument("--models", type=Path, default=Path("models"), help="folder holding bundles")
    demo_cmd.add_argument("--data", type=Path, default=Path("data/demo"))
    demo_cmd.add_argument("--host", default="127.0.0.1")
    demo_cmd.add_argument("--port", type=int, default=8000)
    demo_cmd.add_argument("--no-serve", dest="no_serve", action="store_true", help="only make sure the bundle exists")
    demo_cmd.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="serve a bundle over HTTP")
    serve.add_argument("--bundle", type=Path, default=None, help="bundle folder (default: $LATENT_BRIDGE_BUNDLE)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--workers", type=int, default=None)
    serve.set_defaults(func=cmd_serve)
    _translate_parser(sub)
    _migrate_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, OSError, BundleError, ServiceError) as exc:  # ExportError, DatasetError… are ValueErrors
        fail(str(exc.detail if isinstance(exc, ServiceError) else exc))


if __name__ == "__main__":
    main()
