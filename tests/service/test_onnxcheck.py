"""The ONNX external-data check: its field numbers are onnx.proto's, and it finds external data wherever a
tensor can hold it (initializer, node attribute, subgraph) while passing self-contained models."""

from __future__ import annotations

import onnx
import pytest
from latent_bridge.service.bundle.onnxcheck import (
    CHILDREN,
    TENSOR_DATA_LOCATION,
    TENSOR_EXTERNAL_DATA,
    TENSOR_NAME,
    MalformedModel,
    external_tensors,
)
from onnx import TensorProto, helper

MESSAGES = {name: getattr(onnx, name) for name in CHILDREN}


def test_the_field_numbers_are_onnx_protos() -> None:
    for message, children in CHILDREN.items():
        fields = MESSAGES[message].DESCRIPTOR.fields_by_number
        for number, child in children.items():
            assert fields[number].message_type.name == child, (message, number)
        tensor_holders = {f.number for f in fields.values() if f.message_type and f.message_type.name in MESSAGES}
        assert tensor_holders == set(children), message  # no field that can hold a tensor is skipped
    tensor = TensorProto.DESCRIPTOR.fields_by_name
    assert (tensor["name"].number, tensor["external_data"].number, tensor["data_location"].number) == (
        TENSOR_NAME,
        TENSOR_EXTERNAL_DATA,
        TENSOR_DATA_LOCATION,
    )


def _external(name: str) -> TensorProto:
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=[2, 2])
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../../etc/passwd")
    return tensor


def _model(initializer: list[TensorProto], nodes: list[onnx.NodeProto]) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 2])],
        initializer=initializer,
    )
    return helper.make_model(graph).SerializeToString()


def test_external_data_is_found_wherever_a_tensor_can_be() -> None:
    plain = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1.0, 0.0, 0.0, 1.0])
    matmul = helper.make_node("MatMul", ["input", "w"], ["output"])
    assert external_tensors(_model([plain], [matmul])) == []
    assert external_tensors(_model([_external("w")], [matmul])) == ["w"]
    constant = helper.make_node("Constant", [], ["w"], value=_external("c"))
    assert external_tensors(_model([], [constant, matmul])) == ["c"]
    inner = helper.make_graph(
        [helper.make_node("Constant", [], ["x"], value=_external("deep"))],
        "inner",
        [],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
    )
    branch = helper.make_node("If", ["cond"], ["w"], then_branch=inner, else_branch=inner)
    assert external_tensors(_model([], [branch, matmul])) == ["deep", "deep"]


def test_bytes_that_are_not_protobuf_are_malformed() -> None:
    with pytest.raises(MalformedModel):
        external_tensors(b"\x0a\xff\xff\xff\xff\x0f")  # a length past the end
