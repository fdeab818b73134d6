"""Turn request vectors (JSON rows or base64 float32) into one checked float32 matrix, and back.

Checks come before any model runs, so a bad request costs little: one of ``vector``/``vectors``, batch
size within the limit, the modality's dimension, finite values. Base64 follows OpenAI's embeddings API:
the little-endian float32 bytes of all values, row after row.
"""

from __future__ import annotations

import binascii

import numpy as np
from latent_bridge.service.api.schemas import Encoding
from latent_bridge.service.errors import (
    BatchTooLarge,
    DimensionMismatch,
    EmptyBatch,
    MalformedVectors,
    NonFiniteInput,
    VectorTooLong,
)
from latent_bridge.service.galleries.backend import Matrix
from latent_bridge.service.inputs.b64 import b64decode, b64encode

FLOAT32_LE = np.dtype("<f4")
FLOAT_SIZE = 4

RawVectors = list[list[float]] | list[float] | str | None


def _pick(
    vectors: list[list[float]] | str | None, vector: list[float] | str | None
) -> tuple[RawVectors, bool]:
    if vectors is not None and vector is not None:
        raise MalformedVectors("give either `vector` or `vectors`, not both")
    if vectors is None and vector is None:
        raise EmptyBatch("no input: give `vector` (one) or `vectors` (a batch)")
    return (vector, True) if vector is not None else (vectors, False)


def count_values(vectors: list[list[float]] | str | None, vector: list[float] | str | None) -> int:
    """A cheap upper estimate of the numbers sent, to decide whether work may run on the event loop."""
    raw = vector if vector is not None else vectors
    if raw is None:
        return 0
    if isinstance(raw, str):
        return len(raw) * 3 // 4 // FLOAT_SIZE
    if raw and isinstance(raw[0], list):
        return len(raw) * len(raw[0])
    return len(raw)


def _check_finite(x: Matrix) -> None:
    finite = np.isfinite(x)
    if not finite.all():
        rows = np.flatnonzero(~finite.all(axis=1))
        raise NonFiniteInput(
            f"{len(rows)} input vector(s) contain NaN or infinity (after conversion to float32), "
            f"first at row {int(rows[0])}",
            rows=rows[:20].tolist(),
        )


def _from_base64(text: str, modality: str, dim: int, max_batch: int) -> Matrix:
    limit_chars = 4 * ((max_batch * dim * FLOAT_SIZE + 2) // 3)
    if len(text) > limit_chars:
        raise BatchTooLarge(got=len(text) * 3 // 4 // (dim * FLOAT_SIZE), limit=max_batch)
    try:
        raw = b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedVectors(f"vectors are not valid base64 ({exc})") from exc
    if len(raw) % FLOAT_SIZE:
        raise MalformedVectors(f"base64 decodes to {len(raw)} bytes, not a whole number of float32 values")
    values = len(raw) // FLOAT_SIZE
    if values % dim:
        raise DimensionMismatch(
            modality,
            dim,
            values,
            detail=(
                f"base64 holds {values} float32 values, not a whole number of {modality!r} vectors "
                f"of {dim} dimensions"
            ),
        )
    x: Matrix = (
        np.frombuffer(raw, dtype=FLOAT32_LE).astype(np.float32, copy=False).reshape(values // dim, dim)
    )
    return x


def _from_rows(rows: list[list[float]], modality: str, dim: int) -> Matrix:
    for i, row in enumerate(rows):
        if len(row) != dim:
            raise DimensionMismatch(modality, dim, len(row), row=i)
    with np.errstate(over="ignore"):
        x: Matrix = np.array(rows, dtype=np.float32)
    return x


def decode(
    vectors: list[list[float]] | str | None,
    vector: list[float] | str | None,
    encoding: Encoding,
    modality: str,
    dim: int,
    max_batch: int,
    max_length: int | None = None,
) -> Matrix:
    """One (n, dim) C-contiguous float32 matrix, or a ``ServiceError`` saying what is wrong.

    ``max_length`` bounds one vector's values whatever the modality (``VectorTooLong``, before the
    dimension check); for a base64 batch, whose rows are not delimited, only ``vector`` is bounded."""
    raw, single = _pick(vectors, vector)
    if encoding == "base64":
        if not isinstance(raw, str):
            raise MalformedVectors("encoding is 'base64' but the vectors are not a base64 string")
        if single and max_length is not None and len(raw) * 3 // 4 // FLOAT_SIZE > max_length:
            raise VectorTooLong(got=len(raw) * 3 // 4 // FLOAT_SIZE, limit=max_length, row=0)
        x = _from_base64(raw, modality, dim, max_batch)
        if single and len(x) != 1:
            raise MalformedVectors(f"`vector` holds {len(x)} vectors; send a batch as `vectors`")
    else:
        if isinstance(raw, str):
            raise MalformedVectors("the vectors are a string; set encoding to 'base64' to send base64")
        rows: list[list[float]] = [raw] if single else raw  # type: ignore[list-item,assignment]
        if len(rows) > max_batch:
            raise BatchTooLarge(got=len(rows), limit=max_batch)
        if max_length is not None:
            for i, row in enumerate(rows):
                if len(row) > max_length:
                    raise VectorTooLong(got=len(row), limit=max_length, row=i)
        x = _from_rows(rows, modality, dim)
    if len(x) == 0:
        raise EmptyBatch(f"no vectors given; send between 1 and {max_batch}", limit=max_batch)
    if len(x) > max_batch:
        raise BatchTooLarge(got=len(x), limit=max_batch)
    _check_finite(x)
    return x


def encode(x: Matrix, encoding: Encoding) -> Matrix | str:
    """The answer's vectors: a base64 string, or the float32 matrix that ``json_bytes`` writes as rows."""
    if encoding == "base64":
        return b64encode(np.ascontiguousarray(x, dtype=FLOAT32_LE).tobytes()).decode("ascii")
    return np.ascontiguousarray(x, dtype=np.float32)
