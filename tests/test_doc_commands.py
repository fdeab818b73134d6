"""The docs' shell examples run as written. A block marked ``<!-- doc-test: commands -->`` (see
tests/test_readme.py for the other markers) runs as it is, under bash with ``set -euo pipefail``, in a
scratch folder laid out like the repository root (``data/``, ``.venv/``, and ``models/demo`` = the demo
bundle with its encoders, for the blocks that use it); every command must succeed, and each ``# → text``
line must appear in what the block printed. Each block is its own test, so the two workers share them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from encoder_bundle import EncoderBundles
from test_readme import marked

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def printed(block: str) -> list[str]:
    """The ``# → ...`` lines of a block: what it must print."""
    return [line.strip().removeprefix("# →").strip() for line in block.splitlines() if line.strip().startswith("# →")]


def uses_demo_bundle(block: str) -> bool:
    return "models/demo " in block or "models/demo\n" in block


def cases() -> list[object]:
    found = []
    for block in marked("commands"):
        name = "-".join(dict.fromkeys(re.findall(r"latent-bridge (\w+(?:-\w+)?)", block)))
        marks = [pytest.mark.system] if uses_demo_bundle(block) else []  # the demo bundle needs the Debian media
        found.append(pytest.param(block, marks=marks, id=name))
    return found


def test_the_docs_mark_their_commands() -> None:
    blocks = marked("commands")
    assert len(blocks) >= 3  # indexing, growing the graph, offline translation
    assert all(re.search(r"^(\.venv/bin/)?latent-bridge ", b, re.M) for b in blocks), blocks
    assert any(not uses_demo_bundle(b) for b in blocks)  # at least one runs without the Debian packages


@pytest.mark.parametrize("block", cases())
def test_the_docs_commands_run(block: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    if uses_demo_bundle(block):
        bundles: EncoderBundles = request.getfixturevalue("encoder_bundles")
        (tmp_path / "models" / "demo").symlink_to(bundles.with_encoders)
    (tmp_path / "data").symlink_to(REPO / "data")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True, text=True,
                         timeout=900, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for line in printed(block):
        assert line in run.stdout + run.stderr, (line, run.stdout[-3000:])
