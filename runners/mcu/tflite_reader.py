"""Read a .tflite flatbuffer into a small typed graph (subgraph 0 only) for the
MCU compiler.

The schema is the one shipped in the LiteRT package, so no TensorFlow is needed.
Constant data is decoded to numpy in the tensor's dtype and shape; buffers stored
after the flatbuffer (``Buffer.offset``/``size``, which converters use for large
models) are read from the file as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Names of the schema's enums, by value (the generated classes are plain namespaces).
_TENSOR_TYPES: dict[int, str] = {}
_BUILTIN_NAMES: dict[int, str] = {}

_NUMPY_DTYPES: dict[str, np.dtype] = {
    "FLOAT32": np.dtype("<f4"),
    "FLOAT16": np.dtype("<f2"),
    "FLOAT64": np.dtype("<f8"),
    "INT8": np.dtype("i1"),
    "UINT8": np.dtype("u1"),
    "INT16": np.dtype("<i2"),
    "UINT16": np.dtype("<u2"),
    "INT32": np.dtype("<i4"),
    "UINT32": np.dtype("<u4"),
    "INT64": np.dtype("<i8"),
    "UINT64": np.dtype("<u8"),
    "BOOL": np.dtype("?"),
}


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated as schema

    if not _TENSOR_TYPES:
        enums = ((schema.TensorType, _TENSOR_TYPES), (schema.BuiltinOperator, _BUILTIN_NAMES))
        for enum, table in enums:
            table.update({v: k for k, v in vars(enum).items() if not k.startswith("_")})
    return schema


class TfliteReadError(ValueError):
    """The file is not a .tflite model this reader understands."""


@dataclass(frozen=True)
class Quantization:
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass
class Tensor:
    index: int
    name: str
    dtype: str  # schema TensorType name: "INT8", "INT32", "FLOAT32", ...
    shape: tuple[int, ...]
    quantization: Quantization | None
    data: np.ndarray | None = None  # constant data (weights, biases, shape operands)
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def itemsize(self) -> int:
        return element_size(self.dtype)

    @property
    def nbytes(self) -> int:
        return self.elements * self.itemsize

    @property
    def scale(self) -> float:
        """The per-tensor scale (activations); 0.0 if the tensor is not quantized."""
        return self.quantization.scales[0] if self.quantization else 0.0

    @property
    def zero_point(self) -> int:
        return self.quantization.zero_points[0] if self.quantization else 0


@dataclass
class Operator:
    index: int
    builtin: str  # BuiltinOperator name, e.g. "CONV_2D"; "CUSTOM:<code>" for custom ops
    inputs: tuple[int, ...]  # tensor indices; -1 is an omitted optional input
    outputs: tuple[int, ...]
    options: Any  # the schema's *OptionsT object, or None


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    n_subgraphs: int = 1
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def tensor(self, index: int) -> Tensor | None:
        return None if index < 0 else self.tensors[index]


def element_size(dtype: str) -> int:
    if dtype in _NUMPY_DTYPES:
        return _NUMPY_DTYPES[dtype].itemsize
    raise TfliteReadError(f"tensor type {dtype} has no fixed element size")


def _quantization(q: Any) -> Quantization | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zero_points = tuple(int(z) for z in q.zeroPoint) if q.zeroPoint is not None else ()
    if not zero_points:
        zero_points = (0,) * len(q.scale)
    return Quantization(
        scales=tuple(float(s) for s in q.scale),
        zero_points=zero_points,
        quantized_dimension=int(q.quantizedDimension),
    )


def _buffer_bytes(model: Any, buffer_index: int, file_bytes: bytes) -> bytes | None:
    if buffer_index <= 0 or buffer_index >= len(model.buffers):
        return None  # buffer 0 is the schema's "no data" sentinel
    buffer = model.buffers[buffer_index]
    if buffer.data is not None and len(buffer.data) > 0:
        return bytes(np.asarray(buffer.data, dtype=np.uint8))
    if buffer.offset and buffer.size:
        if buffer.offset + buffer.size > len(file_bytes):
            raise TfliteReadError(f"buffer {buffer_index} lies past the end of the file")
        return file_bytes[buffer.offset : buffer.offset + buffer.size]
    return None


def read_tflite(path: Path) -> Graph:
    """Subgraph 0 of the .tflite file at ``path`` as a :class:`Graph`."""
    schema = _schema()
    file_bytes = Path(path).read_bytes()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(file_bytes, 0))
    except Exception as exc:  # the generated decoder raises assorted errors on garbage
        raise TfliteReadError(f"{path}: not a .tflite flatbuffer ({exc})") from exc
    if not model.subgraphs:
        raise TfliteReadError(f"{path}: the model has no subgraph")
    subgraph = model.subgraphs[0]

    tensors: list[Tensor] = []
    for i, t in enumerate(subgraph.tensors or []):
        dtype = _TENSOR_TYPES.get(t.type, f"TYPE{t.type}")
        shape = tuple(int(d) for d in t.shape) if t.shape is not None else ()
        raw = _buffer_bytes(model, t.buffer, file_bytes)
        data = None
        if raw is not None and dtype in _NUMPY_DTYPES:
            data = np.frombuffer(raw, dtype=_NUMPY_DTYPES[dtype]).reshape(shape).copy()
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
        tensors.append(
            Tensor(i, name, dtype, shape, _quantization(t.quantization), data, bool(t.isVariable))
        )

    operators: list[Operator] = []
    for i, op in enumerate(subgraph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = _BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), "UNKNOWN")
        if builtin == "CUSTOM":
            custom = code.customCode.decode() if code.customCode else "?"
            builtin = f"CUSTOM:{custom}"
        inputs = tuple(int(x) for x in op.inputs) if op.inputs is not None else ()
        outputs = tuple(int(x) for x in op.outputs) if op.outputs is not None else ()
        operators.append(Operator(i, builtin, inputs, outputs, op.builtinOptions))

    description = model.description.decode() if isinstance(model.description, bytes) else ""
    return Graph(
        tensors=tensors,
        operators=operators,
        inputs=tuple(int(x) for x in subgraph.inputs),
        outputs=tuple(int(x) for x in subgraph.outputs),
        n_subgraphs=len(model.subgraphs),
        description=description,
    )
