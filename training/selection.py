"""Selection: choose each directed edge's kind and hyperparameters by cross-validation over samples.

Every candidate (each linear kind, ridge at each alpha, the MLP and the DMVAE at each epoch) is fitted on the
training samples of every fold and scored on the fold's validation samples; the folds are the same for
every edge (see ``cv_folds``). A direction keeps the candidate with the best mean R@1 (the simpler kind on
a tie, then MRR). The trained kinds' folds train in lockstep, so the epoch count is read off the mean
validation curve and early stopping watches the mean, not one fold's noise. Nothing fitted here is
shipped: ``fitting`` refits the choice on every usable pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import numpy as np
from latent_bridge.service.bundle.manifest import EDGE_KINDS, EdgeMetrics
from latent_bridge.training.candidates import (
    LINEAR_BASES,
    EpochRun,
    Fitted,
    MLPRun,
    Pair,
    applies,
    fit_kind,
    ridge_fits,
    standardised_rows,
)
from latent_bridge.training.config import TrainConfig
from latent_bridge.training.datasets.splits import Fold
from latent_bridge.training.dmvae import KIND as DMVAE
from latent_bridge.training.dmvae import DMVAERun, hyperparameters
from latent_bridge.training.evaluate import evaluate_translation, mean_metrics
from latent_bridge.training.translators import EQUAL_DIM_KINDS, SVCCA_VARIANCE, SpaceStats, translate
from torch import nn
from tqdm.auto import tqdm

Scored = tuple[EdgeMetrics, EdgeMetrics]  # forward, backward
TRAINED_KINDS = ("mlp", DMVAE)  # trained epoch by epoch; scored at their best epoch, so held to a margin by auto


@dataclass
class Choice:
    """What cross-validation chose for one direction, with every candidate's cross-validated metrics."""

    kind: str
    hyperparameters: dict[str, float | int | str]
    metrics: EdgeMetrics
    candidates: dict[str, EdgeMetrics]


@dataclass
class Selection:
    forward: Choice
    backward: Choice
    alphas: tuple[float, float] = (1.0, 1.0)  # ridge's alpha per direction, also used by an MLP's ridge base
    bases: tuple[str, str] = ("ridge", "ridge")  # the linear kind each MLP direction grows from
    epochs: tuple[int, int] = (0, 0)  # epochs per direction of its chosen trained kind (MLP or DMVAE)
    folds: list[tuple[nn.Module, nn.Module]] = field(default_factory=list)  # per fold, the chosen kinds' fits

    def choices(self) -> tuple[Choice, Choice]:
        return self.forward, self.backward


@dataclass
class FoldData:
    fold: Fold
    stats: tuple[SpaceStats, SpaceStats]
    rows: tuple[np.ndarray, ...]
    n_train: int


def prepare(pair: Pair, folds: list[Fold]) -> list[FoldData]:
    prepared = []
    for fold in folds:
        stats = pair.stats(fold.train)
        prepared.append(FoldData(fold, stats, standardised_rows(pair, fold.train, stats), len(pair.shared(fold.train))))
    return prepared


def score(pair: Pair, fitted: Fitted, fd: FoldData) -> Scored:
    """Both directions of ``fitted`` on the fold's validation samples (the gallery is those rows)."""
    found = []
    for p, f, g, stats in ((pair, fitted.forward, fitted.backward, fd.stats[0]),
                           (pair.reverse(), fitted.backward, fitted.forward, fd.stats[1])):
        found.append(evaluate_translation(
            p.a, p.b, set(fd.fold.val), partial(translate, f), partial(translate, g),
            source_mean=stats.mean, n_train=fd.n_train, part="validation", source="cross_validation",
        ))
    return found[0], found[1]


def _key(kind: str, m: EdgeMetrics) -> tuple[float, int, float]:
    """Mean R@1 first; on a tie the simpler kind wins, then MRR."""
    return (m.r1, -EDGE_KINDS.index(kind), m.mrr)  # type: ignore[arg-type, unused-ignore]  # kind: str


def linear_kinds(pair: Pair, cfg: TrainConfig) -> list[str]:
    wanted = {"auto": (*EQUAL_DIM_KINDS, *LINEAR_BASES), "mlp": LINEAR_BASES, DMVAE: ()}.get(cfg.kind, (cfg.kind,))
    kinds = [k for k in wanted if applies(k, pair)]
    if not kinds and wanted:
        raise ValueError(
            f"kind {cfg.kind!r} does not apply to {pair.a.name} ({pair.a.dim}-d) and "
            f"{pair.b.name} ({pair.b.dim}-d): dimensions differ"
        )
    return kinds


@dataclass
class Board:
    """Cross-validated metrics per candidate and direction; ridge keeps its best alpha per direction.

    The per-fold fits behind each direction's best entry are kept: an MLP starts from them on its folds.
    """

    metrics: list[dict[str, EdgeMetrics]] = field(default_factory=lambda: [{}, {}])
    alphas: list[float] = field(default_factory=lambda: [1.0, 1.0])
    fits: list[dict[str, list[Fitted]]] = field(default_factory=lambda: [{}, {}])
    fold_r1: list[dict[str, list[float]]] = field(default_factory=lambda: [{}, {}])  # per fold, best entry

    def add(self, kind: str, folds: list[Scored], alpha: float | None = None, fits: list[Fitted] | None = None) -> None:
        for d in (0, 1):
            m = mean_metrics([s[d] for s in folds])
            if kind not in self.metrics[d] or _key(kind, m) > _key(kind, self.metrics[d][kind]):
                self.metrics[d][kind] = m
                self.fold_r1[d][kind] = [s[d].r1 for s in folds]
                if fits is not None:
                    self.fits[d][kind] = fits
                if alpha is not None:
                    self.alphas[d] = alpha

    def start(self, bases: tuple[str, str], fold: int) -> Fitted:
        """The MLP's starting maps on one fold: each direction's best linear kind, as fitted for its score."""
        return Fitted("linear", self.fits[0][bases[0]][fold].forward, self.fits[1][bases[1]][fold].backward)

    def _key(self, d: int, kind: str) -> tuple[float, int, float]:
        return _key(kind, self.metrics[d][kind])

    def best_bases(self) -> tuple[str, str]:
        """Per direction, the best linear kind an MLP can start from."""
        found = []
        for d in (0, 1):
            bases = [k for k in LINEAR_BASES if k in self.metrics[d]]
            found.append(max(bases, key=partial(self._key, d)))
        return found[0], found[1]


def select(pair: Pair, folds: list[Fold], cfg: TrainConfig, position: int = 0) -> Selection:
    """Cross-validate every candidate kind ``cfg.kind`` asks for; choose per direction."""
    prepared = prepare(pair, folds)
    board = Board()
    for kind in linear_kinds(pair, cfg):
        if kind == "ridge":  # fold x alpha, then one board entry per alpha
            path = [ridge_fits(fd.rows, fd.stats, cfg.ridge_alphas) for fd in prepared]
            for i, alpha in enumerate(cfg.ridge_alphas):
                fits = [per_fold[i] for per_fold in path]
                board.add(kind, [score(pair, f, fd) for f, fd in zip(fits, prepared, strict=True)], alpha, fits)
            continue
        fits = [fit_kind(pair, kind, fd.rows, fd.stats, cfg) for fd in prepared]
        board.add(kind, [score(pair, f, fd) for f, fd in zip(fits, prepared, strict=True)], None,
                  fits if kind in LINEAR_BASES else None)
    epochs: dict[str, tuple[int, int]] = {}
    bases = ("ridge", "ridge")
    snapshots: dict[str, list[list[Fitted]]] = {k: [[], []] for k in TRAINED_KINDS}
    if cfg.kind in ("auto", "mlp"):
        bases = board.best_bases()
        epochs["mlp"] = mlp_curve(pair, prepared, bases, board, cfg, position, snapshots["mlp"])
    if cfg.kind == DMVAE or (cfg.kind == "auto" and cfg.auto_dmvae):
        runs: list[EpochRun] = [DMVAERun(pair, fd.fold.train, fd.stats, cfg) for fd in prepared]
        epochs[DMVAE] = train_curve(pair, prepared, runs, DMVAE, board, cfg, position, snapshots[DMVAE])
    forward, backward = _choose(board, cfg, bases, epochs.get("mlp", (0, 0)), epochs.get(DMVAE, (0, 0)))
    chosen = tuple(epochs[c.kind][d] if c.kind in epochs else 0 for d, c in enumerate((forward, backward)))
    selection = Selection(forward, backward, alphas=(board.alphas[0], board.alphas[1]), bases=bases,
                          epochs=(chosen[0], chosen[1]))
    selection.folds = fold_fits(pair, prepared, selection, board, cfg, snapshots)
    return selection


def fold_fits(pair: Pair, prepared: list[FoldData], selection: Selection, board: Board, cfg: TrainConfig,
              snapshots: dict[str, list[list[Fitted]]]) -> list[tuple[nn.Module, nn.Module]]:
    """Per fold, the chosen kind of each direction as that fold fitted it: what routes are cross-validated
    with (``pivots.py``). The trained kinds' come from ``snapshots`` taken at the chosen epoch, linear kinds
    from the board (fitted again where it kept none)."""
    found = []
    for i, fd in enumerate(prepared):
        maps = []
        for d, choice in enumerate(selection.choices()):
            kept = board.fits[d].get(choice.kind)
            fitted = (snapshots[choice.kind][d][i] if choice.kind in TRAINED_KINDS else kept[i] if kept
                      else fit_kind(pair, choice.kind, fd.rows, fd.stats, cfg, selection.alphas))
            maps.append(fitted.forward if d == 0 else fitted.backward)
        found.append((maps[0], maps[1]))
    return found


def _choose(board: Board, cfg: TrainConfig, bases: tuple[str, str], epochs: tuple[int, int],
            dmvae_epochs: tuple[int, int] = (0, 0)) -> tuple[Choice, Choice]:
    """Each direction's kind and hyperparameters (epochs per direction: the MLP's, the DMVAE's)."""
    choices = []
    for d in (0, 1):
        found = board.metrics[d] if cfg.kind not in TRAINED_KINDS else {cfg.kind: board.metrics[d][cfg.kind]}
        kind = _trained_or_simpler(board, d) if cfg.kind == "auto" else max(
            found, key=lambda k: _key(k, found[k]))  # noqa: B023  # used at once, inside the loop
        linear = bases[d] if kind == "mlp" else kind
        params: dict[str, float | int | str] = {}
        if linear == "ridge":
            params["ridge_alpha"] = board.alphas[d]
        if linear in ("cca", "svcca"):
            params["cca_dim"] = cfg.cca_dim
        if linear == "svcca":
            params["svcca_variance"] = SVCCA_VARIANCE
        if kind == "mlp":
            params |= {"base": linear, "epochs": epochs[d]}
        if kind == DMVAE:
            params |= hyperparameters(cfg, dmvae_epochs[d])
        choices.append(Choice(kind, params, found[kind], dict(board.metrics[d])))
    return choices[0], choices[1]


def _trained_or_simpler(board: Board, d: int) -> str:
    """The best kind, a trained kind (MLP, DMVAE) counting only where it beats the best closed-form kind by
    more than one standard error over the folds.

    A trained kind is scored here with each fold's epoch chosen on the other folds (``_nested_r1``), since
    the best point of the mean validation curve flatters it; a lead within the folds' spread is then not
    trusted, and the simpler map ships (for the MLP, the map it grew from: the one-standard-error rule).
    Among the closed-form kind and the trained kinds that pass, the best mean R@1 wins. With one split
    there is no spread to measure, and any lead counts.
    """
    metrics = board.metrics[d]
    closed = {k: m for k, m in metrics.items() if k not in TRAINED_KINDS}
    if not closed:
        return max(metrics, key=lambda k: _key(k, metrics[k]))
    best = max(closed, key=lambda k: _key(k, closed[k]))
    kept = {best: closed[best]}
    for kind in TRAINED_KINDS:
        if kind in metrics:
            if wins(np.asarray(board.fold_r1[d][kind]), np.asarray(board.fold_r1[d][best])):
                kept[kind] = metrics[kind]
    return max(kept, key=lambda k: _key(k, kept[k]))


def wins(candidate: np.ndarray, base: np.ndarray) -> bool:
    """The one-standard-error rule: the candidate's mean lead over the folds beats one standard error of
    that lead (with one fold, any lead). Used by ``auto`` for trained kinds and by ``--joint``."""
    diff = np.subtract(candidate, base)
    margin = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
    return bool(diff.mean() > margin)


def mlp_curve(pair: Pair, prepared: list[FoldData], bases: tuple[str, str], board: Board, cfg: TrainConfig,
              position: int = 0, snapshots: list[list[Fitted]] | None = None) -> tuple[int, int]:
    """Train the MLP on every fold in lockstep; the best epoch per direction on the mean validation curve.

    Epoch 0 is the linear base itself, so an MLP that never beats its start is scored as that start.
    ``snapshots[d]`` receives every fold's MLP at direction d's best epoch.
    """
    runs: list[EpochRun] = [MLPRun(pair, fd.fold.train, fd.stats, board.start(bases, i), cfg)
                            for i, fd in enumerate(prepared)]
    return train_curve(pair, prepared, runs, "mlp", board, cfg, position, snapshots)


def train_curve(pair: Pair, prepared: list[FoldData], runs: list[EpochRun], kind: str, board: Board,
                cfg: TrainConfig, position: int = 0, snapshots: list[list[Fitted]] | None = None) -> tuple[int, int]:
    """Train ``runs`` (one per fold) in lockstep, scoring every fold after each epoch; stop when the mean
    validation curve has not improved for ``cfg.patience`` epochs. Records ``kind`` on the board at each
    direction's best epoch (its per-fold R@1 nested, ``_nested_r1``) and returns those epochs;
    ``snapshots[d]`` receives every fold's run at direction d's best epoch."""
    curve: list[tuple[EdgeMetrics, EdgeMetrics]] = []
    fold_r1: list[tuple[list[float], list[float]]] = []
    _record(curve, fold_r1, _fold_scores(pair, runs, prepared))
    keep = _Snapshots(runs, snapshots)
    keep.offer(curve[0])
    best, stale = _combined(curve[0]), 0
    bar = tqdm(range(cfg.epochs), desc=f"{kind} {pair.name} ({len(runs)} folds)", disable=not cfg.progress,
               position=position, leave=False)
    for _ in bar:
        for run in runs:
            run.epoch()
        _record(curve, fold_r1, _fold_scores(pair, runs, prepared))
        keep.offer(curve[-1])
        if _combined(curve[-1]) > best:
            best, stale = _combined(curve[-1]), 0
        else:
            stale += 1
        bar.set_postfix(cv_r1=f"{best[0]:.3f}")
        if stale >= cfg.patience:
            break
    epochs = []
    for d in (0, 1):
        at = max(range(len(curve)), key=lambda e: (curve[e][d].r1, curve[e][d].mrr, -e))
        epochs.append(at)
        board.metrics[d][kind] = curve[at][d]
        board.fold_r1[d][kind] = _nested_r1([epoch[d] for epoch in fold_r1])
    return epochs[0], epochs[1]


class _Snapshots:
    """Each fold's MLP at each direction's best epoch so far (the earliest on a tie, as ``mlp_curve``)."""

    def __init__(self, runs: list[EpochRun], out: list[list[Fitted]] | None) -> None:
        self.runs, self.out = runs, out
        self.best: list[tuple[float, float] | None] = [None, None]

    def offer(self, scored: tuple[EdgeMetrics, EdgeMetrics]) -> None:
        if self.out is None:
            return
        for d in (0, 1):
            key = (scored[d].r1, scored[d].mrr)
            current = self.best[d]
            if current is None or key > current:
                self.best[d] = key
                self.out[d][:] = [run.snapshot() for run in self.runs]


def linear_start(pair: Pair, bases: tuple[str, str], rows: tuple[np.ndarray, ...],
                 stats: tuple[SpaceStats, SpaceStats], cfg: TrainConfig, alphas: tuple[float, float]) -> Fitted:
    """The MLP's starting maps: each direction's best linear kind."""
    forward = fit_kind(pair, bases[0], rows, stats, cfg, alphas).forward
    backward = fit_kind(pair, bases[1], rows, stats, cfg, alphas).backward
    return Fitted("linear", forward, backward)


def _nested_r1(curves: list[list[float]]) -> list[float]:
    """Each fold's R@1 at the epoch the *other* folds' mean curve picks (``curves[epoch][fold]``).

    The best point of the mean curve is an optimistic score (it was picked on the same folds); scoring
    every fold at an epoch chosen without it is not. With one fold there is nothing to nest.
    """
    r1 = np.asarray(curves)  # epochs x folds
    k = r1.shape[1]
    if k == 1:
        return [float(r1[:, 0].max())]
    found = []
    for fold in range(k):
        others = np.delete(r1, fold, axis=1).mean(axis=1)
        found.append(float(r1[int(np.argmax(others)), fold]))  # argmax: the earliest of tied epochs
    return found


def _fold_scores(pair: Pair, runs: list[EpochRun], prepared: list[FoldData]) -> list[Scored]:
    return [score(pair, Fitted("trained", run.f, run.g), fd) for run, fd in zip(runs, prepared, strict=True)]


def _record(curve: list[tuple[EdgeMetrics, EdgeMetrics]], fold_r1: list[tuple[list[float], list[float]]],
            scored: list[Scored]) -> None:
    """Append one epoch: the mean over folds to ``curve``, each fold's R@1 to ``fold_r1``."""
    curve.append((mean_metrics([s[0] for s in scored]), mean_metrics([s[1] for s in scored])))
    fold_r1.append(([s[0].r1 for s in scored], [s[1].r1 for s in scored]))


def _combined(m: tuple[EdgeMetrics, EdgeMetrics]) -> tuple[float, float]:
    return ((m[0].r1 + m[1].r1) / 2, (m[0].mrr + m[1].mrr) / 2)
