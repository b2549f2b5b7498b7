"""Model analysis: parameters, non-zeros, MACs, compressed size.

Two entry points, used to describe every variant:

- :func:`torch_stats` for a torch module (before export);
- :func:`describe_file` for an exported ``.onnx`` / ``.tflite`` file.

What is counted, so that the figures can be compared across formats:

- **params**: elements of the stored weight tensors (Conv/Linear/... weights and
  biases, BatchNorm affine parameters). Quantized integer weights count as
  parameters (one per element), their scales and zero points do not. Integer
  constants that are not quantized weights (shapes, axes, indices) do not count.
- **nonzero_params**: parameters whose *dequantized* value is non-zero (for an
  integer weight: ``q != zero_point``).
- **macs**: multiply-accumulates of Conv (grouped and depthwise included),
  ConvTranspose, Linear/Gemm/MatMul (fully connected and batched matmul) for one
  forward pass on the example input (its batch size included). Dense count:
  zero weights are still counted, so unstructured sparsity does not lower it
  (structured pruning and low-rank factorization do). Bias additions,
  normalization, activations, pooling and element-wise ops are not counted.
- **zstd_size_bytes**: the file compressed with zstandard at level 19
  (:data:`ZSTD_LEVEL`), a proxy for what sparsity buys in download/flash size.

Nothing here raises for a file it cannot read: the fields it cannot fill are
``None`` and ``error`` says why.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

ZSTD_LEVEL = 19


# --------------------------------------------------------------------------- torch
def torch_stats(module: Any, example_input: np.ndarray) -> dict[str, Any]:
    """Parameters, non-zeros and MACs of a torch module.

    Returns ``{"params", "nonzero_params", "prunable_params",
    "prunable_nonzero_params", "macs"}``. ``params`` counts every parameter
    tensor once (shared tensors once; buffers such as BatchNorm running stats
    are not parameters). ``prunable_*`` restrict the count to the weights of
    Conv1d/2d/3d and Linear layers (what the pruning steps prune). ``macs`` is
    measured with forward hooks on Conv*/ConvTranspose*/Linear during one
    forward pass on ``example_input`` (module in eval mode, no grad; the
    training flag is restored afterwards).
    """
    import torch
    from torch import nn

    params = 0
    nonzero = 0
    for p in module.parameters():
        params += p.numel()
        nonzero += int(torch.count_nonzero(p.detach()))
    prunable = 0
    prunable_nz = 0
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d | nn.Linear):
            prunable += m.weight.numel()
            prunable_nz += int(torch.count_nonzero(m.weight.detach()))

    macs = 0

    def conv_hook(m: Any, inputs: Any, output: Any) -> None:
        nonlocal macs
        # each output element: (in_channels / groups) * prod(kernel) MACs
        macs += output.numel() * int(np.prod(m.weight.shape[1:]))

    def conv_t_hook(m: Any, inputs: Any, output: Any) -> None:
        nonlocal macs
        # each input element is scattered to (out_channels / groups) * prod(kernel) outputs
        macs += inputs[0].numel() * int(np.prod(m.weight.shape[1:]))

    def linear_hook(m: Any, inputs: Any, output: Any) -> None:
        nonlocal macs
        macs += output.numel() * m.in_features

    handles = []
    for m in module.modules():
        if isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d):
            handles.append(m.register_forward_hook(conv_t_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.from_numpy(np.asarray(example_input)))
    finally:
        for h in handles:
            h.remove()
        module.train(was_training)
    return {
        "params": params,
        "nonzero_params": nonzero,
        "prunable_params": prunable,
        "prunable_nonzero_params": prunable_nz,
        "macs": macs,
    }


# --------------------------------------------------------------------------- files
def describe_file(path: Path, fmt: str, *, zstd_level: int = ZSTD_LEVEL) -> dict[str, Any]:
    """Size, compressed size, stored parameters and MACs of a model file.

    ``fmt`` is ``"onnx"`` or ``"tflite"``; for any other format only the sizes
    are filled. Returns ``{"format", "size_bytes", "zstd_size_bytes",
    "zstd_level", "params", "nonzero_params", "params_by_dtype", "macs",
    "error"}``; a field that cannot be computed is ``None`` and ``error`` says
    why (this function never raises).

    - ONNX: parameters are the graph initializers (see the module docstring for
      which ones count; weights held in ``Constant`` nodes or external data that
      cannot be loaded are not counted). MACs come from ONNX shape inference
      over Conv/ConvTranspose/Gemm/MatMul (and their integer/QLinear forms);
      ``None`` if a needed shape is unknown or symbolic. Subgraphs (If/Loop)
      are not visited.
    - TFLite: parsed with the flatbuffer schema shipped in ``ai_edge_litert``
      (``ai_edge_litert.schema_py_generated``); parameters are the constant
      tensors (non-empty buffers) of floating type, or of integer type with
      quantization parameters; each buffer counts once. MACs from the static
      tensor shapes of CONV_2D, DEPTHWISE_CONV_2D, CONV_3D, TRANSPOSE_CONV,
      FULLY_CONNECTED and BATCH_MATMUL.
    """
    out: dict[str, Any] = {
        "format": fmt,
        "size_bytes": None,
        "zstd_size_bytes": None,
        "zstd_level": None,
        "params": None,
        "nonzero_params": None,
        "params_by_dtype": None,
        "macs": None,
        "error": None,
    }
    errors: list[str] = []
    try:
        data = Path(path).read_bytes()
    except Exception as e:  # noqa: BLE001 - never raise, say why
        out["error"] = f"cannot read {path}: {type(e).__name__}: {e}"
        return out
    out["size_bytes"] = len(data)
    try:
        import zstandard

        out["zstd_size_bytes"] = len(zstandard.ZstdCompressor(level=zstd_level).compress(data))
        out["zstd_level"] = zstd_level
    except Exception as e:  # noqa: BLE001
        errors.append(f"zstd: {type(e).__name__}: {e}")
    analyse = {"onnx": _onnx_stats, "tflite": _tflite_stats}.get(fmt)
    if analyse is None:
        errors.append(f"unknown model format {fmt!r}: only sizes are reported")
    else:
        try:
            out.update(analyse(Path(path), data, errors))
        except Exception as e:  # noqa: BLE001
            errors.append(f"{fmt}: {type(e).__name__}: {e}")
    out["error"] = "; ".join(errors) or None
    return out


# --------------------------------------------------------------------------- ONNX
# Inputs (by position) of quantization ops that are scales / zero points, not weights.
_ONNX_QUANT_META = {
    "QuantizeLinear": (1, 2),
    "DequantizeLinear": (1, 2),
    "QLinearConv": (1, 2, 4, 5, 6, 7),
    "QLinearMatMul": (1, 2, 4, 5, 6, 7),
    "QGemm": (1, 2, 4, 5, 7, 8),
    "ConvInteger": (2, 3),
    "MatMulInteger": (2, 3),
}
# Integer inputs that are (quantized) weights: op -> {input index: (zero point index, axis)}.
_ONNX_INT_WEIGHTS = {
    "DequantizeLinear": {0: (2, None)},  # axis from the node's attribute
    "QLinearConv": {3: (5, 0), 8: (None, 0)},
    "QLinearMatMul": {0: (2, None), 3: (5, -1)},
    "QGemm": {0: (2, None), 3: (5, None), 6: (None, None)},
    "ConvInteger": {0: (2, None), 1: (3, 0)},
    "MatMulInteger": {0: (2, None), 1: (3, -1)},
}
# Float inputs that are settings, not weights.
_ONNX_NOT_WEIGHTS = {"Clip": (1, 2), "Resize": (1, 2, 3), "Pad": (1, 2, 3)}


def _onnx_stats(path: Path, data: bytes, errors: list[str]) -> dict[str, Any]:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))  # external data next to the file, if any
    except Exception:  # noqa: BLE001 - e.g. external data missing: count what is inline
        model = onnx.load_from_string(data)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    meta: set[str] = set()
    int_weight: dict[str, tuple[str | None, int | None]] = {}
    # Dynamic quantization multiplies each weight scale with the activation scale.
    dynamic_scales = {n.output[1] for n in graph.node if n.op_type == "DynamicQuantizeLinear"}
    for node in graph.node:
        if node.op_type == "Mul" and dynamic_scales.intersection(node.input):
            meta.update(i for i in node.input if i in inits)
        for i in _ONNX_QUANT_META.get(node.op_type, ()) + _ONNX_NOT_WEIGHTS.get(node.op_type, ()):
            if i < len(node.input) and node.input[i]:
                meta.add(node.input[i])
        for i, (zp_i, axis) in _ONNX_INT_WEIGHTS.get(node.op_type, {}).items():
            if i < len(node.input) and node.input[i]:
                zp = node.input[zp_i] if zp_i is not None and zp_i < len(node.input) else None
                if node.op_type == "DequantizeLinear":
                    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                int_weight[node.input[i]] = (zp or None, axis)

    total = nonzero = 0
    counts: dict[str, int] = {}
    for name, tensor in inits.items():
        if name in meta:
            continue
        dtype = onnx.TensorProto.DataType.Name(tensor.data_type)
        if "FLOAT" not in dtype and dtype != "DOUBLE" and name not in int_weight:
            continue  # shapes, axes, indices
        arr = numpy_helper.to_array(tensor)
        if name in int_weight:
            zp_name, axis = int_weight[name]
            zp = numpy_helper.to_array(inits[zp_name]) if zp_name in inits else None
            nz = int(np.count_nonzero(_differs_from_zero_point(arr, zp, axis)))
        else:
            nz = _count_nonzero_float(arr)
        total += int(arr.size)
        nonzero += nz
        counts[dtype.lower()] = counts.get(dtype.lower(), 0) + int(arr.size)
    result: dict[str, Any] = {
        "params": total,
        "nonzero_params": nonzero,
        "params_by_dtype": counts,
    }
    try:
        result["macs"] = _onnx_macs(model, inits)
    except _UnknownShape as e:
        errors.append(f"onnx macs: {e}")
    return result


class _UnknownShape(Exception):
    pass


def _onnx_macs(model: Any, inits: dict[str, Any]) -> int:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    shapes: dict[str, list[int | None]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [
                d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim
            ]
    for name, t in inits.items():
        shapes[name] = list(t.dims)

    def shape(name: str) -> list[int]:
        s = shapes.get(name)
        if s is None or any(d is None for d in s):
            raise _UnknownShape(f"shape of {name!r} is unknown or symbolic")
        return s  # type: ignore[return-value]

    macs = 0
    for node in g.node:
        op = node.op_type
        if op in ("Conv", "ConvInteger", "QLinearConv"):
            w = node.input[3] if op == "QLinearConv" else node.input[1]
            macs += math.prod(shape(node.output[0])) * math.prod(shape(w)[1:])
        elif op == "ConvTranspose":
            macs += math.prod(shape(node.input[0])) * math.prod(shape(node.input[1])[1:])
        elif op in ("Gemm", "QGemm"):
            a = shape(node.input[0])
            trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
            k = a[0] if trans_a else a[1]
            macs += math.prod(shape(node.output[0])) * k
        elif op in ("MatMul", "MatMulInteger", "QLinearMatMul"):
            a = shape(node.input[0])
            macs += math.prod(shape(node.output[0])) * a[-1]
    return macs


# --------------------------------------------------------------------------- TFLite
_TFLITE_NUMPY = {
    "FLOAT32": np.float32,
    "FLOAT16": np.float16,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT16": np.int16,
    "UINT16": np.uint16,
    "INT32": np.int32,
    "UINT32": np.uint32,
    "INT64": np.int64,
    "UINT64": np.uint64,
}
_TFLITE_FLOATISH = {"FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16", "FLOAT8_E4M3FN", "FLOAT8_E5M2"}


def _tflite_stats(path: Path, data: bytes, errors: list[str]) -> dict[str, Any]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(data, 0)
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    total = nonzero = 0
    counts: dict[str, int] = {}
    seen_buffers: set[int] = set()
    macs: int | None = 0
    for gi in range(model.SubgraphsLength()):
        g = model.Subgraphs(gi)
        for ti in range(g.TensorsLength()):
            t = g.Tensors(ti)
            if t.IsVariable() or t.Buffer() in seen_buffers or t.Buffer() == 0:
                continue
            raw = _tflite_buffer(model, t.Buffer(), data)
            if not raw:
                continue  # not a constant
            tname = type_names.get(t.Type(), str(t.Type()))
            q = t.Quantization()
            quantized = q is not None and q.ScaleLength() > 0
            if tname not in _TFLITE_FLOATISH and not quantized:
                continue  # shapes, axes, permutations
            seen_buffers.add(t.Buffer())
            shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
            n = math.prod(shape)
            values = _tflite_values(raw, tname)
            if values is None:
                errors.append(f"tflite: {tname} tensors: non-zeros not counted")
                nz = n
            else:
                if t.Sparsity() is None:
                    values = values[:n]
                if quantized and q.ZeroPointLength() > 0 and values.dtype.kind in "iu":
                    zp = q.ZeroPointAsNumpy().astype(np.int64)
                    axis = q.QuantizedDimension()
                    if zp.size > 1 and t.Sparsity() is None:
                        values = values.reshape(shape)
                    nz = int(np.count_nonzero(_differs_from_zero_point(values, zp, axis)))
                elif values.dtype.kind == "f":
                    nz = _count_nonzero_float(values)
                else:
                    nz = int(np.count_nonzero(values))
            total += n
            nonzero += nz
            counts[tname.lower()] = counts.get(tname.lower(), 0) + n
        if macs is not None:
            try:
                macs += _tflite_macs(model, g, op_names)
            except _UnknownShape as e:
                errors.append(f"tflite macs: {e}")
                macs = None
    return {"params": total, "nonzero_params": nonzero, "params_by_dtype": counts, "macs": macs}


def _tflite_buffer(model: Any, index: int, data: bytes) -> bytes:
    buf = model.Buffers(index)
    if buf is None:
        return b""
    if buf.Offset() > 1:  # large models keep buffers after the flatbuffer
        return data[buf.Offset() : buf.Offset() + buf.Size()]
    if buf.DataLength() == 0:
        return b""
    return buf.DataAsNumpy().tobytes()


def _tflite_values(raw: bytes, tname: str) -> np.ndarray | None:
    if tname in _TFLITE_NUMPY:
        dt = np.dtype(_TFLITE_NUMPY[tname]).newbyteorder("<")
        return np.frombuffer(raw[: len(raw) - len(raw) % dt.itemsize], dtype=dt)
    if tname in ("INT4", "UINT4"):
        b = np.frombuffer(raw, dtype=np.uint8)
        nib = np.stack([b & 0x0F, b >> 4], axis=-1).reshape(-1).astype(np.int8)
        if tname == "INT4":
            nib = np.where(nib > 7, nib - 16, nib).astype(np.int8)
        return nib
    if tname == "BFLOAT16":  # zero iff all bits but the sign are zero
        return (np.frombuffer(raw, dtype="<u2") & 0x7FFF).astype(np.uint16)
    if tname.startswith("FLOAT8"):
        return (np.frombuffer(raw, dtype=np.uint8) & 0x7F).astype(np.uint8)
    return None


def _tflite_macs(model: Any, g: Any, op_names: dict[int, str]) -> int:
    def shape(ti: int) -> list[int]:
        if ti < 0:
            raise _UnknownShape("missing tensor")
        t = g.Tensors(ti)
        s = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        sig = [int(d) for d in t.ShapeSignatureAsNumpy()] if t.ShapeSignatureLength() else []
        if any(d < 0 for d in [*s, *sig]):
            raise _UnknownShape(f"tensor {t.Name()!r} has a dynamic shape")
        return s

    macs = 0
    for oi in range(g.OperatorsLength()):
        op = g.Operators(oi)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = op_names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "")
        ins = op.InputsAsNumpy()
        outs = op.OutputsAsNumpy()
        if name in ("CONV_2D", "CONV_3D"):
            # filter OHWI / DHWIO: every output element uses kernel * in_channels_per_group
            f = shape(ins[1])
            per_out = math.prod(f[1:]) if name == "CONV_2D" else math.prod(f[:-1])
            macs += math.prod(shape(outs[0])) * per_out
        elif name == "DEPTHWISE_CONV_2D":
            f = shape(ins[1])  # [1, H, W, C * multiplier]
            macs += math.prod(shape(outs[0])) * f[1] * f[2]
        elif name == "TRANSPOSE_CONV":
            f = shape(ins[1])  # [O, H, W, I]; input 2 is the data
            macs += math.prod(shape(ins[2])) * f[0] * f[1] * f[2]
        elif name == "FULLY_CONNECTED":
            macs += math.prod(shape(outs[0])) * shape(ins[1])[-1]
        elif name == "BATCH_MATMUL":
            a = shape(ins[0])
            adj_x = False
            opts = op.BuiltinOptions()
            if opts is not None:
                from ai_edge_litert import schema_py_generated as schema

                o = schema.BatchMatMulOptions()
                o.Init(opts.Bytes, opts.Pos)
                adj_x = bool(o.AdjX())
            macs += math.prod(shape(outs[0])) * (a[-2] if adj_x else a[-1])
    return macs


# --------------------------------------------------------------------------- helpers
def _count_nonzero_float(arr: np.ndarray) -> int:
    try:
        return int(np.count_nonzero(arr))
    except TypeError:  # exotic float types (ml_dtypes): compare as float32
        return int(np.count_nonzero(arr.astype(np.float32)))


def _differs_from_zero_point(q: np.ndarray, zp: np.ndarray | None, axis: int | None) -> np.ndarray:
    """Mask of the integer elements whose dequantized value is non-zero (q != zero point).

    Handles a scalar zero point, a per-axis one (length = q.shape[axis]) and a
    blocked one (same rank as q, the axis shrunk by the block size).
    """
    q = q.astype(np.int64)
    if zp is None or zp.size <= 1:
        return q != (int(zp.reshape(-1)[0]) if zp is not None and zp.size else 0)
    zp = zp.astype(np.int64)
    ax = (axis if axis is not None else 0) % max(q.ndim, 1)
    if zp.ndim == 1 and q.ndim >= 1 and zp.size == q.shape[ax]:
        shape = [1] * q.ndim
        shape[ax] = zp.size
        return q != zp.reshape(shape)
    if zp.ndim == q.ndim:  # blocked quantization
        block = math.ceil(q.shape[ax] / zp.shape[ax])
        full = np.repeat(zp, block, axis=ax)
        full = np.take(full, range(q.shape[ax]), axis=ax)
        return q != full
    return q != 0  # layout not understood: assume a zero point of 0
