"""bench/load.py (`make bench`) on the demo bundle with its encoders: it drives every default request, as
served, beside the anchor app, and reports each with no errors. Behaviour only: it never checks a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from encoder_bundle import EncoderBundles
from scripts import load_script

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "load.py"
ROUTES = [("audio", "text"), ("audio", "image"), ("image", "text"), ("image", "audio"), ("text", "image"),
          ("text", "audio")]


def load_module() -> ModuleType:
    return load_script(SCRIPT, "bench_load")


@pytest.fixture(scope="module")
def report(encoder_bundles: EncoderBundles, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "load.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--bundle", str(encoder_bundles.with_encoders), "--seconds", "1",
         "--slice", "1", "--max-requests", "400", "--connections", "4", "--batch", "16", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "| request |" in result.stdout
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def test_every_default_request_is_driven_without_errors(report: dict[str, Any]) -> None:
    rows = report["scenarios"]
    names = [(row["name"], row["connections"]) for row in rows]
    assert len(names) == len(set(names)), names
    groups = [row["group"] for row in rows]
    assert groups.count("anchor") == 2 and groups.count("health") == 1
    assert groups.count("translate") == 3  # one vector (JSON), a batch (JSON and base64)
    assert groups.count("retrieve") == 2 * len(ROUTES)  # by vector and by id on every route
    assert groups.count("raw") == 6 and groups.count("embed") == 1  # text, image, audio at c=1 and c=4
    for source, target in ROUTES:
        on_route = [r for r in rows if r["group"] == "retrieve" and (r["route"][0], r["route"][-1]) == (source, target)]
        assert {r["name"].split()[0] for r in on_route} == {"POST", "GET"}, (source, target)
    raw = [r for r in rows if r["group"] == "raw"]
    assert {r["name"].split()[2] for r in raw} == {"text", "image", "audio"}
    assert sorted({r["connections"] for r in raw}) == [1, 4]
    for row in rows:  # served: some requests answered, none failed (load shedding, 503 + Retry-After, is apart)
        assert row["errors"] == 0, row
        assert row["requests"] > 0, row
        assert row["rps"] > 0 and row["p50_ms"] is not None and row["p99_ms"] is not None
        if row["group"] in ("retrieve", "raw"):
            assert row["strategy"] in ("chain", "pivot", "fused"), row  # as served, read from the response
    assert all(row["vs_echo"] is not None for row in rows)


def test_the_readme_table_is_rewritten_between_its_markers(report: dict[str, Any], tmp_path: Path) -> None:
    load = load_module()
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Performance\n\nbefore\n\n{load.BEGIN}\nold\n{load.END}\n\nafter\n\n## Next\n")
    load.write_readme(report, readme)
    text = readme.read_text()
    assert "old" not in text and text.startswith("# x\n\n## Performance\n\nbefore\n\n")
    assert text.endswith(f"{load.END}\n\nafter\n\n## Next\n")
    table = text.split(load.BEGIN)[1].split(load.END)[0]
    assert table.count("\n|") == 2 + len(report["scenarios"])  # header, rule, one row per scenario
    assert "load average" in table
