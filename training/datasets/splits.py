"""Splits by pairing key (`sample`), never by row, so no sample leaks between fit, validation and test.

A key's place depends only on the seed and the key itself (a hash), so it is the same for every edge of
a dataset: a sample held out of audio↔text is also held out of text↔image, and routed paths are judged
on samples that no hop saw. Two independent hashes decide (1) the optional test hold-out and (2) the
cross-validation fold of each remaining key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from latent_bridge.training.datasets.reader import ModalityData


@dataclass(frozen=True)
class Fold:
    """One round of cross-validation: fit on ``train``, score on ``val``."""

    train: frozenset[str]
    val: frozenset[str]


def _unit(seed: int, key: str, salt: str = "") -> float:
    h = hashlib.sha256(f"{salt}{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def holdout_split(samples: set[str], seed: int, fraction: float) -> tuple[frozenset[str], frozenset[str]]:
    """(usable, test): a seeded-hash ``fraction`` of the keys is kept out of training altogether."""
    test = frozenset(s for s in samples if _unit(seed, s) < fraction)
    return frozenset(samples) - test, test


def cv_folds(samples: frozenset[str], seed: int, k: int, val_fraction: float = 0.2,
             max_val: int = 4000) -> list[Fold]:
    """``k`` folds by a seeded hash of the key (``k == 1``: one split scoring ``val_fraction`` of the keys,
    at most about ``max_val`` of them: a score over thousands of samples is precise enough, and every
    key not scored is one more to fit on)."""
    u = {s: _unit(seed, s, salt="fold:") for s in samples}
    if k == 1:
        cut = min(val_fraction, max_val / max(1, len(u)))
        val = frozenset(s for s, x in u.items() if x < cut)
        return [Fold(train=samples - val, val=val)]
    groups = [frozenset(s for s, x in u.items() if int(x * k) == i) for i in range(k)]
    return [Fold(train=samples - g, val=g) for g in groups]


@dataclass(frozen=True)
class Split:
    """The samples a bundle's final fit used (``train``) and the ones it held out (``test``)."""

    train: frozenset[str]
    test: frozenset[str]


def bundle_split(training: Mapping[str, object], samples: set[str], seed: int | None = None) -> Split:
    """The split a bundle's training record made of ``samples`` (``test`` empty when it fit every pair)."""
    seed = training.get("seed", 0) if seed is None else seed  # type: ignore[assignment]
    fraction = training.get("holdout", 0.0)
    if not isinstance(seed, int) or not isinstance(fraction, int | float):
        raise ValueError("the manifest's training record has no usable seed/holdout")
    usable, test = holdout_split(samples, seed, float(fraction))
    return Split(train=usable, test=test)


def paired_rows(
    a: ModalityData, b: ModalityData, samples: frozenset[str] | set[str], max_per_sample: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Row index pairs (i in a, j in b) with the same key in ``samples``.

    A key repeated on both sides gives its cross product, capped at ``max_per_sample`` pairs per key so
    one sample with many captions does not dominate training.
    """
    by_key_b: dict[str, list[int]] = {}
    for j in b.rows_of(set(samples)):
        by_key_b.setdefault(b.samples[j], []).append(int(j))
    ia: list[int] = []
    ib: list[int] = []
    taken: dict[str, int] = {}
    for i in a.rows_of(set(samples)):
        key = a.samples[i]
        for j in by_key_b.get(key, []):
            if taken.get(key, 0) >= max_per_sample:
                break
            ia.append(int(i))
            ib.append(j)
            taken[key] = taken.get(key, 0) + 1
    return np.asarray(ia, dtype=np.int64), np.asarray(ib, dtype=np.int64)
