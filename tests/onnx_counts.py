#!/usr/bin/python3
"""Independent parameter and MAC counts for `inspect` tests, from python3-onnx alone.

params: elements of float initializers. MACs at batch 1: Conv/ConvTranspose output elements x
(input channels / group) x kernel elements; Gemm M x N x K; MatMul output elements x K.
Prints one JSON object {"params": P, "macs": M}."""
import json
import sys

import onnx
from onnx import shape_inference, TensorProto

FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}


def main(path):
    m = onnx.load(path)
    for v in list(m.graph.input) + list(m.graph.output):
        for d in v.type.tensor_type.shape.dim:
            if d.HasField("dim_param") or not d.HasField("dim_value"):
                d.Clear()
                d.dim_value = 1
    m = shape_inference.infer_shapes(m)
    shapes = {}
    for v in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        shapes[v.name] = [d.dim_value for d in v.type.tensor_type.shape.dim]
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    params = sum(int(__import__("numpy").prod(t.dims)) for t in m.graph.initializer if t.data_type in FLOAT_TYPES)
    macs = 0
    prod = lambda xs: int(__import__("numpy").prod(xs)) if xs else 1
    for n in m.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type in ("Conv", "ConvTranspose"):
            w, y = shapes[n.input[1]], shapes[n.output[0]]
            if n.op_type == "Conv":
                macs += prod(y) * w[1] * prod(w[2:])
            else:  # each input element meets every kernel element of its group's outputs
                x = shapes[n.input[0]]
                macs += prod(x) * w[1] * prod(w[2:])
        elif n.op_type == "Gemm":
            a, y = shapes[n.input[0]], shapes[n.output[0]]
            k = a[0] if attrs.get("transA", 0) else a[1]
            macs += prod(y) * k
        elif n.op_type == "MatMul":
            a, y = shapes[n.input[0]], shapes[n.output[0]]
            macs += prod(y) * a[-1]
    print(json.dumps({"params": params, "macs": macs}))


if __name__ == "__main__":
    main(sys.argv[1])
