"""The printed answers of the README and the docs pages are the server's: their marked queries and Python
client examples run against the demo bundle (trained from data/demo, with its encoders, as `make demo`
builds it) served by a real `latent-bridge serve` process, and what they print must be what the page shows.

A page marks what is checked with an HTML comment right before a fenced block:

- ``<!-- doc-test: queries -->``: lines ``curl -s 'localhost:8000/<path>'``, each followed by its answer
  on comment lines ``# → ...`` (continued by ``#   ...``). A ``/retrieve`` answer lists hits as
  ``label score · label score · ...`` (label: the caption, the id, or the id without its ``modality:``
  prefix; score to 2 decimals), in order, ending with ``…`` when it shows fewer than ``k``, and optionally
  ``(searched: <strategy>[ + CSLS][ in <pivot> space])``. A ``/route`` answer reads
  ``path a → b → c, fidelity 0.17, searched: <strategy>[ + CSLS] in <pivot> space``.
- ``<!-- doc-test: client -->``: a Python block whose trailing ``# ...`` comment lines are exactly what
  the code above them prints (run from the repository root, ``http://localhost:8000`` pointing at the
  test's server).
- ``<!-- doc-test: commands -->``: a shell block of commands, run by tests/test_doc_commands.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from encoder_bundle import EncoderBundles
from serverprocess import Server, running_server

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").rglob("*.md"))]
MARK = "<!-- doc-test: {} -->"
CURL = re.compile(r"^curl -s '?localhost:8000(/[^' ]+)'?\s*$")
HIT = re.compile(r"^(?P<label>.+) (?P<score>-?\d+\.\d\d)$")
SEARCHED = re.compile(
    r"\(searched: (?P<strategy>chain|pivot|fused)(?P<csls> \+ CSLS)?(?: in (?P<pivot>\w+) space)?\)\s*$"
)
ROUTE = re.compile(
    r"^path (?P<path>\w+(?: → \w+)+), fidelity (?P<fidelity>\d\.\d\d), "
    r"searched: (?P<strategy>chain|pivot|fused)(?P<csls> \+ CSLS)? in (?P<pivot>\w+) space$"
)


@dataclass(frozen=True)
class Query:
    path: str
    answer: str


def blocks(text: str, name: str) -> list[str]:
    """The fenced blocks right after each ``<!-- doc-test: name -->`` marker."""
    found = []
    for match in re.finditer(re.escape(MARK.format(name)) + r"\s*\n```[\w-]*\n(.*?)\n```", text, re.S):
        found.append(match.group(1))
    return found


def queries(block: str) -> list[Query]:
    """Each ``curl`` line of a block with its ``# → ...`` answer (continuation lines joined)."""
    found: list[Query] = []
    lines = block.splitlines()
    for i, line in enumerate(lines):
        match = CURL.match(line.strip())
        if not match:
            continue
        answer: list[str] = []
        for following in lines[i + 1:]:
            stripped = following.strip()
            if stripped.startswith("# →") and not answer:
                answer.append(stripped.removeprefix("# →").strip())
            elif stripped.startswith("#   ") and answer:
                answer.append(stripped.removeprefix("#").strip())
            else:
                break
        assert answer, f"README query {line!r} shows no answer (# → ...)"
        found.append(Query(match.group(1), " ".join(answer)))
    return found


def labels(hit: dict[str, Any], modality: str) -> set[str]:
    names = {hit["id"], hit["id"].removeprefix(f"{modality}:")}
    caption = (hit.get("payload") or {}).get("caption")
    return names | ({caption} if caption else set())


def check_retrieve(query: Query, body: dict[str, Any]) -> list[str]:
    problems = []
    answer = query.answer
    searched = SEARCHED.search(answer)
    if searched:
        answer = answer[: searched.start()].strip()
        if body["strategy"] != searched["strategy"]:
            problems.append(f"searched {body['strategy']}, README says {searched['strategy']}")
        if (body["hubness"] == "csls") != bool(searched["csls"]):
            problems.append(f"hubness {body['hubness']}, README says{searched['csls'] or ' no CSLS'}")
        if searched["pivot"] and body["pivot"] != searched["pivot"]:
            problems.append(f"pivot {body['pivot']}, README says {searched['pivot']}")
    shown = [part.strip() for part in answer.split(" · ")]
    truncated = shown[-1] == "…"
    if truncated:
        shown = shown[:-1]
    hits = body["results"][0]["hits"]
    if not truncated and len(shown) != len(hits):
        problems.append(f"README shows {len(shown)} hits without '…', the server answers {len(hits)}")
    for position, part in enumerate(shown):
        match = HIT.match(part)
        if not match:
            problems.append(f"cannot read hit {part!r} (label score)")
            continue
        if position >= len(hits):
            problems.append(f"README shows more hits than the server's {len(hits)}")
            break
        hit = hits[position]
        # hits with exactly the same score may come in either order: match within the tie
        tied = [h for h in hits if h["score"] == hit["score"]]
        if not any(match["label"] in labels(h, body["to"]) for h in tied):
            problems.append(f"hit {position + 1}: README {match['label']!r}, server {sorted(labels(hit, body['to']))}")
        served = f"{hit['score']:.2f}"
        if served != match["score"]:
            problems.append(f"hit {position + 1} ({match['label']}): README {match['score']}, server {served}")
    return problems


def check_route(query: Query, body: dict[str, Any]) -> list[str]:
    match = ROUTE.match(query.answer)
    if not match:
        return [f"cannot read the route answer {query.answer!r}"]
    strategy = body["strategy"]
    served = {
        "path": " → ".join(body["best"]["path"]),
        "fidelity": f"{body['best']['fidelity']:.2f}",
        "strategy": strategy["strategy"],
        "csls": " + CSLS" if strategy["hubness"] == "csls" else None,
        "pivot": strategy["pivot"],
    }
    return [f"{key}: README {match[key]!r}, server {value!r}" for key, value in served.items() if match[key] != value]


def marked(name: str) -> list[str]:
    """The blocks marked ``name`` on every page (the README, then docs/ in name order)."""
    return [block for page in PAGES for block in blocks(page.read_text(), name)]


def test_the_readme_marks_its_checked_examples() -> None:
    """Without a server: the markers are there and every marked query can be read."""
    text = README.read_text()
    assert blocks(text, "client"), "README has no <!-- doc-test: client --> block"
    assert len(marked("client")) >= 2 and len(marked("queries")) >= 3  # README, docs/api.md, docs/strategies.md
    marked_queries = [q for block in marked("queries") for q in queries(block)]
    assert len(marked_queries) >= 6, marked_queries
    assert any(q.path.startswith("/route") for q in marked_queries)
    for query in marked_queries:
        if query.path.startswith("/retrieve"):
            answer = SEARCHED.sub("", query.answer).strip()
            assert all(HIT.match(p.strip()) for p in answer.split(" · ") if p.strip() != "…"), query
        else:
            assert ROUTE.match(query.answer), query
    assert "models/demo/index/audio.parquet" not in text  # the bundle has no such file any more
    assert len(marked("commands")) >= 3  # training, indexing and offline translation (docs pages)


@pytest.fixture(scope="module")
def server(encoder_bundles: EncoderBundles) -> Iterator[Server]:
    with running_server(encoder_bundles.with_encoders) as running:
        yield running


@pytest.mark.slow
@pytest.mark.encoders
def test_the_readme_queries_answer_what_it_prints(server: Server) -> None:
    problems = []
    for query in (q for block in marked("queries") for q in queries(block)):
        answer = httpx.get(server.base + query.path, timeout=30)
        assert answer.status_code == 200, (query.path, answer.text)
        check = check_retrieve if query.path.startswith("/retrieve") else check_route
        problems += [f"{query.path}: {problem}" for problem in check(query, answer.json())]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.encoders
def test_the_readme_client_example_prints_what_it_shows(server: Server) -> None:
    for block in marked("client"):
        lines = block.splitlines()
        split = len(lines)
        while split and lines[split - 1].startswith("# "):
            split -= 1
        code = "\n".join(lines[:split]).replace("http://localhost:8000", server.base)
        expected = [line.removeprefix("# ") for line in lines[split:]]
        assert expected, "the client block shows no printed output (trailing '# ...' lines)"
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.splitlines() == expected, run.stdout
