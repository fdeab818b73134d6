"""A training run killed at any moment leaves either no bundle or a whole one, never half of one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from latent_bridge.service.manifest import read_manifest
from latent_bridge.training.bundle import sha256_bytes
from latent_bridge.training.datasets.synthetic import make_dataset


def _whole(bundle: Path) -> bool:
    manifest = read_manifest(bundle)
    files = [(e.file, e.sha256) for e in manifest.edges] + [(g.index_file, g.index_sha256) for g in manifest.galleries]
    return all(sha256_bytes((bundle / f).read_bytes()) == digest for f, digest in files)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.5, 2.0, 4.0, 5.5, 6.0, 15.0])
def test_killed_training_leaves_no_half_bundle(tmp_path: Path, delay: float) -> None:
    data = make_dataset(tmp_path / "data", n=400, dims={"a": 32, "b": 24, "c": 16}, relation="nonlinear")
    out = tmp_path / "models" / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "latent_bridge.cli", "train", "--data", str(data), "--out", str(out), "--epochs", "8",
         "--quiet"],
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists() or _whole(out)
    visible = [p.name for p in out.parent.iterdir() if not p.name.startswith(".")] if out.parent.exists() else []
    assert visible in ([], ["killed"])
