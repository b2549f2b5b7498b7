"""Builders (not tests) of full-integer int8 .tflite models in the shapes of MLPerf
Tiny's reference networks, with seeded RANDOM weights, for the MCU compiler tests.

Bit-exactness against TFLite Micro does not need trained weights; it needs the
same operators, shapes and quantization the real models have. Each builder makes
a torch module, converts it with litert-torch and quantizes it with
ai-edge-quantizer's ``static_wi8_ai8`` recipe (int8 weights per channel, int8
activations, int8 graph input/output), calibrated on seeded random inputs.

Built files are cached by a hash of this file's source and the builder's
parameters, in ``$EDGEBENCH_MCU_MODEL_CACHE`` if set, else in the directory the
caller passes (a pytest tmp dir), so a clean CI clone builds each model once.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CACHE_ENV = "EDGEBENCH_MCU_MODEL_CACHE"
CALIBRATION_SAMPLES = 16


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_shape: tuple[int, ...]  # NCHW as torch sees it
    make: Callable[[], Any]  # -> torch.nn.Module (float32, eval mode)


def _ds_cnn() -> Any:
    """MLPerf Tiny keyword spotting DS-CNN: 49x10 MFCCs, conv 10x4 stride 2, four
    depthwise-separable blocks of 64 channels, average pool, FC 12, softmax."""
    from torch import nn

    layers: list[nn.Module] = [nn.Conv2d(1, 64, (10, 4), stride=2, padding=(5, 1)), nn.ReLU()]
    for _ in range(4):
        layers += [
            nn.Conv2d(64, 64, 3, padding=1, groups=64),
            nn.ReLU(),
            nn.Conv2d(64, 64, 1),
            nn.ReLU(),
        ]
    layers += [nn.AvgPool2d((25, 5)), nn.Flatten(), nn.Linear(64, 12), nn.Softmax(dim=1)]
    return nn.Sequential(*layers)


def _resnet8() -> Any:
    """MLPerf Tiny image classification ResNet-8: 32x32x3, stacks of 16/32/64
    channels with residual ADDs (1x1 conv shortcut where the shape changes),
    average pool, FC 10, softmax."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
            self.shortcut = (
                nn.Conv2d(cin, cout, 1, stride=stride) if (cin != cout or stride != 1) else None
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv2(torch.relu(self.conv1(x)))
            skip = x if self.shortcut is None else self.shortcut(x)
            return torch.relu(y + skip)

    class ResNet8(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, padding=1)
            self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.blocks(torch.relu(self.stem(x)))
            x = nn.functional.avg_pool2d(x, 8).flatten(1)
            return torch.softmax(self.fc(x), dim=1)

    return ResNet8()


def _mobilenet_v1_025() -> Any:
    """MLPerf Tiny visual wake words MobileNetV1 alpha 0.25 (96x96x3): a stride-2
    conv then 13 depthwise-separable blocks, average pool, FC 2, softmax."""
    from torch import nn

    def ch(c: int) -> int:
        return int(c * 0.25)

    layers: list[nn.Module] = [nn.Conv2d(3, ch(32), 3, stride=2, padding=1), nn.ReLU6()]
    cin = ch(32)
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    blocks += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    for cout, stride in blocks:
        layers += [
            nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin),
            nn.ReLU6(),
            nn.Conv2d(cin, ch(cout), 1),
            nn.ReLU6(),
        ]
        cin = ch(cout)
    layers += [nn.AvgPool2d(3), nn.Flatten(), nn.Linear(cin, 2), nn.Softmax(dim=1)]
    return nn.Sequential(*layers)


def _fc_autoencoder() -> Any:
    """MLPerf Tiny anomaly detection: 640 -> 128x4 -> 8 -> 128x4 -> 640, ReLU."""
    from torch import nn

    widths = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:], strict=False)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _digits_cnn() -> Any:
    """The edgebench digits CNN (suites/recipes.py ``digits_cnn``), same layers with
    random weights (training does not change the operators or shapes)."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def _in_place_cnn() -> Any:
    """Not an MLPerf network: the in-place kernel paths the MLPerf shapes miss, in
    a chain where each input dies at the op that reads it. A channels-first 7x9
    input (a fused TRANSPOSE), a 3x3 stride-1 conv on an odd width (pixel pairs
    span rows), a depthwise, a dilated conv, a MUL of equal shapes, a VALID conv
    that narrows, a 5x5 depthwise (a ring of 3 rows)."""
    import torch
    from torch import nn

    class InPlaceCnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.dilated = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
            self.pointwise = nn.Conv2d(8, 8, 1)
            self.valid = nn.Conv2d(8, 4, 3)
            self.dw5 = nn.Conv2d(4, 4, 5, padding=2, groups=4)
            self.fc = nn.Linear(4 * 5 * 7, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            d = self.dilated(torch.relu(self.dw(a)))
            m = d * torch.relu(self.pointwise(d))
            f = torch.relu(self.dw5(torch.relu(self.valid(m))))
            return self.fc(f.flatten(1))

    return InPlaceCnn()


def _tanh_net() -> Any:
    """A model with an operator the MCU compiler does not support (TANH)."""
    from torch import nn

    return nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 4))


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("ds_cnn", (1, 1, 49, 10), _ds_cnn),
        ModelSpec("resnet8", (1, 3, 32, 32), _resnet8),
        ModelSpec("mobilenet_v1_025", (1, 3, 96, 96), _mobilenet_v1_025),
        ModelSpec("fc_autoencoder", (1, 640), _fc_autoencoder),
        ModelSpec("digits_cnn", (1, 1, 8, 8), _digits_cnn),
        ModelSpec("in_place_cnn", (1, 8, 7, 9), _in_place_cnn),
        ModelSpec("tanh_net", (1, 16), _tanh_net),
    )
}


def _cache_key(spec: ModelSpec, seed: int, float_model: bool) -> str:
    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(repr((spec.name, spec.input_shape, seed, float_model)).encode())
    return h.hexdigest()[:16]


def cache_dir(default: Path) -> Path:
    return Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else default


def build(name: str, directory: Path, *, seed: int = 0, float_model: bool = False) -> Path:
    """The int8 .tflite of model ``name`` (built, or taken from the cache under
    ``directory``). ``float_model`` returns the float32 export instead."""
    spec = MODELS[name]
    directory = cache_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = "fp32" if float_model else "int8"
    out = directory / f"{name}-{_cache_key(spec, seed, float_model)}-{suffix}.tflite"
    if out.exists():
        return out

    import litert_torch
    import torch
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer, recipe

    torch.manual_seed(seed)
    module = spec.make().eval()
    rng = np.random.default_rng(seed)
    calib = rng.standard_normal((CALIBRATION_SAMPLES, *spec.input_shape[1:])).astype(np.float32)
    tmp = out.with_suffix(".partial")
    float_path = tmp.with_name(tmp.name + ".fp32.tflite")
    with torch.no_grad():
        edge = litert_torch.convert(module, (torch.from_numpy(calib[:1]),))
    edge.export(str(float_path))
    if float_model:
        float_path.replace(out)
        return out
    ((signature, io),) = Interpreter(model_path=str(float_path)).get_signature_list().items()
    (input_name,) = io["inputs"]
    qt = quantizer.Quantizer(str(float_path))
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    qsvs = qt.calibrate({signature: [{input_name: calib[i : i + 1]} for i in range(len(calib))]})
    quant_path = tmp.with_name(tmp.name + ".int8.tflite")
    qt.quantize(qsvs, enable_progress_report=False).export_model(str(quant_path))
    float_path.unlink()
    _inline_buffers(quant_path)
    quant_path.replace(out)  # atomic: a half-written file never looks cached
    return out


def _inline_buffers(path: Path) -> None:
    """Move constant buffers stored after the flatbuffer (``Buffer.offset``) into it.

    The quantizer writes larger models that way; TFLite Micro does not read such
    buffers (it plans them as arena tensors and computes with garbage), and the
    reference must be right for the bit-exact tests to mean anything.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    raw = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(raw, 0))
    moved = False
    for buffer in model.buffers:
        if buffer.offset and buffer.size:
            data = raw[buffer.offset : buffer.offset + buffer.size]
            buffer.data = np.frombuffer(data, dtype=np.uint8).copy()
            buffer.offset = buffer.size = 0
            moved = True
    if moved:
        builder = flatbuffers.Builder(len(raw) + 1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        path.write_bytes(bytes(builder.Output()))


def with_float_io(int8_path: Path, out: Path) -> Path:
    """``int8_path`` with float32 graph input and output: a QUANTIZE in front of the
    int8 input and a DEQUANTIZE after the int8 output (what a converter emits when
    asked for float I/O). Cached like the models: rewritten only if missing."""
    if out.exists():
        return out
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(int8_path.read_bytes(), 0))
    subgraph = model.subgraphs[0]

    def opcode(builtin: int) -> int:
        for i, code in enumerate(model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = 1
        model.operatorCodes.append(code)
        return len(model.operatorCodes) - 1

    def float_twin(index: int, name: str) -> int:
        buffer = schema.BufferT()
        model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.shape = list(subgraph.tensors[index].shape)
        tensor.type = schema.TensorType.FLOAT32
        tensor.buffer = len(model.buffers) - 1
        tensor.name = name
        subgraph.tensors.append(tensor)
        return len(subgraph.tensors) - 1

    def operator(code: int, inputs: list[int], outputs: list[int]) -> Any:
        op = schema.OperatorT()
        op.opcodeIndex = code
        op.inputs, op.outputs = inputs, outputs
        return op

    (int8_in,), (int8_out,) = subgraph.inputs, subgraph.outputs
    float_in = float_twin(int8_in, "input_f32")
    float_out = float_twin(int8_out, "output_f32")
    subgraph.operators.insert(
        0, operator(opcode(schema.BuiltinOperator.QUANTIZE), [float_in], [int8_in])
    )
    subgraph.operators.append(
        operator(opcode(schema.BuiltinOperator.DEQUANTIZE), [int8_out], [float_out])
    )
    subgraph.inputs, subgraph.outputs = [float_in], [float_out]
    for signature in model.signatureDefs or []:
        for tensor_map, new in ((signature.inputs, float_in), (signature.outputs, float_out)):
            for entry in tensor_map or []:
                entry.tensorIndex = new
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    tmp = out.with_suffix(".partial")
    tmp.write_bytes(bytes(builder.Output()))
    tmp.replace(out)
    return out


def tflm_arena_used_bytes(path: Path) -> int:
    """TFLite Micro's arena use for ``path``: the Python wrapper has no getter, but
    ``print_allocations()`` (the RecordingMicroAllocator) writes "Arena allocation
    total N bytes" to the C stderr, which is captured here at the fd level."""
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(path), arena_size=4 << 20)
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    match = re.search(r"Arena allocation total (\d+) bytes", text)
    if match is None:
        raise RuntimeError(f"no arena total in TFLite Micro's allocation report: {text[:200]}")
    return int(match.group(1))
