"""The committed demo dataset (data/demo) loads and is consistent, and a rebuild reproduces it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from latent_bridge.training.datasets.reader import ModalityData, load_modality

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
DIMS = {"image": 1280, "text": 384, "audio": 384}
PAYLOAD = {"image": ["caption", "uri"], "text": ["caption", "uri"], "audio": ["caption", "uri", "source"]}
# The first 4 stamps in path order: two share the caption "A frog.", and frog has an effect and a description.
LIMIT = 4


@pytest.fixture(scope="module")
def committed() -> dict[str, ModalityData]:
    return {m: load_modality(DEMO / f"{m}.parquet") for m in DIMS}


def test_committed_files_load_with_expected_columns(committed: dict[str, ModalityData]) -> None:
    for name, data in committed.items():
        assert data.dim == DIMS[name]
        assert list(data.payload.columns) == PAYLOAD[name]
        assert np.isfinite(data.embeddings).all()
    norms = np.linalg.norm(committed["text"].embeddings, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)  # text is normalised, up to float16 rounding


def test_samples_pair_across_modalities(committed: dict[str, ModalityData]) -> None:
    text = set(committed["text"].samples.tolist())
    assert len(text) == len(committed["text"])  # one text row per caption
    assert set(committed["image"].samples.tolist()) <= text
    assert set(committed["audio"].samples.tolist()) <= text
    sources = set(committed["audio"].payload["source"])
    assert sources == {"espeak", "effect", "description"}


def test_provenance_matches_files(committed: dict[str, ModalityData]) -> None:
    info = json.loads((DEMO / "provenance.json").read_text())
    for name, data in committed.items():
        assert info["counts"][name] == len(data)
    assert "GPL-2.0" in (DEMO / "NOTICE").read_text()


def _assert_same_rows(new: ModalityData, old: ModalityData) -> None:
    where = {i: k for k, i in enumerate(old.ids)}
    assert set(new.ids) <= set(where), f"{new.name}: ids not in the committed dataset"
    for row, id_ in enumerate(new.ids):
        a, b = new.embeddings[row], old.embeddings[where[id_]]
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        least = 0.998 if new.name == "audio" else 0.999  # audio: float32 now, int8 when committed (see encoders)
        assert cosine > least, f"{new.name} {id_}: cosine {cosine:.5f} to the committed row"
        assert new.samples[row] == old.samples[where[id_]]


@pytest.mark.encoders
def test_rebuild_reproduces_committed_rows(tmp_path: Path, committed: dict[str, ModalityData]) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("efficientnet_pytorch")
    pytest.importorskip("faster_whisper")
    from latent_bridge.training.datasets.builders import demo

    if not demo.STAMPS_DIR.is_dir():
        pytest.skip(f"{demo.STAMPS_DIR} missing: apt-get install tuxpaint-stamps-default")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng missing: apt-get install espeak-ng")
    info = demo.build_demo(tmp_path / "out", limit=LIMIT)
    assert info["counts"]["image"] == LIMIT and info["counts"]["text"] == LIMIT - 1
    assert info["counts"]["audio_by_source"].keys() == {"espeak", "effect", "description"}
    for name in DIMS:
        _assert_same_rows(load_modality(tmp_path / "out" / f"{name}.parquet"), committed[name])
