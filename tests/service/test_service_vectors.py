"""Decoding request vectors: JSON rows and base64 float32, and every way they can be wrong."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from latent_bridge.service.api import vectors
from latent_bridge.service.api.responses import json_bytes
from latent_bridge.service.api.vectors import decode, encode
from latent_bridge.service.errors import BatchTooLarge, DimensionMismatch, EmptyBatch, MalformedVectors, NonFiniteInput


def b64(x: np.ndarray) -> str:
    return base64.b64encode(np.asarray(x, dtype="<f4").tobytes()).decode()


def test_rows_and_base64_decode_to_the_same_matrix() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    from_rows = decode(x.tolist(), None, "float", "a", 4, 10)
    from_b64 = decode(b64(x), None, "base64", "a", 4, 10)
    assert from_rows.dtype == np.float32 and from_rows.flags.c_contiguous
    np.testing.assert_array_equal(from_rows, x)
    np.testing.assert_array_equal(from_b64, x)
    np.testing.assert_array_equal(decode(None, x[0].tolist(), "float", "a", 4, 10), x[:1])
    np.testing.assert_array_equal(decode(None, b64(x[0]), "base64", "a", 4, 10), x[:1])


def test_the_standard_library_codec_gives_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)
    fast = (decode(b64(x), None, "base64", "a", 5, 10), encode(x, "base64"))
    monkeypatch.setattr(vectors, "b64decode", base64.b64decode)
    monkeypatch.setattr(vectors, "b64encode", base64.b64encode)
    np.testing.assert_array_equal(decode(b64(x), None, "base64", "a", 5, 10), fast[0])
    assert encode(x, "base64") == fast[1]
    with pytest.raises(MalformedVectors):
        decode("@@", None, "base64", "a", 5, 10)


def test_encode_round_trips() -> None:
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(decode(encode(x, "base64"), None, "base64", "a", 3, 10), x)  # type: ignore[arg-type]
    rows = json.loads(json_bytes({"vectors": encode(x, "float")}))["vectors"]
    np.testing.assert_array_equal(np.asarray(rows, dtype=np.float32), x)


@pytest.mark.parametrize(
    ("vectors", "vector", "encoding", "error", "message"),
    [
        (None, None, "float", EmptyBatch, "no input"),
        ([], None, "float", EmptyBatch, "no vectors"),
        ("", None, "base64", EmptyBatch, "no vectors"),
        ([[1.0] * 4], [1.0] * 4, "float", MalformedVectors, "not both"),
        ([[1.0] * 4, [1.0] * 3], None, "float", DimensionMismatch, "got 3 (row 1)"),
        ([[1.0] * 4] * 11, None, "float", BatchTooLarge, "limit is 10"),
        ([[1.0, float("nan"), 0, 0]], None, "float", NonFiniteInput, "first at row 0"),
        ([[1.0, 0, 0, 0], [1e39, 0, 0, 0]], None, "float", NonFiniteInput, "first at row 1"),
        ("not base64!", None, "base64", MalformedVectors, "not valid base64"),
        (base64.b64encode(b"abcde").decode(), None, "base64", MalformedVectors, "whole number of float32"),
        (b64(np.zeros(6)), None, "base64", DimensionMismatch, "not a whole number of 'a' vectors"),
        (b64(np.zeros((11, 4))), None, "base64", BatchTooLarge, "limit is 10"),
        (b64(np.full((1, 4), np.inf)), None, "base64", NonFiniteInput, "NaN or infinity"),
        ([[1.0] * 4], None, "base64", MalformedVectors, "not a base64 string"),
        (b64(np.zeros((1, 4))), None, "float", MalformedVectors, "set encoding to 'base64'"),
        (None, b64(np.zeros((2, 4))), "base64", MalformedVectors, "send a batch as `vectors`"),
    ],
)
def test_bad_vectors_say_what_is_wrong(
    vectors: object, vector: object, encoding: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(vectors, vector, encoding, "a", 4, 10)  # type: ignore[arg-type]
