"""bench/unpaired_languages.py on tiny synthetic data: the emoji-name loader, one run and the docs table.
Behaviour only (no encoder, no ``emoji`` package); the real numbers live in docs/migration.md."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from scripts import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "unpaired_languages.py"

DATA = {
    "🐶": {"en": ":dog_face:", "de": ":hundegesicht:", "status": 2},
    "☺️": {"en": ":smiling_face:", "de": ":lächelndes_gesicht:", "status": 2},
    "☺": {"en": ":smiling_face:", "de": ":lächelndes_gesicht:", "status": 4},  # unqualified
    "🕺🏻": {"en": ":man_dancing_light_skin_tone:", "de": ":tanzender_mann_helle_hautfarbe:", "status": 2},
    "🐱": {"en": ":cat_face:", "status": 2},  # no German name
    "🐕": {"en": ":Dog_Face:", "de": ":hund:", "status": 2},  # English name a duplicate (casefolded)
    "🏻": {"en": ":light_skin_tone:", "de": ":helle_hautfarbe:", "status": 1},  # component
}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script(SCRIPT, "bench_unpaired_languages")


def test_clean(bench: ModuleType) -> None:
    assert bench.clean(":tanzender_mann__helle_hautfarbe:") == "tanzender mann helle hautfarbe"
    assert bench.clean(":St._Kitts_&_Nevis:") == "St. Kitts & Nevis"


def test_names_fully_qualified_deduplicated_in_hash_order(bench: ModuleType) -> None:
    names = bench.emoji_names(DATA)
    assert {n.en.casefold() for n in names} == {"dog face", "smiling face", "man dancing light skin tone"}
    assert len(names) == 3 and [n.skin_tone for n in names].count(True) == 1
    assert {n.emoji for n in names} <= {"🐶", "🐕", "☺️", "🕺🏻"}  # one of the two dog faces, whichever hashes first
    reordered = bench.emoji_names(dict(reversed(list(DATA.items()))))
    assert names == reordered  # the package's order does not matter
    no_tones = bench.emoji_names(DATA, skin_tones=False)
    assert [n.en for n in no_tones] == [n.en for n in names if not n.skin_tone]


def test_run_one_and_table(bench: ModuleType) -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    xa = centres[rng.integers(0, 6, 260)] + 0.3 * rng.normal(size=(260, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    xb = xa @ q
    runs = [{"subset": "all", **bench.run_one(xa, xb, k, 0, gallery=60, max_pairs=40)} for k in (0, 40)]
    assert runs[0]["gallery"] == 60 and runs[0]["training_rows"] == 200
    assert "ridge_ab_r1" not in runs[0] and 0.0 <= runs[1]["ridge_ba_r1"] <= 1.0
    assert runs[1]["procrustes_ab_r1"] > 0.95 and runs[1]["procrustes_ba_r1"] > 0.95
    assert runs[1]["unpaired_ab_r1"] > 0.95 and runs[1]["unpaired_ba_r1"] > 0.95
    ceil = bench.ceiling(xa, xb, 0, gallery=60, max_pairs=40)
    info = {"samples": 260, "skin_tone_variants": 0, "ceiling": [ceil], "isometry": bench.isometry(xa, xb, n=100)}
    assert info["isometry"] > 0.99  # a rotation keeps every pairwise cosine
    report = {"seeds": [0], "runs": runs, "subsets": {"all": info}}
    table = bench.markdown(report)
    assert "| 0 | " in table and "n/a" in table and "| 40 | " in table
