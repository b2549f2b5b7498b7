"""TEST STAND-IN for NVIDIA's ``tensorrt`` Python package. This is not TensorRT.

tests/test_tensorrt_python.py puts tests/fake_tensorrt on the agent's PYTHONPATH so
that ``import tensorrt`` finds this module on machines without a GPU. It copies the
part of the TensorRT >= 8.5 / 10.x Python API that the agent's runtime "tensorrt" calls,
with NVIDIA's names, argument orders and return conventions (None from a failed
deserialize_cuda_engine, False from a refused set_input_shape / set_tensor_address /
execute_async_v3, -1 for a dynamic dimension, trt.nptype for dtypes).

What it runs instead of an engine: the "engine file" is JSON describing one linear
layer, ``logits = x.reshape(batch, -1) @ weight + bias`` (float32), with a second
output ``label = argmax(logits, axis=-1)`` (int32). With ``"rows": true`` the input is
(batch, rows, features) and the layer applies to each row: ``logits = x @ weight + bias``
of shape (batch, rows, classes), so a dynamic ``rows`` changes the output shapes.
Buffers are passed as integer addresses, as with real TensorRT; this stand-in reads
and writes the memory behind them with ctypes, so the agent must hand it host memory:
it does so only because ``EDGEBENCH_FAKE`` is true (see _HostMemoryForTests in the agent).

Test knob: with the environment variable EDGEBENCH_FAKE_TRT_POSE_AS_REAL=1 the module
does not declare itself a stand-in, so the agent takes its real-board path (torch CUDA
memory); the tests use this only to check the error where torch has no CUDA.
"""

from __future__ import annotations

import ctypes
import enum
import json
import os
import sys
from typing import Any

import numpy as np

__version__ = "10.0.0+edgebench.fake"
EDGEBENCH_FAKE = os.environ.get("EDGEBENCH_FAKE_TRT_POSE_AS_REAL") != "1"
ENGINE_FORMAT = "edgebench-fake-trt-engine/1"


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8


_NPTYPES = {
    DataType.FLOAT: np.float32,
    DataType.HALF: np.float16,
    DataType.INT8: np.int8,
    DataType.INT32: np.int32,
    DataType.BOOL: np.bool_,
    DataType.UINT8: np.uint8,
    DataType.INT64: np.int64,
}


def nptype(trt_type: DataType) -> type:
    """Like trt.nptype: the numpy type of a DataType; TypeError where numpy has none."""
    try:
        return _NPTYPES[trt_type]
    except KeyError:
        raise TypeError(
            "Could not resolve TensorRT datatype to an equivalent numpy datatype."
        ) from None


def volume(iterable: Any) -> int:
    out = 1
    for d in iterable:
        out *= int(d)
    return out


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class Dims(tuple):
    """trt.Dims: a sequence of ints (iterable, indexable, len)."""


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        raise NotImplementedError


class Logger(ILogger):
    INTERNAL_ERROR = ILogger.Severity.INTERNAL_ERROR
    ERROR = ILogger.Severity.ERROR
    WARNING = ILogger.Severity.WARNING
    INFO = ILogger.Severity.INFO
    VERBOSE = ILogger.Severity.VERBOSE

    def __init__(self, min_severity: ILogger.Severity = ILogger.Severity.WARNING) -> None:
        self.min_severity = min_severity

    def log(self, severity: ILogger.Severity, msg: str) -> None:
        if severity <= self.min_severity:
            sys.stderr.write(f"[fake TRT] [{ILogger.Severity(severity).name}] {msg}\n")


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: Any) -> ICudaEngine | None:
        try:
            spec = json.loads(bytes(serialized_engine).decode("utf-8"))
            if spec.get("format") != ENGINE_FORMAT:
                raise ValueError(f"not a {ENGINE_FORMAT} file")
            return ICudaEngine(spec)
        except Exception as e:  # real TensorRT logs an error and returns None
            self.logger.log(ILogger.Severity.ERROR, f"deserialize_cuda_engine: {e}")
            return None


class ICudaEngine:
    def __init__(self, spec: dict[str, Any]) -> None:
        inp = spec["input"]
        self._weight = np.asarray(spec["weight"], dtype=np.float32)
        self._bias = np.asarray(spec["bias"], dtype=np.float32)
        self._rows = bool(spec.get("rows"))
        features = int(inp["shape"][-1]) if self._rows else volume(inp["shape"][1:])
        if self._weight.shape != (features, self._bias.shape[0]):
            raise ValueError(f"weight {self._weight.shape} does not fit input {inp['shape']}")
        out_shapes = self._output_shapes([int(d) for d in inp["shape"]])
        # Optimization profile 0: a dynamic dim needs a "max"; "min"/"opt" default to 1.
        low = inp.get("min", [d if d >= 0 else 1 for d in inp["shape"]])
        if any(d < 0 for d in inp.get("max", inp["shape"])):
            raise ValueError("a dynamic input needs a profile max")
        self._input = inp["name"]
        self._tensors: dict[str, dict[str, Any]] = {
            inp["name"]: {
                "mode": TensorIOMode.INPUT,
                "shape": [int(d) for d in inp["shape"]],
                "dtype": DataType.FLOAT,
                # (min, opt, max) of optimization profile 0; a static input's is its shape
                "profile": [low, inp.get("opt", low), inp.get("max", inp["shape"])],
            },
            "logits": {
                "mode": TensorIOMode.OUTPUT,
                "shape": out_shapes["logits"],
                "dtype": DataType.FLOAT,
            },
            "label": {
                "mode": TensorIOMode.OUTPUT,
                "shape": out_shapes["label"],
                "dtype": DataType.INT32,
            },
        }
        self._names = list(self._tensors)

    @property
    def num_io_tensors(self) -> int:
        return len(self._names)

    def get_tensor_name(self, index: int) -> str:
        return self._names[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._tensors[name]["mode"] if name in self._tensors else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> Dims:
        return Dims(self._tensors[name]["shape"])

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._tensors[name]["dtype"]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        if profile_index != 0 or "profile" not in self._tensors[name]:
            raise ValueError(f"no profile {profile_index} shapes for {name}")
        return [Dims(s) for s in self._tensors[name]["profile"]]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def _output_shapes(self, input_shape: list[int]) -> dict[str, list[int]]:
        """Output shapes for an input shape (-1 where it depends on a dynamic dim)."""
        lead = input_shape[:-1] if self._rows else input_shape[:1]
        return {"logits": lead + [int(self._bias.shape[0])], "label": lead}

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = x if self._rows else x.reshape(x.shape[0], -1)
        logits = flat.astype(np.float32) @ self._weight + self._bias
        return logits.astype(np.float32), logits.argmax(axis=-1).astype(np.int32)


def _view(address: int, shape: tuple[int, ...], dtype: DataType) -> np.ndarray:
    """The memory at an integer address as an array (what a kernel would read)."""
    np_dtype = np.dtype(nptype(dtype))
    raw = (ctypes.c_char * (volume(shape) * np_dtype.itemsize)).from_address(address)
    return np.frombuffer(raw, dtype=np_dtype).reshape(shape)


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self._input_shape = list(engine._tensors[engine._input]["shape"])
        self._addresses: dict[str, int] = {}

    def _error(self, msg: str) -> bool:
        sys.stderr.write(f"[fake TRT] [ERROR] {msg}\n")
        return False

    def set_input_shape(self, name: str, shape: Any) -> bool:
        engine = self.engine
        if engine.get_tensor_mode(name) != TensorIOMode.INPUT:
            return self._error(f"set_input_shape: {name} is not an input")
        shape = [int(d) for d in shape]
        declared = engine._tensors[name]["shape"]
        low, _, high = engine._tensors[name]["profile"]
        if len(shape) != len(declared) or any(
            (d != s if d >= 0 else not lo <= s <= hi)
            for d, s, lo, hi in zip(declared, shape, low, high, strict=True)
        ):
            return self._error(f"set_input_shape: {shape} does not fit {declared} / profile")
        self._input_shape = shape
        return True

    def get_tensor_shape(self, name: str) -> Dims:
        engine = self.engine
        if name == engine._input:
            return Dims(self._input_shape)
        return Dims(engine._output_shapes(self._input_shape)[name])

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if name not in self.engine._tensors:
            return self._error(f"set_tensor_address: no tensor {name}")
        if not isinstance(memory, int) or memory == 0:
            return self._error(f"set_tensor_address: bad address {memory!r} for {name}")
        self._addresses[name] = memory
        return True

    def get_tensor_address(self, name: str) -> int:
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        engine = self.engine
        if not isinstance(stream_handle, int):
            return self._error(f"execute_async_v3: stream handle {stream_handle!r}")
        if any(d < 0 for d in self._input_shape):
            return self._error("execute_async_v3: input shape not specified")
        missing = [n for n in engine._names if n not in self._addresses]
        if missing:
            return self._error(f"execute_async_v3: no address for {missing}")
        t = engine._tensors
        x = _view(
            self._addresses[engine._input], tuple(self._input_shape), t[engine._input]["dtype"]
        )
        logits, label = engine._forward(x)
        for name, value in (("logits", logits), ("label", label)):
            out = _view(self._addresses[name], tuple(self.get_tensor_shape(name)), t[name]["dtype"])
            out[...] = value
        return True
