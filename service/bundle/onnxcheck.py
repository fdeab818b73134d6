"""Refuse ONNX models whose tensors live outside the file (external data).

A tensor stored as external data names a file that onnxruntime opens when it loads the model, relative to
the model or to the working directory, ``../`` included: a translator could read any file the server
can, and the sha256 in the manifest covers only the ``.onnx`` file. Bundles are self-contained
(docs/architecture.md, "Bundle"), so any tensor with external data is refused before onnxruntime sees the model.

The server has no ``onnx`` package, so this walks the protobuf wire format itself, following only the
fields that can hold a tensor (field numbers of ``onnx.proto``; a test checks them against the ``onnx``
package): initializers, sparse initializers, node attributes, subgraphs, functions and training info.
"""

from __future__ import annotations

from collections.abc import Iterator

MAX_DEPTH = 64  # nested subgraphs; deeper is refused rather than recursed into

# message -> {field number: message it holds}
MODEL, GRAPH, NODE, ATTRIBUTE, TENSOR, SPARSE, TRAINING, FUNCTION = (
    "ModelProto",
    "GraphProto",
    "NodeProto",
    "AttributeProto",
    "TensorProto",
    "SparseTensorProto",
    "TrainingInfoProto",
    "FunctionProto",
)
CHILDREN: dict[str, dict[int, str]] = {
    MODEL: {7: GRAPH, 20: TRAINING, 25: FUNCTION},
    GRAPH: {1: NODE, 5: TENSOR, 15: SPARSE},
    NODE: {5: ATTRIBUTE},
    ATTRIBUTE: {5: TENSOR, 6: GRAPH, 10: TENSOR, 11: GRAPH, 22: SPARSE, 23: SPARSE},
    SPARSE: {1: TENSOR, 2: TENSOR},
    TRAINING: {1: GRAPH, 2: GRAPH},
    FUNCTION: {7: NODE, 11: ATTRIBUTE},
    TENSOR: {},
}
TENSOR_NAME, TENSOR_EXTERNAL_DATA, TENSOR_DATA_LOCATION = 8, 13, 14
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class MalformedModel(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise MalformedModel("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value): a varint's int, or the bytes of a length-delimited field."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise MalformedModel("a field runs past the end")
            value, pos = data[pos : pos + length], pos + length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            value = 0
        else:
            raise MalformedModel(f"wire type {wire}")
        if pos > len(data):
            raise MalformedModel("truncated field")
        yield number, wire, value


def _external(data: memoryview, message: str, depth: int, found: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise MalformedModel(f"subgraphs nested deeper than {MAX_DEPTH}")
    if message == TENSOR:
        name, external = "", False
        for number, wire, value in _fields(data):
            if number == TENSOR_NAME and isinstance(value, memoryview):
                name = bytes(value[:200]).decode("utf-8", errors="replace")
            elif number == TENSOR_EXTERNAL_DATA and wire == 2:
                external = True
            elif number == TENSOR_DATA_LOCATION and wire == 0 and value == EXTERNAL:
                external = True
        if external:
            found.append(name or "(unnamed)")
        return
    children = CHILDREN[message]
    for number, wire, value in _fields(data):
        child = children.get(number)
        if child is not None and wire == 2 and isinstance(value, memoryview):
            _external(value, child, depth + 1, found)


def external_tensors(model: bytes) -> list[str]:
    """Names of the tensors of an ONNX model that keep their data in another file (empty: none)."""
    found: list[str] = []
    _external(memoryview(model), MODEL, 0, found)
    return found
