"""A training run killed at any moment leaves either no bundle or a whole one, never half of one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from latent_bridge.service.bundle.manifest import read_manifest
from latent_bridge.training.bundling.writer import sha256_bytes
from latent_bridge.training.datasets.builders.synthetic import make_dataset


def _whole(bundle: Path) -> bool:
    manifest = read_manifest(bundle)
    files = [(e.file, e.sha256) for e in manifest.edges] + [(g.index_file, g.index_sha256) for g in manifest.galleries]
    return all(sha256_bytes((bundle / f).read_bytes()) == digest for f, digest in files)


def _staging(models: Path) -> list[Path]:
    return list(models.glob(".killed.tmp-*")) if models.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["training", "writing"])
def test_killed_training_leaves_no_half_bundle(tmp_path: Path, moment: str) -> None:
    """Killed while it trains (nothing written yet) or as soon as the bundle's temp folder appears."""
    data = make_dataset(tmp_path / "data", n=400, dims={"a": 32, "b": 24, "c": 16}, relation="nonlinear")
    models = tmp_path / "models"
    out = models / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "latent_bridge.cli", "train", "--data", str(data), "--out", str(out), "--epochs", "8",
         "--quiet"],
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 300
    if moment == "training":
        time.sleep(2.0)
    else:
        while not _staging(models) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    killed_early = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert killed_early, "the run ended before the moment to kill it"
    assert not out.exists(), "a bundle appeared although the run was killed before it finished"
    if moment == "writing":
        assert _staging(models), "killed mid-write: the hidden temp folder is what remains"
    visible = [p.name for p in models.iterdir() if not p.name.startswith(".")] if models.exists() else []
    assert visible == []


@pytest.mark.slow
def test_a_finished_run_leaves_a_whole_bundle(tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "data", n=200, dims={"a": 16, "b": 8}, relation="linear")
    out = tmp_path / "models" / "done"
    subprocess.run([sys.executable, "-m", "latent_bridge.cli", "train", "--data", str(data), "--out", str(out),
                    "--kind", "ridge", "--quiet"], check=True, timeout=300)
    assert _whole(out) and [p.name for p in out.parent.iterdir()] == ["done"]
