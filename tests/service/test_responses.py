"""Answers written in pieces: the same JSON as one call, float32 values exact, nothing orjson lacks lost."""

from __future__ import annotations

import decimal
import json

import numpy as np
import orjson
import pydantic_core
import pytest
from latent_bridge.service.api import responses
from latent_bridge.service.api.responses import CHUNK_ITEMS, CHUNK_VALUES, json_bytes


def test_a_big_matrix_is_written_in_pieces_with_every_float32_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(0).standard_normal((1024, 1280)).astype(np.float32)
    calls: list[int] = []
    dumps = orjson.dumps

    def counted(value: object, **kwargs: object) -> bytes:
        calls.append(value.size if isinstance(value, np.ndarray) else 0)
        return dumps(value, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(responses.orjson, "dumps", counted)
    answer = json.loads(json_bytes({"count": len(x), "vectors": x}))
    assert answer["count"] == 1024
    np.testing.assert_array_equal(np.asarray(answer["vectors"], dtype=np.float32), x)
    pieces = [n for n in calls if n]
    assert len(pieces) > 1 and max(pieces) <= CHUNK_VALUES and sum(pieces) == x.size, pieces[:5]


def test_long_lists_and_small_values_write_the_same_json_as_one_call() -> None:
    hits = [{"id": f"i/{i}", "score": i / 7, "payload": {"n": i, "tags": ["a"]}} for i in range(3 * CHUNK_ITEMS + 5)]
    content = {"results": hits, "empty": [], "none": np.zeros((0, 4), np.float32), "one": np.ones((1, 3), np.float32)}
    expected = {"results": hits, "empty": [], "none": [], "one": [[1.0, 1.0, 1.0]]}
    assert json.loads(json_bytes(content)) == json.loads(orjson.dumps(expected))


def test_what_orjson_lacks_is_written_as_pydantic_would_and_non_finite_as_null() -> None:
    payload = {"price": decimal.Decimal("1.25"), "raw": b"abc", "tags": {"x"}}
    assert json.loads(json_bytes({"payload": payload})) == {"payload": json.loads(pydantic_core.to_json(payload))}
    assert json.loads(json_bytes({"v": np.array([[np.inf, 1.0]], dtype=np.float32)})) == {"v": [[None, 1.0]]}
