"""Fixtures every suite shares (helpers that are not fixtures live in tests/support)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def bundle_copy(tmp_path: Path) -> Callable[[Path], Path]:
    """A writable copy of a session bundle (same folder name), for tests that damage or edit it."""

    def copy(bundle: Path) -> Path:
        return Path(shutil.copytree(bundle, Path(tempfile.mkdtemp(dir=tmp_path)) / bundle.name))

    return copy
