"""Fixtures of the reliability tests: two small real bundles (so a reload visibly changes the bundle
served) and writable copies to damage.

- ``bundle_one``: modalities a, b (8-d), edges a↔b (ridge), galleries for both.
- ``bundle_two``: the same shape trained on other data: another fingerprint, other weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability_bundles import train_bundle


@pytest.fixture(scope="session")
def bundles_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="session")
def bundle_one(bundles_root: Path) -> Path:
    return train_bundle(bundles_root, "one", seed=0)


@pytest.fixture(scope="session")
def bundle_two(bundles_root: Path) -> Path:
    return train_bundle(bundles_root, "two", seed=1)

