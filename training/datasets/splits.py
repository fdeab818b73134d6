"""Splits by pairing key (`sample`), never by row, so no sample leaks between train, validation and test.

A key's split depends only on the seed and the key itself (a hash), so it is the same for every edge of
a dataset: a sample held out of audio↔text is also held out of text↔image, and routed paths are tested
on samples that no hop saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from latent_bridge.training.datasets.reader import ModalityData


@dataclass(frozen=True)
class Split:
    train: frozenset[str]
    val: frozenset[str]
    test: frozenset[str]


def _unit(seed: int, key: str) -> float:
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_samples(samples: set[str], seed: int, val: float = 0.1, test: float = 0.2) -> Split:
    """Assign each key to train/val/test by a seeded hash of the key."""
    u = {s: _unit(seed, s) for s in samples}
    return Split(
        train=frozenset(s for s, x in u.items() if x >= val + test),
        val=frozenset(s for s, x in u.items() if x < val),
        test=frozenset(s for s, x in u.items() if val <= x < val + test),
    )


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
