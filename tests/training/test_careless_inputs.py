"""What a careless operator does to training: null keys, huge ids, bad names, an existing --out, a killed
run's leftovers, a full disk. Each is refused early, in one line, or cleaned up."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from latent_bridge.cli import main
from latent_bridge.training.bundling.writer import OWNER_FILE, BundleWriteError, staged_bundle
from latent_bridge.training.datasets.reader import MAX_KEY_CHARS, DatasetError, load_modality


def _write(tmp_path: Path, name: str = "text", **columns: object) -> Path:
    n = 3
    frame = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "sample": [f"s{i}" for i in range(n)],
                          "embedding": list(np.ones((n, 4), dtype=np.float32))})
    for column, values in columns.items():
        frame[column] = values
    path = tmp_path / f"{name}.parquet"
    frame.to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"sample": ["s0", None, "s2"]}, "1 empty 'sample' values (null), first at row 1"),
        ({"id": ["r0", "r1", None]}, "1 empty 'id' values (null), first at row 2"),
        ({"id": ["r0", "x" * (10 * MAX_KEY_CHARS), "r2"]}, f"'id' values must be at most {MAX_KEY_CHARS} characters"),
    ],
)
def test_bad_keys_are_refused_naming_the_file(tmp_path: Path, columns: dict[str, object], message: str) -> None:
    path = _write(tmp_path, **columns)
    with pytest.raises(DatasetError) as error:
        load_modality(path)
    assert str(error.value).startswith(str(path)) and message in str(error.value)
    assert "xxxxxxxxxx" * 20 not in str(error.value)  # the long id itself is not echoed


def test_a_bad_modality_name_is_refused_when_the_file_is_read(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="must match"):
        load_modality(_write(tmp_path, name="Audio-V2"))


def test_an_existing_out_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    with pytest.raises(SystemExit) as stop:  # the data folder does not even exist: nothing was trained
        main(["train", "--data", str(tmp_path / "no-such-data"), "--out", str(out)])
    assert "a bundle already exists there" in str(stop.value) and stop.value.code == 2


def test_a_killed_runs_temp_folder_is_removed_by_the_next_run(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "models" / "b"
    out.parent.mkdir()
    stale, live = out.parent / ".b.tmp-killed", out.parent / ".b.tmp-running"
    for folder, pid in ((stale, dead.stdout.strip()), (live, "1")):
        folder.mkdir()
        (folder / OWNER_FILE).write_text(pid)
    with staged_bundle(out) as staging:
        (staging / "manifest.json").write_text("{}")
    assert out.is_dir() and not (out / OWNER_FILE).exists()
    assert not stale.exists()  # its writer is gone
    assert live.exists()  # pid 1 is alive: another run may still be writing


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "b"
    with pytest.raises(BundleWriteError, match="no space left"), staged_bundle(out):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert not out.exists() and list(tmp_path.iterdir()) == []
