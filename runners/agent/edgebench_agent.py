"""edgebench runner agent: measures one model on the device it runs on.

This single file is copied to lab boards and run there as ``python edgebench_agent.py``.
It speaks JSON lines: one request per line on stdin, exactly one reply line per
request on stdout; it logs only to stderr. See PROTOCOL.md next to this file.

Constraints that shape the code (boards run old, minimal Pythons):
* standard library only at module level; numpy and the inference runtime are imported
  lazily, when a request needs them, so ``hello`` works on a board without them;
* Python 3.8 syntax and stdlib API (no ``match``, no runtime ``X | Y`` types,
  no ``str.removeprefix`` ...); annotations are strings thanks to the __future__ import.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import platform
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable

AGENT_VERSION = "2"  # 2: windows time invoke only (inputs bound once); with-I/O beside
PROTOCOL_VERSION = 1

# distribution names to look up with importlib.metadata, per runtime key in facts.
_RUNTIME_DISTS = (
    ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
    ("ai_edge_litert", ("ai-edge-litert",)),
    ("tflite_runtime", ("tflite-runtime",)),
    ("tensorflow", ("tensorflow", "tensorflow-cpu")),
    ("torch", ("torch",)),
    ("tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu11", "tensorrt-cu13")),
    ("numpy", ("numpy",)),
)

_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(int16)": "int16",
    "tensor(uint16)": "uint16",
    "tensor(int32)": "int32",
    "tensor(uint32)": "uint32",
    "tensor(int64)": "int64",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


def log(message: str) -> None:
    sys.stderr.write(f"edgebench-agent: {message}\n")
    sys.stderr.flush()



class AgentFailure(Exception):
    """An error that becomes a structured ``{"kind", "message"}`` reply."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


# --------------------------------------------------------------------------- facts


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def _proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in bytes; None off Linux."""
    text = _read_text("/proc/self/status")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def _os_release() -> str | None:
    text = _read_text("/etc/os-release") or _read_text("/usr/lib/os-release")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"').strip("'")
    return None


def _cpu_model() -> str | None:
    text = _read_text("/proc/cpuinfo")
    if text:
        found: dict[str, str] = {}
        for line in text.splitlines():
            if ":" not in line:
                continue
            key, value = line.split(":", 1)
            key, value = key.strip(), value.strip()
            if key in ("model name", "Hardware", "Model") and value and key not in found:
                found[key] = value
        # x86 and many ARM64 kernels give "model name"; older ARM kernels only name the
        # SoC ("Hardware") or the board ("Model").
        for key in ("model name", "Hardware", "Model"):
            if key in found:
                return found[key]
    return platform.processor() or None


def _mem_total_bytes() -> int | None:
    text = _read_text("/proc/meminfo")
    if text is None:
        return None
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            try:
                return int(line.split()[1]) * 1024
            except (IndexError, ValueError):
                return None
    return None


def _dist_version(names: Any) -> str | None:
    # Metadata lookup instead of import: importing tensorflow or torch on a small board
    # takes seconds and hundreds of MB, and hello must be cheap.
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8
        return None
    for name in names:
        try:
            return metadata.version(name)
        except Exception:
            continue
    return None


def _torch_cuda_built() -> bool | None:
    """Whether the installed torch was built with CUDA (or ROCm, which torch also calls
    "cuda"), or None when torch is not installed. Found by looking for its CUDA library
    next to the package, without importing torch (seconds and hundreds of MB on a
    board). It says nothing about a usable GPU: a torch load with device "cuda"
    checks torch.cuda.is_available()."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        try:
            libs = os.listdir(os.path.join(root, "lib"))
        except OSError:
            continue
        for name in libs:
            # libtorch_cuda.so (Linux), torch_cuda.dll (Windows), libtorch_hip.so (ROCm)
            if name.split(".")[0] in ("libtorch_cuda", "torch_cuda", "libtorch_hip", "torch_hip"):
                return True
    return False


def collect_facts() -> dict[str, Any]:
    runtimes: dict[str, str] = {}
    for key, dists in _RUNTIME_DISTS:
        version = _dist_version(dists)
        if version is not None:
            runtimes[key] = version
    facts: dict[str, Any] = {
        "os": platform.system(),
        "os_release": _os_release(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "memory_total_bytes": _mem_total_bytes(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "hostname": socket.gethostname() or platform.node(),
        "runtimes": runtimes,
    }
    torch_cuda = _torch_cuda_built()
    if torch_cuda is not None:
        facts["torch_cuda"] = torch_cuda
    model = None
    try:
        with open("/proc/device-tree/model", "rb") as f:
            model = f.read().replace(b"\x00", b"").decode("utf-8", "replace").strip()
    except OSError:
        pass
    if model:
        facts["board_model"] = model
    l4t = _read_text("/etc/nv_tegra_release")
    if l4t:
        facts["l4t_release"] = l4t.splitlines()[0].strip()
    tools = {
        t: p for t in ("trtexec", "tegrastats", "vcgencmd", "nvidia-smi") for p in [_which(t)] if p
    }
    facts["tools"] = tools
    facts["sensors"] = _find_sensors(tools)
    return facts


def _which(tool: str) -> str | None:
    import shutil

    # trtexec ships outside PATH on JetPack.
    extra = {"trtexec": ["/usr/src/tensorrt/bin/trtexec"]}.get(tool, [])
    found = shutil.which(tool)
    if found:
        return found
    return next((p for p in extra if os.access(p, os.X_OK)), None)


def _find_sensors(tools: dict[str, str]) -> list[dict[str, Any]]:
    """Power/telemetry sources present on this device (the host picks one)."""
    sensors: list[dict[str, Any]] = []
    if "tegrastats" in tools:
        sensors.append({"kind": "tegrastats", "path": tools["tegrastats"]})
    # EDGEBENCH_SYSFS_ROOT lets tests point discovery at a recorded sysfs tree
    # (like psutil's PROCFS_PATH); on a board it is unset and this is /sys.
    hwmon = os.path.join(os.environ.get("EDGEBENCH_SYSFS_ROOT", "/"), "sys/class/hwmon")
    try:
        entries = sorted(os.listdir(hwmon))
    except OSError:
        entries = []
    for entry in entries:
        name = (_read_text(os.path.join(hwmon, entry, "name")) or "").strip()
        if name.startswith("ina3221"):
            path = os.path.join(hwmon, entry)
            labels = {}
            for ch in (1, 2, 3):
                label = (_read_text(os.path.join(path, f"in{ch}_label")) or "").strip()
                if label and label != "NC":
                    labels[str(ch)] = label
            sensors.append({"kind": "ina3221", "path": path, "channels": labels})
    if "vcgencmd" in tools:
        sensors.append({"kind": "rpi_pmic", "path": tools["vcgencmd"]})
    if "nvidia-smi" in tools:
        sensors.append({"kind": "nvidia_smi", "path": tools["nvidia-smi"]})
    return sensors


# --------------------------------------------------------------------------- models


def _np() -> Any:
    try:
        import numpy
    except ImportError as e:
        raise AgentFailure("missing_runtime", f"numpy is not importable: {e}") from e
    return numpy


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


class Model:
    """Common face of an onnxruntime session, a LiteRT interpreter, a TorchScript
    module and a TensorRT engine."""

    runtime = ""
    version: str | None = None
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []

    # What a timed sample covers. `run` is the whole call a user makes (inputs in,
    # outputs out); `bind` + `invoke` split it the way the vendors' tools time it
    # (benchmark_model, onnxruntime_perf_test): inputs set once before the window,
    # then only the inference per sample. A runtime without a split times run().
    io_region = "set inputs + invoke + read outputs"
    invoke_region = io_region

    def run(self, feed: list[Any]) -> list[Any]:
        """Inputs in model order -> outputs in model order (numpy arrays)."""
        raise NotImplementedError

    def bind(self, feed: list[Any]) -> None:
        """Make `feed` the inputs of every following invoke()."""
        self._bound = feed

    def invoke(self) -> None:
        """One inference on the bound inputs; outputs stay in the runtime."""
        self.run(self._bound)

    def describe(self) -> dict[str, Any]:
        def public(d: dict[str, Any]) -> dict[str, Any]:
            return {"name": d["name"], "shape": d["shape"], "dtype": d["dtype"]}

        return {
            "runtime": self.runtime,
            "runtime_version": self.version,
            "inputs": [public(d) for d in self.inputs],
            "outputs": [public(d) for d in self.outputs],
        }


class OnnxModel(Model):
    runtime = "onnxruntime"

    def __init__(self, path: str, threads: int | None, providers: list[str] | None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise AgentFailure("missing_runtime", f"onnxruntime is not importable: {e}") from e
        self.version = getattr(ort, "__version__", None)
        self.available_providers = list(ort.get_available_providers())
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
        # One inference at a time is what we measure; parallel graph branches would
        # only add scheduling noise.
        opts.inter_op_num_threads = 1
        wanted = list(providers) if providers else ["CPUExecutionProvider"]
        missing = [p for p in wanted if p not in self.available_providers]
        if missing:
            raise AgentFailure(
                "bad_request",
                "providers {} not available (available: {})".format(
                    ", ".join(missing), ", ".join(self.available_providers)
                ),
            )
        try:
            self.session = ort.InferenceSession(path, sess_options=opts, providers=wanted)
        except Exception as e:
            raise AgentFailure("load_failed", f"onnxruntime cannot load {path}: {e}") from e
        self.providers = list(self.session.get_providers())
        # A provider the build offers can still fail to initialise (CUDA libraries
        # missing, a GPU in use); onnxruntime then logs a warning and runs on the CPU.
        # Never time that under the requested provider's label.
        dropped = [p for p in wanted if p not in self.providers]
        if dropped:
            raise AgentFailure(
                "load_failed",
                "onnxruntime could not initialise {} (session runs on: {})".format(
                    ", ".join(dropped), ", ".join(self.providers)
                ),
            )
        self.inputs = [self._desc(a) for a in self.session.get_inputs()]
        self.outputs = [self._desc(a) for a in self.session.get_outputs()]
        self._input_names = [d["name"] for d in self.inputs]

    @staticmethod
    def _desc(arg: Any) -> dict[str, Any]:
        shape = [d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or [])]
        return {
            "name": arg.name,
            "shape": shape,
            "dtype": _ONNX_TYPES.get(arg.type, arg.type),
            "quant": None,  # ONNX QDQ models keep float I/O; nothing to (de)quantize
        }

    io_region = "InferenceSession.run (numpy inputs in, numpy outputs out)"
    invoke_region = (
        "InferenceSession.run_with_iobinding (inputs bound once, outputs allocated by "
        "onnxruntime on the CPU each run)"
    )

    def run(self, feed: list[Any]) -> list[Any]:
        # Index loop, not zip(strict=...): that keyword needs Python 3.10.
        return self.session.run(None, {self._input_names[i]: v for i, v in enumerate(feed)})

    def bind(self, feed: list[Any]) -> None:
        binding = self.session.io_binding()
        for i, value in enumerate(feed):
            binding.bind_cpu_input(self._input_names[i], value)
        for d in self.outputs:
            binding.bind_output(d["name"], "cpu")
        self._binding = binding
        self._feed = feed  # bind_cpu_input points at this memory: keep it alive

    def invoke(self) -> None:
        self.session.run_with_iobinding(self._binding)

    def describe(self) -> dict[str, Any]:
        d = Model.describe(self)
        d["providers"] = self.providers
        # Which providers this onnxruntime build offers: known only after importing it,
        # which hello avoids, hence reported here.
        d["onnxruntime_providers"] = self.available_providers
        return d


def _import_litert() -> Any:
    """(Interpreter class, runtime module name, its version) from the first LiteRT found."""
    errors = []
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert", _dist_version(["ai-edge-litert"])
    except ImportError as e:
        errors.append(f"ai_edge_litert: {e}")
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite_runtime", _dist_version(["tflite-runtime"])
    except ImportError as e:
        errors.append(f"tflite_runtime: {e}")
    try:
        import tensorflow as tf

        return tf.lite.Interpreter, "tensorflow", getattr(tf, "__version__", None)
    except ImportError as e:
        errors.append(f"tensorflow: {e}")
    raise AgentFailure(
        "missing_runtime", "no LiteRT interpreter importable ({})".format("; ".join(errors))
    )


class LiteRTModel(Model):
    runtime = "litert"

    def __init__(self, path: str, threads: int | None, xnnpack: bool | None = None) -> None:
        interpreter_cls, module, version = _import_litert()
        self.module = module
        self.version = version
        self.xnnpack = xnnpack
        kwargs: dict[str, Any] = {"model_path": path, "num_threads": threads}
        if xnnpack is not None:
            # The op resolver decides whether the default delegate (XNNPACK on CPU
            # builds) is applied; AUTO is the runtime's default, which applies it.
            resolver = getattr(sys.modules.get(interpreter_cls.__module__), "OpResolverType", None)
            if resolver is None:
                raise AgentFailure(
                    "bad_request",
                    f"{module} {version} cannot switch XNNPACK on or off (no OpResolverType)",
                )
            kwargs["experimental_op_resolver_type"] = (
                resolver.AUTO if xnnpack else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        try:
            self.interp = interpreter_cls(**kwargs)
            self.interp.allocate_tensors()
        except Exception as e:
            raise AgentFailure("load_failed", f"{module} cannot load {path}: {e}") from e
        self.inputs = [self._desc(d) for d in self.interp.get_input_details()]
        self.outputs = [self._desc(d) for d in self.interp.get_output_details()]
        # Current tensor shapes, so run() resizes only when a feed's shape changes.
        self._shapes = [tuple(int(x) for x in d["shape"]) for d in self.interp.get_input_details()]

    @staticmethod
    def _desc(d: dict[str, Any]) -> dict[str, Any]:
        np = _np()
        sig = d.get("shape_signature")
        dims = list(sig if sig is not None and len(sig) else d["shape"])
        scale, zero_point = d.get("quantization") or (0.0, 0)
        return {
            "name": d["name"],
            "shape": [int(x) if int(x) >= 0 else None for x in dims],
            "dtype": np.dtype(d["dtype"]).name,
            "index": d["index"],
            # A zero scale means "not quantized" in LiteRT's per-tensor parameters.
            "quant": (float(scale), int(zero_point)) if scale else None,
        }

    invoke_region = "Interpreter.invoke (inputs set once before the window)"
    io_region = "set_tensor + invoke + get_tensor (a copy of each output)"

    def run(self, feed: list[Any]) -> list[Any]:
        self.bind(feed)
        self.interp.invoke()
        # get_tensor copies, like onnxruntime's run returns fresh arrays: timings compare.
        return [self.interp.get_tensor(d["index"]) for d in self.outputs]

    def bind(self, feed: list[Any]) -> None:
        interp = self.interp
        resized = False
        for i, value in enumerate(feed):
            if value.shape != self._shapes[i]:
                # Dynamic dims: resize (only the inputs whose shape changed) and
                # re-allocate once; a static input refuses, with the runtime's message.
                interp.resize_tensor_input(self.inputs[i]["index"], list(value.shape))
                self._shapes[i] = value.shape
                resized = True
        if resized:
            interp.allocate_tensors()
        for i, value in enumerate(feed):
            interp.set_tensor(self.inputs[i]["index"], value)

    def invoke(self) -> None:
        self.interp.invoke()

    def delegated_nodes(self) -> int | None:
        """Nodes of the execution plan a delegate (XNNPACK) took over, where the
        interpreter exposes its plan; None where it does not."""
        details = getattr(self.interp, "_get_ops_details", None)
        if details is None:
            return None
        try:
            return sum(1 for op in details() if op.get("op_name") == "DELEGATE")
        except Exception:  # noqa: BLE001 - a diagnostic, never a reason to fail a load
            return None

    def describe(self) -> dict[str, Any]:
        d = Model.describe(self)
        d["runtime_module"] = self.module
        d["xnnpack"] = self.xnnpack  # None: the runtime's default (applied)
        d["delegate_nodes"] = self.delegated_nodes()
        return d


# numpy dtype names a TorchScript input may be declared with (all have a torch twin).
_TORCH_INPUT_DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
    "bool",
)


def torch_input_spec(req: dict[str, Any]) -> tuple[list[list[int | None]], list[str]]:
    """``input_shapes`` and ``input_dtypes`` of a torch load request, checked.

    A TorchScript archive declares no input shapes or dtypes, so the host sends them
    (one entry per forward() argument, in order; null marks a dynamic dimension)."""
    shapes = req.get("input_shapes")
    dtypes = req.get("input_dtypes")
    if not isinstance(shapes, list) or not shapes:
        raise AgentFailure(
            "bad_request",
            "runtime 'torch' needs 'input_shapes' (a list of shapes, one per model input, "
            "e.g. [[1, 1, 8, 8]]): a TorchScript archive does not declare them",
        )
    for shape in shapes:
        if not isinstance(shape, list) or not all(
            d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 1) for d in shape
        ):
            raise AgentFailure(
                "bad_request",
                f"input_shapes entries must be lists of integers >= 1 or null, not {shape!r}",
            )
    if not isinstance(dtypes, list) or len(dtypes) != len(shapes):
        raise AgentFailure(
            "bad_request",
            "runtime 'torch' needs 'input_dtypes' (a list of numpy dtype names, one per "
            'entry of input_shapes, e.g. ["float32"]), got ' + repr(dtypes),
        )
    for dtype in dtypes:
        if dtype not in _TORCH_INPUT_DTYPES:
            raise AgentFailure(
                "bad_request",
                "input_dtypes entries must be one of {}, not {!r}".format(
                    ", ".join(_TORCH_INPUT_DTYPES), dtype
                ),
            )
    return [list(s) for s in shapes], [str(d) for d in dtypes]


def _flatten_outputs(value: Any, torch: Any, names: list[str], prefix: str) -> list[Any]:
    """Tensors of a forward() result in order: a tensor, or tuples/lists/dicts of them."""
    if isinstance(value, torch.Tensor):
        names.append(prefix)
        return [value]
    if isinstance(value, (tuple, list)):
        out = []
        for i, item in enumerate(value):
            out.extend(_flatten_outputs(item, torch, names, f"{prefix}_{i}"))
        return out
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out.extend(_flatten_outputs(item, torch, names, str(key)))
        return out
    raise AgentFailure(
        "load_failed", f"model output {prefix} is a {type(value).__name__}, not a tensor"
    )


class TorchModel(Model):
    """A TorchScript archive (torch.jit.save) run with libtorch's JIT."""

    runtime = "torch"
    # torch's own intra-op thread count, read before the first set_num_threads: that
    # setting is process-wide, so a later load with threads=null must restore it.
    _default_threads: int | None = None

    def __init__(
        self,
        path: str,
        threads: int | None,
        device: str,
        input_shapes: list[list[int | None]],
        input_dtypes: list[str],
    ) -> None:
        import warnings

        np = _np()
        try:
            import torch
        except (ImportError, OSError) as e:
            raise AgentFailure("missing_runtime", f"torch is not importable: {e}") from e
        self.torch = torch
        self.version = getattr(torch, "__version__", None)
        self.device = device
        if device == "cuda" and not torch.cuda.is_available():
            raise AgentFailure(
                "missing_runtime",
                "device 'cuda' requested but torch.cuda.is_available() is false "
                "(torch {}, built with CUDA {})".format(
                    self.version, getattr(torch.version, "cuda", None) or "no"
                ),
            )
        if TorchModel._default_threads is None:
            TorchModel._default_threads = torch.get_num_threads()
        torch.set_num_threads(threads if threads is not None else TorchModel._default_threads)
        try:
            with warnings.catch_warnings():
                # torch >= 2.10 flags torch.jit as deprecated on every call; not our news.
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(path, map_location=device)
            self.module.eval()
        except Exception as e:
            raise AgentFailure("load_failed", f"torch cannot load {path}: {e}") from e
        names = self._arg_names(len(input_shapes))
        self.inputs = [
            {"name": name, "shape": shape, "dtype": dtype, "quant": None}
            for name, shape, dtype in zip(names, input_shapes, input_dtypes)
        ]
        # No declared outputs either: one probe run with the declared inputs (dynamic
        # dims as 1) gives their number, names, shapes and dtypes.
        rng = np.random.default_rng(0)
        probe = [random_input(rng, d) for d in self.inputs]
        try:
            raw = self._forward(probe)
        except Exception as e:
            raise AgentFailure(
                "load_failed",
                f"probe run with input_shapes {input_shapes} and input_dtypes "
                f"{input_dtypes} failed: {type(e).__name__}: {e}",
            ) from e
        out_names: list[str] = []
        tensors = _flatten_outputs(raw, torch, out_names, "output")
        results = self._to_numpy(tensors)
        self.outputs = [
            {"name": name, "shape": [int(d) for d in r.shape], "dtype": r.dtype.name, "quant": None}
            for name, r in zip(out_names, results)
        ]

    def _arg_names(self, n: int) -> list[str]:
        """forward()'s argument names (the first n after self), input_<i> where unknown."""
        names = [f"input_{i}" for i in range(n)]
        try:
            args = [a for a in self.module.forward.schema.arguments if a.name != "self"]
        except Exception:
            return names
        required = [a for a in args if not a.has_default_value()]
        if len(required) > n or len(args) < n:
            raise AgentFailure(
                "bad_request",
                "forward() takes {} to {} inputs ({}), input_shapes has {}".format(
                    len(required), len(args), ", ".join(a.name for a in args), n
                ),
            )
        return [args[i].name for i in range(n)]

    def _to_torch(self, value: Any) -> Any:
        if not value.flags.writeable:
            value = value.copy()  # torch.from_numpy warns on read-only arrays
        t = self.torch.from_numpy(value)
        return t.to(self.device) if self.device != "cpu" else t

    def _to_numpy(self, tensors: list[Any]) -> list[Any]:
        out = []
        for t in tensors:
            if t.is_floating_point():
                t = t.float()  # float16/bfloat16/float64 -> float32 (numpy has no bfloat16)
            out.append(t.cpu().numpy())
        return out

    def _forward(self, feed: list[Any]) -> Any:
        torch = self.torch
        with torch.inference_mode():
            raw = self.module(*[self._to_torch(v) for v in feed])
            if self.device == "cuda":
                # CUDA kernels are queued asynchronously: without this the timed run
                # would end when the launches are queued, not when the GPU is done,
                # and latencies would be fiction (it also surfaces kernel errors here).
                torch.cuda.synchronize()
        return raw

    invoke_region = (
        "forward() under inference_mode on inputs converted once "
        "(+ torch.cuda.synchronize on cuda); outputs stay tensors"
    )
    io_region = "numpy inputs to tensors + forward() + outputs back to numpy"

    def run(self, feed: list[Any]) -> list[Any]:
        return self._to_numpy(_flatten_outputs(self._forward(feed), self.torch, [], "output"))

    def bind(self, feed: list[Any]) -> None:
        self._tensors = [self._to_torch(v) for v in feed]

    def invoke(self) -> None:
        torch = self.torch
        with torch.inference_mode():
            self.module(*self._tensors)
            if self.device == "cuda":
                torch.cuda.synchronize()

    def describe(self) -> dict[str, Any]:
        d = Model.describe(self)
        d["device"] = self.device
        d["torch_threads"] = self.torch.get_num_threads()
        if self.device == "cuda":
            d["cuda_device_name"] = self.torch.cuda.get_device_name()
        return d


# --------------------------------------------------------------------------- TensorRT


class _TorchCudaMemory:
    """I/O buffers of a TensorRT engine as torch CUDA tensors: the device memory used on
    real boards. TensorRT's Python API runs on device pointers but allocates none; the
    CUDA torch that JetPack images usually carry gives allocation, copies and a stream
    without pycuda or cuda-python."""

    kind = "torch_cuda"

    def __init__(self, torch: Any) -> None:
        self.torch = torch
        # A stream of our own: torch's current stream is by default the legacy default
        # stream (handle 0), on which TensorRT's enqueueV3 adds synchronizations of its
        # own (and warns), which would distort the latencies.
        self.stream = torch.cuda.Stream()
        self.stream_handle = int(self.stream.cuda_stream)

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        torch = self.torch
        torch_dtype = torch.from_numpy(_np().zeros(0, dtype=dtype)).dtype
        with torch.cuda.stream(self.stream):
            return torch.empty(shape, dtype=torch_dtype, device="cuda")

    def address(self, buf: Any) -> int:
        return int(buf.data_ptr())

    def upload(self, buf: Any, value: Any) -> None:
        if not value.flags.writeable:
            value = value.copy()  # torch.from_numpy warns on read-only arrays
        with self.torch.cuda.stream(self.stream):
            buf.copy_(self.torch.from_numpy(value))

    def synchronize(self) -> None:
        self.stream.synchronize()

    def download(self, buf: Any) -> Any:
        with self.torch.cuda.stream(self.stream):
            return buf.cpu().numpy()

    def describe(self) -> dict[str, Any]:
        return {"cuda_device_name": self.torch.cuda.get_device_name()}


class _HostMemoryForTests:
    """TEST ONLY: numpy arrays in host memory posing as device memory, their addresses
    as the "device pointers", no stream. Used only when the imported ``tensorrt`` is
    edgebench's test stand-in (tests/fake_tensorrt, which sets ``EDGEBENCH_FAKE``); real
    TensorRT would take these host addresses for device pointers. This path lets the
    tests drive TensorRTModel and the protocol on machines without a GPU; it verifies
    nothing about real TensorRT or about _TorchCudaMemory."""

    kind = "host_numpy_test_only"
    stream_handle = 0

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return _np().zeros(shape, dtype=dtype)

    def address(self, buf: Any) -> int:
        return int(buf.ctypes.data)

    def upload(self, buf: Any, value: Any) -> None:
        buf[...] = value

    def synchronize(self) -> None:
        pass

    def download(self, buf: Any) -> Any:
        return buf.copy()

    def describe(self) -> dict[str, Any]:
        return {}


def _import_tensorrt() -> tuple[Any, Any]:
    """(tensorrt module, I/O memory), or missing_runtime naming everything missing."""
    missing = []
    trt: Any = None
    try:
        import tensorrt as trt
    except (ImportError, OSError) as e:
        missing.append(f"tensorrt (the TensorRT Python API) is not importable: {e}")
    if trt is not None:
        version = getattr(trt, "__version__", None)
        needed = (
            (getattr(trt, "ICudaEngine", None), "num_io_tensors"),
            (getattr(trt, "IExecutionContext", None), "set_input_shape"),
            (getattr(trt, "IExecutionContext", None), "set_tensor_address"),
            (getattr(trt, "IExecutionContext", None), "execute_async_v3"),
        )
        if not all(cls is not None and hasattr(cls, attr) for cls, attr in needed):
            raise AgentFailure(
                "missing_runtime",
                f"TensorRT {version} lacks the name-based API (num_io_tensors, "
                "set_tensor_address, execute_async_v3) of TensorRT >= 8.5; time this "
                "engine with trtexec instead",
            )
        if getattr(trt, "EDGEBENCH_FAKE", False):
            log(f"tensorrt {version} is edgebench's TEST STAND-IN: host memory, no GPU")
            return trt, _HostMemoryForTests()
    torch: Any = None
    try:
        import torch
    except (ImportError, OSError) as e:
        missing.append(f"torch (for device memory and a CUDA stream) is not importable: {e}")
    if torch is not None and not torch.cuda.is_available():
        missing.append(
            "torch {} has no usable CUDA device (torch.cuda.is_available() is false, "
            "built with CUDA {})".format(
                getattr(torch, "__version__", None), getattr(torch.version, "cuda", None) or "no"
            )
        )
    if missing:
        raise AgentFailure(
            "missing_runtime",
            "runtime 'tensorrt' needs the TensorRT Python API and torch with CUDA: "
            + "; ".join(missing),
        )
    return trt, _TorchCudaMemory(torch)


class TensorRTModel(Model):
    """A serialized TensorRT engine (as trtexec --saveEngine writes it), run with the
    TensorRT Python API's name-based calls (TensorRT >= 8.5): one buffer per I/O tensor,
    bound once with set_tensor_address, then execute_async_v3 per run."""

    runtime = "tensorrt"

    def __init__(self, path: str) -> None:
        np = _np()
        trt, memory = _import_tensorrt()
        self.trt = trt
        self.memory = memory
        self.version = getattr(trt, "__version__", None)
        self.logger = trt.Logger(trt.Logger.WARNING)  # TensorRT's own messages -> stderr
        self.trt_runtime = trt.Runtime(self.logger)
        with open(path, "rb") as f:
            blob = f.read()
        try:
            engine = self.trt_runtime.deserialize_cuda_engine(blob)
        except Exception as e:
            raise AgentFailure(
                "load_failed", f"TensorRT {self.version} cannot deserialize {path}: {e}"
            ) from e
        if engine is None:
            raise AgentFailure(
                "load_failed",
                f"TensorRT {self.version} cannot deserialize {path} (an engine loads only "
                "with the TensorRT version and GPU that built it; TensorRT's message is in "
                "the agent's stderr)",
            )
        self.engine = engine
        context = engine.create_execution_context()
        if context is None:
            raise AgentFailure("load_failed", f"TensorRT cannot create a context for {path}")
        self.context = context
        self.inputs = []
        self.outputs = []
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            trt_dtype = engine.get_tensor_dtype(name)
            try:
                np_type = trt.nptype(trt_dtype)
            except Exception:
                np_type = None
            if np_type is None:
                raise AgentFailure(
                    "load_failed", f"I/O tensor {name} has type {trt_dtype}, which numpy lacks"
                )
            desc = {
                "name": name,
                "shape": [int(d) if int(d) >= 0 else None for d in engine.get_tensor_shape(name)],
                "dtype": np.dtype(np_type).name,
                "quant": None,  # trtexec keeps float I/O unless told --inputIOFormats
            }
            mode = engine.get_tensor_mode(name)
            if mode == trt.TensorIOMode.INPUT:
                self.inputs.append(desc)
            elif mode == trt.TensorIOMode.OUTPUT:
                self.outputs.append(desc)
        self._buffers: dict[str, Any] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        # Every buffer is allocated here, once. A dynamic dimension is bound as 1, which
        # is what bench and eval feed (see random_input and op_eval); another shape
        # later re-binds, outside the steady state that bench times.
        for d in self.inputs:
            self._bind_input(d, tuple(concrete_shape(d["shape"])), "load_failed")
        self._bind_outputs("load_failed")

    def _bind_input(self, desc: dict[str, Any], shape: tuple[int, ...], kind: str) -> None:
        name = desc["name"]
        if not self.context.set_input_shape(name, shape):
            try:
                low, _, high = self.engine.get_tensor_profile_shape(name, 0)
                allowed = f"profile 0 allows {list(low)} to {list(high)}"
            except Exception:
                allowed = "engine shape {}".format(desc["shape"])
            raise AgentFailure(
                kind, f"TensorRT refused shape {list(shape)} for input {name} ({allowed})"
            )
        self._bind(name, shape, desc["dtype"])

    def _bind_outputs(self, kind: str) -> None:
        for d in self.outputs:
            shape = tuple(int(x) for x in self.context.get_tensor_shape(d["name"]))
            if any(x < 0 for x in shape):
                raise AgentFailure(
                    kind,
                    "output {} has a data-dependent shape {}, not supported".format(
                        d["name"], list(shape)
                    ),
                )
            if shape != self._shapes.get(d["name"]):
                self._bind(d["name"], shape, d["dtype"])

    def _bind(self, name: str, shape: tuple[int, ...], dtype: str) -> None:
        buf = self.memory.empty(shape, dtype)
        if not self.context.set_tensor_address(name, self.memory.address(buf)):
            raise AgentFailure("runtime_error", f"TensorRT refused the buffer for {name}")
        self._buffers[name] = buf  # keeps the memory alive while TensorRT points at it
        self._shapes[name] = shape

    invoke_region = "execute_async_v3 + stream synchronize (inputs uploaded once)"
    io_region = "host-to-device copies + execute_async_v3 + synchronize + device-to-host copies"

    def run(self, feed: list[Any]) -> list[Any]:
        self.bind(feed)
        self.invoke()
        return [self.memory.download(self._buffers[d["name"]]) for d in self.outputs]

    def bind(self, feed: list[Any]) -> None:
        memory = self.memory
        reshaped = False
        for i, value in enumerate(feed):
            desc = self.inputs[i]
            if tuple(value.shape) != self._shapes[desc["name"]]:
                self._bind_input(desc, tuple(int(x) for x in value.shape), "bad_request")
                reshaped = True
        if reshaped:
            self._bind_outputs("bad_request")
        for i, value in enumerate(feed):
            memory.upload(self._buffers[self.inputs[i]["name"]], value)
        memory.synchronize()  # the upload is not part of the next invoke()

    def invoke(self) -> None:
        memory = self.memory
        if not self.context.execute_async_v3(memory.stream_handle):
            raise AgentFailure("runtime_error", "TensorRT execute_async_v3 failed (see stderr)")
        # execute_async_v3 only queues the work on the stream. Waiting for it here,
        # inside the timed run, makes a latency sample cover the inference itself and
        # not just its launch (and surfaces this run's errors here).
        memory.synchronize()

    def __del__(self) -> None:
        # Release in dependency order (context, its buffers, engine, runtime) rather
        # than in attribute order, which would drop the runtime first.
        for attr in ("context", "_buffers", "engine", "trt_runtime"):
            self.__dict__.pop(attr, None)

    def describe(self) -> dict[str, Any]:
        d = Model.describe(self)
        d["device"] = "cuda"
        d["io_memory"] = self.memory.kind
        d.update(self.memory.describe())
        return d


# --------------------------------------------------------------------------- helpers


def concrete_shape(shape: list[int | None]) -> list[int]:
    return [1 if d is None else int(d) for d in shape]


def random_input(rng: Any, desc: dict[str, Any]) -> Any:
    """Random tensor for one model input (dynamic dims become 1)."""
    np = _np()
    shape = concrete_shape(desc["shape"])
    dtype = np.dtype(desc["dtype"])
    if dtype.kind == "f":
        return rng.random(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if dtype.itemsize == 1:
            low, high = int(info.min), int(info.max)
        else:
            # Wide integer inputs are usually indices (token ids, positions): the full
            # range would index out of bounds, small non-negative values do not.
            low, high = 0, 127
        return rng.integers(low, high, size=shape, endpoint=True).astype(dtype)
    raise AgentFailure("bad_request", f"cannot generate input of dtype {dtype.name}")


def quantize(x: Any, desc: dict[str, Any]) -> Any:
    """Bring host data to the model input's dtype, quantizing floats if the input is."""
    np = _np()
    dtype = np.dtype(desc["dtype"])
    quant = desc.get("quant")
    if quant is not None and dtype.kind in "iu" and x.dtype.kind == "f":
        scale, zero_point = quant
        info = np.iinfo(dtype)
        q = np.round(x.astype(np.float64) / scale + zero_point)
        return np.clip(q, info.min, info.max).astype(dtype)
    return x.astype(dtype, copy=False)


def dequantize(y: Any, desc: dict[str, Any]) -> Any:
    """Model output -> float32, applying the output's quantization if it has one."""
    np = _np()
    y = np.asarray(y)
    quant = desc.get("quant")
    if quant is not None and y.dtype.kind in "iu":
        scale, zero_point = quant
        return ((y.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)).astype(
            np.float32
        )
    return y.astype(np.float32)


def encode_array(a: Any) -> dict[str, Any]:
    np = _np()
    a = np.ascontiguousarray(a)
    a = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {
        "dtype": a.dtype.name,
        "shape": list(a.shape),
        "data_b64": base64.b64encode(a.tobytes()).decode("ascii"),
    }


def decode_array(obj: Any) -> Any:
    np = _np()
    if not isinstance(obj, dict):
        raise AgentFailure("bad_request", "an array must be {dtype, shape, data_b64}")
    try:
        dtype = np.dtype(str(obj["dtype"])).newbyteorder("<")
        shape = [int(d) for d in obj["shape"]]
        raw = base64.b64decode(obj["data_b64"])
    except Exception as e:
        raise AgentFailure("bad_request", f"bad array: {e}") from e
    expected = dtype.itemsize
    for d in shape:
        expected *= d
    if len(raw) != expected:
        raise AgentFailure(
            "bad_request",
            f"array data has {len(raw)} bytes, shape {shape} of {dtype} needs {expected}",
        )
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


TIMER_FLOOR_CALLS = 1001  # odd: the median is one sample


def _noop() -> None:
    """Stands in for model.invoke when the agent measures its own timing floor."""
    return None


# z for a two-sided 95% interval: the controller's exact binomial CI of the median
# (harness/stats.py) uses the same level; the agent's stopping rule approximates it.
_Z95 = 1.959963984540054


def median_ci_rel_width(samples: list[int]) -> float:
    """(CI high - CI low) / median of the samples' median, 95%, distribution-free.

    The interval is the order statistics at ranks n/2 -+ z*sqrt(n)/2 (the normal
    approximation of the Binomial(n, 1/2) ranks, close to exact from n = 30 on).
    Infinite when n is too small for an interval or the median is 0."""
    n = len(samples)
    half = _Z95 * (n ** 0.5) / 2.0
    lo = int(n / 2.0 - half)  # 0-based ranks
    hi = int(n / 2.0 + half + 1.0)
    if lo < 0 or hi >= n:
        return float("inf")
    ordered = sorted(samples)
    median = ordered[n // 2]
    return (ordered[hi] - ordered[lo]) / median if median > 0 else float("inf")


def _timed_window(
    call: Callable[[], Any],
    clock: Callable[[], int],
    min_runs: int,
    min_ns: int,
    max_runs: int,
    target_rel_ci: float | None,
    max_window_ns: int,
) -> list[int]:
    """Samples (ns) of one window, each run timed on its own.

    Fixed rule: until both min_runs runs and min_ns have passed (or max_runs).
    Adaptive rule (target_rel_ci set): once both min_runs and min_ns are reached, until
    the median's 95% CI is within target_rel_ci of the median, or max_window_ns has
    passed (or max_runs). The CI is checked each time the window has grown by a tenth,
    outside any timed run, so the checks cost O(n log n) in all and nothing inside a
    sample. The CI treats samples as independent; min_ns is what lets slow variation
    (a frequency step, a neighbour's burst) into the window before it may stop."""
    samples: list[int] = []
    append = samples.append
    start = clock()
    if target_rel_ci is None:
        while len(samples) < max_runs and (len(samples) < min_runs or clock() - start < min_ns):
            s = clock()
            call()
            append(clock() - s)
        return samples
    check_at = min_runs
    while len(samples) < max_runs and clock() - start < max_window_ns:
        s = clock()
        call()
        append(clock() - s)
        if len(samples) >= check_at and clock() - start >= min_ns:
            if median_ci_rel_width(samples) <= target_rel_ci:
                break
            check_at = len(samples) + max(1, len(samples) // 10)
    return samples


def _pin(cpus: Any) -> list[int] | None:
    """Pin this process (and the runtime threads it starts later) to `cpus`."""
    if cpus is None:
        return None
    if (
        not isinstance(cpus, list)
        or not cpus
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cpus)
    ):
        raise AgentFailure("bad_request", "cpus must be a non-empty list of CPU numbers")
    setter = getattr(os, "sched_setaffinity", None)
    if setter is None:
        raise AgentFailure("bad_request", f"cannot pin to CPUs on {platform.system()}")
    try:
        # Runtime thread pools are created at load and inherit the creating thread's
        # affinity, so pinning before the load pins them too.
        setter(0, set(cpus))
    except (OSError, ValueError) as e:
        raise AgentFailure("bad_request", f"cannot pin to CPUs {cpus}: {e}") from e
    return sorted(os.sched_getaffinity(0))


def _cpu_freqs_khz() -> dict[str, int]:
    """Current frequency of each CPU this process may run on, where cpufreq exists."""
    getter = getattr(os, "sched_getaffinity", None)
    cpus = sorted(getter(0)) if getter else []
    out = {}
    for cpu in cpus:
        text = _read_text(f"/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq")
        if text and text.strip().isdigit():
            out[str(cpu)] = int(text.strip())
    return out


class PowerSampler:
    """Collects raw power/telemetry readings on the device while the model runs.

    The agent does not interpret sensor formats: it timestamps raw text with the
    same clock as the measured windows (perf_counter) and the host parses it
    (devices/power). Modes, all given as argv lists or file paths by the host:
      stream:        spawn ``argv`` (e.g. tegrastats --interval 100) and stamp each line
      poll_command:  run ``argv`` every ``interval_ms`` (e.g. vcgencmd pmic_read_adc)
      poll_files:    read ``files`` {name: path} every ``interval_ms`` (sysfs hwmon rails)
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        self.mode = spec.get("mode")
        self.argv = [str(a) for a in spec.get("argv") or []]
        self.files = {str(k): str(v) for k, v in (spec.get("files") or {}).items()}
        self.interval = max(0.01, float(spec.get("interval_ms", 100)) / 1000.0)
        self.readings: list[list[Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._proc: Any = None
        self._thread: Any = None
        if self.mode not in ("stream", "poll_command", "poll_files"):
            raise AgentFailure(
                "bad_request", "power.mode must be stream, poll_command or poll_files"
            )
        if self.mode != "poll_files" and not self.argv:
            raise AgentFailure("bad_request", "power.argv is required for mode " + str(self.mode))

    @staticmethod
    def now() -> float:
        return time.perf_counter_ns() / 1e9

    def start(self) -> None:
        import subprocess

        if self.mode == "stream":
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    bufsize=1,
                )
            except OSError as e:
                raise AgentFailure("missing_sensor", f"cannot start {self.argv[0]}: {e}") from e
            _CHILDREN.append(self._proc)
            target = self._pump_stream
        else:
            target = self._poll
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def wait_for_reading(self, after: float, timeout: float) -> bool:
        """Wait until a reading stamped at or after ``after`` has arrived.

        Used so that readings bracket the idle period and the measured windows: the
        first reading precedes the idle clock's start, and one reading follows the
        last window's end, so the host interpolates instead of extrapolating. Gives up
        after ``timeout`` s (a sensor that stopped talking) or when a stream tool exits.
        """
        deadline = self.now() + timeout
        while True:
            readings = self.readings
            if readings and readings[-1][0] >= after:
                return True
            if self.now() >= deadline:
                return False
            if self._proc is not None and self._proc.poll() is not None:
                return False
            time.sleep(0.002)

    def settle_timeout(self) -> float:
        """How long one more reading may reasonably take: a few sensor periods."""
        return 3 * self.interval + 0.5

    def _pump_stream(self) -> None:
        for line in self._proc.stdout:
            self.readings.append([self.now(), line.rstrip("\n")])
            if self._stop.is_set():
                break

    def _poll(self) -> None:
        import subprocess

        while not self._stop.is_set():
            t = self.now()
            if self.mode == "poll_command":
                try:
                    out = subprocess.run(
                        self.argv,
                        capture_output=True,
                        text=True,
                        timeout=5,
                    )
                    text = out.stdout
                except (OSError, subprocess.TimeoutExpired) as e:
                    self.errors.append(str(e))
                    text = None
            else:
                parts = []
                for name, path in self.files.items():
                    value = _read_text(path)
                    parts.append(f"{name}={value.strip() if value is not None else ''}")
                text = ";".join(parts)
            if text is not None:
                self.readings.append([t, text])
            self._stop.wait(self.interval)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - a sensor tool that ignores SIGTERM is killed
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return {
            "mode": self.mode,
            "interval_ms": self.interval * 1000.0,
            "readings": self.readings,
            "errors": self.errors[-5:],
        }


def _int(req: dict[str, Any], key: str, default: Any, minimum: int = 0) -> Any:
    value = req.get(key, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise AgentFailure("bad_request", f"{key} must be an integer >= {minimum}")
    return value


def _float(req: dict[str, Any], key: str, default: float) -> float:
    value = req.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise AgentFailure("bad_request", f"{key} must be a number >= 0")
    return float(value)


# --------------------------------------------------------------------------- agent



# --------------------------------------------------------------------------- runtimes
# Each runtime the agent loads: a function that checks the load request's fields for
# that runtime and returns how to open the model file (timed as init: importing the
# runtime plus creating the session/interpreter). Adding a runtime: a Model subclass
# and one entry here.
Opener = Callable[[str], Model]


def _no_device(device: str | None) -> None:
    # onnxruntime and LiteRT pick their device through providers/delegates; never
    # measure a silent CPU fallback under a "cuda" label.
    if device not in (None, "cpu"):
        raise AgentFailure(
            "bad_request", f"device {device!r} is for runtime 'torch' only (use providers)"
        )


def _onnxruntime(req: dict[str, Any], threads: int | None, device: str | None) -> Opener:
    _no_device(device)
    providers = req.get("providers")
    return lambda path: OnnxModel(path, threads, providers)


def _litert(req: dict[str, Any], threads: int | None, device: str | None) -> Opener:
    _no_device(device)
    xnnpack = req.get("xnnpack")
    return lambda path: LiteRTModel(path, threads, xnnpack)


def _torch(req: dict[str, Any], threads: int | None, device: str | None) -> Opener:
    shapes, dtypes = torch_input_spec(req)
    return lambda path: TorchModel(path, threads, device or "cpu", shapes, dtypes)


def _tensorrt(req: dict[str, Any], threads: int | None, device: str | None) -> Opener:
    if device not in (None, "cuda"):
        # An engine runs on the GPU that built it; there is no CPU fallback.
        raise AgentFailure(
            "bad_request", f"runtime 'tensorrt' runs on 'cuda' only, not {device!r}"
        )
    return lambda path: TensorRTModel(path)  # threads do not apply to a GPU engine


RUNTIMES: dict[str, Callable[[dict[str, Any], int | None, str | None], Opener]] = {
    "onnxruntime": _onnxruntime,
    "litert": _litert,
    "torch": _torch,
    "tensorrt": _tensorrt,
}


class Agent:
    def __init__(self) -> None:
        self.model: Model | None = None
        self.model_path: str | None = None
        self.rss_after_load: int | None = None
        self._facts: dict[str, Any] | None = None
        self.done = False
        self._reset_eval()

    def _reset_eval(self) -> None:
        self.eval_count = 0
        self.eval_labelled = 0
        self.eval_correct = 0
        self.eval_hash = hashlib.sha256()

    def facts(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = collect_facts()
        return self._facts

    def _loaded(self) -> Model:
        if self.model is None:
            raise AgentFailure("not_loaded", "no model is loaded; send a load request first")
        return self.model

    # ops ---------------------------------------------------------------------------

    def op_hello(self, req: dict[str, Any]) -> dict[str, Any]:
        return {
            "agent_version": AGENT_VERSION,
            "protocol": PROTOCOL_VERSION,
            "pid": os.getpid(),
            "facts": self.facts(),
        }

    def op_load(self, req: dict[str, Any]) -> dict[str, Any]:
        path = req.get("path")
        expected = req.get("sha256")
        runtime = req.get("runtime")
        if not isinstance(path, str) or not path:
            raise AgentFailure("bad_request", "load needs a 'path' string")
        if not isinstance(expected, str) or not expected:
            raise AgentFailure("bad_request", "load needs a 'sha256' string")
        if not isinstance(runtime, str) or runtime not in RUNTIMES:
            raise AgentFailure(
                "bad_request",
                f"runtime must be one of {', '.join(map(repr, RUNTIMES))}, not {runtime!r}",
            )
        threads = _int(req, "threads", None, minimum=1)
        device = req.get("device")
        if device is not None and device not in ("cpu", "cuda"):
            raise AgentFailure(
                "bad_request", f"device must be 'cpu', 'cuda' or null, not {device!r}"
            )
        xnnpack = req.get("xnnpack")
        if xnnpack is not None and (not isinstance(xnnpack, bool) or runtime != "litert"):
            raise AgentFailure("bad_request", "xnnpack must be true, false or null (litert only)")
        open_model = RUNTIMES[runtime](req, threads, device)  # checks its own fields
        providers = req.get("providers")
        if providers is not None and (
            not isinstance(providers, list) or not all(isinstance(p, str) for p in providers)
        ):
            raise AgentFailure("bad_request", "providers must be a list of strings or null")
        if not os.path.isfile(path):
            raise AgentFailure("missing_file", f"model file {path} does not exist")
        actual = sha256_file(path)
        if actual != expected.lower():
            raise AgentFailure(
                "hash_mismatch",
                f"{path} has sha256 {actual}, expected {expected.lower()}",
            )
        # Drop the old model first so its memory is not counted in the new one's RSS;
        # a failed load therefore leaves nothing loaded.
        self.model = None
        self.model_path = None
        self._reset_eval()
        pinned = _pin(req.get("cpus"))
        t0 = time.perf_counter()
        model = open_model(path)
        init_s = time.perf_counter() - t0
        self.model = model
        self.model_path = path
        self.rss_after_load = _proc_status_bytes("VmRSS")
        result = model.describe()
        result["path"] = path
        result["sha256"] = actual
        result["threads"] = threads
        result["init_s"] = init_s
        result["cpus"] = pinned
        result["rss_after_load_bytes"] = self.rss_after_load
        return result

    def op_bench(self, req: dict[str, Any]) -> dict[str, Any]:
        model = self._loaded()
        np = _np()
        warmup_runs = _int(req, "warmup_runs", 10)
        warmup_min_s = _float(req, "warmup_min_s", 0.1)
        min_runs = _int(req, "min_runs", 50, minimum=1)
        min_duration_s = _float(req, "min_duration_s", 0.5)
        repetitions = _int(req, "repetitions", 5, minimum=1)
        seed = _int(req, "seed", 0)
        max_runs = _int(req, "max_runs", 100000, minimum=1)
        target = req.get("target_rel_ci")
        if target is not None and (
            isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1
        ):
            raise AgentFailure("bad_request", "target_rel_ci must be a number in (0, 1) or null")
        max_window_ns = int(_float(req, "max_window_s", 10.0) * 1e9)
        io_window = req.get("io_window", True)
        if not isinstance(io_window, bool):
            raise AgentFailure("bad_request", "io_window must be true or false")

        rng = np.random.default_rng(seed)
        feed = [random_input(rng, d) for d in model.inputs]
        clock = time.perf_counter_ns

        # Power: sample an idle baseline first (model loaded, nothing running), then
        # keep sampling through warm-up and the measured windows.
        sampler = None
        idle = None
        if req.get("power"):
            sampler = PowerSampler(req["power"])
            sampler.start()
            # The idle clock starts once the sensor is talking (tegrastats takes a
            # moment to print its first line), so the baseline has readings in it.
            sampler.wait_for_reading(float("-inf"), sampler.settle_timeout())
            idle_s = float(req["power"].get("idle_s", 1.0))
            idle_t0 = PowerSampler.now()
            time.sleep(idle_s)
            idle = [idle_t0, PowerSampler.now()]

        try:
            freqs_before = _cpu_freqs_khz()
            t0 = clock()
            model.run(feed)
            first_ns = clock() - t0
            model.bind(feed)
            invoke = model.invoke

            # Warm-up needs both a count (caches, JIT-ish lazy init) and a time (CPU
            # frequency governors ramp up over wall time, not over iterations).
            warm_count = 0
            warm_start = clock()
            warm_min_ns = int(warmup_min_s * 1e9)
            while warm_count < max_runs and (
                warm_count < warmup_runs or clock() - warm_start < warm_min_ns
            ):
                invoke()
                warm_count += 1
            warm_ns = clock() - warm_start

            # Writing 5 to clear_refs resets VmHWM, so the peak below covers only the
            # measured windows, not load-time or first-inference allocations.
            vmhwm_reset = False
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                vmhwm_reset = True
            except OSError:
                pass

            # The floor under every sample: the same timing around a call that does
            # nothing. Reported beside the latencies so a figure within a few times of
            # it is read as the harness's cost, not the model's.
            floor = []
            for _ in range(TIMER_FLOOR_CALLS):
                s = clock()
                _noop()
                floor.append(clock() - s)
            floor.sort()
            timer_floor_s = floor[len(floor) // 2] / 1e9

            windows = []
            min_ns = int(min_duration_s * 1e9)
            rule = (min_runs, min_ns, max_runs, target, max_window_ns)
            for _ in range(repetitions):
                start = clock()
                samples = _timed_window(invoke, clock, *rule)
                end = clock()
                windows.append(
                    {
                        "samples_s": [x / 1e9 for x in samples],
                        "duration_s": (end - start) / 1e9,
                        # Window position on the clock the power readings are stamped with.
                        "t0_s": start / 1e9,
                        "t1_s": end / 1e9,
                    }
                )
            freqs_after = _cpu_freqs_khz()
            # The same window rule around the whole call a user makes (inputs in,
            # outputs out), after the measured windows and outside the power spans:
            # what set/get of the tensors adds beside the invoke-only headline.
            with_io = None
            if io_window and model.io_region != model.invoke_region:
                start = clock()
                samples = _timed_window(lambda: model.run(feed), clock, *rule)
                with_io = {
                    "samples_s": [x / 1e9 for x in samples],
                    "duration_s": (clock() - start) / 1e9,
                }
        except BaseException:
            if sampler is not None:
                sampler.stop()  # never leave a sensor tool running behind a failed bench
            raise
        power = None
        if sampler is not None:
            # One reading after the last window closes it on the sensor's timeline.
            sampler.wait_for_reading(windows[-1]["t1_s"], sampler.settle_timeout())
            power = sampler.stop()
            power["idle"] = idle
        return {
            "power": power,
            "first_inference_s": first_ns / 1e9,
            "timer_floor_s": timer_floor_s,
            "warmup": {"count": warm_count, "time_s": warm_ns / 1e9},
            "windows": windows,
            "peak_rss_bytes": _proc_status_bytes("VmHWM"),
            "rss_after_load_bytes": self.rss_after_load,
            "vmhwm_reset": vmhwm_reset,
            "timer": "perf_counter_ns",
            "timed_region": model.invoke_region,
            "with_io": with_io,
            "io_region": model.io_region if with_io is not None else None,
            "stop_rule": "adaptive" if target is not None else "fixed",
            "cpu_freq_khz": {"before": freqs_before, "after": freqs_after},
        }

    def op_eval(self, req: dict[str, Any]) -> dict[str, Any]:
        model = self._loaded()
        np = _np()
        if req.get("reset"):
            self._reset_eval()
        x = decode_array(req.get("inputs"))
        if x.ndim < 1 or x.shape[0] < 1:
            raise AgentFailure("bad_request", "inputs need a batch dimension with n >= 1")
        n = int(x.shape[0])
        labels = req.get("labels")
        if labels is not None:
            if not isinstance(labels, list) or len(labels) != n:
                raise AgentFailure("bad_request", f"labels must be a list of {n} integers")
            try:
                labels = [int(v) for v in labels]
            except (TypeError, ValueError):
                raise AgentFailure("bad_request", "labels must be integers") from None
        if not model.inputs or not model.outputs:
            raise AgentFailure("bad_request", "model has no inputs or no outputs")
        in_desc = model.inputs[0]
        out_desc = model.outputs[0]
        # The model's own batch dim decides the chunk: 1 (or dynamic) -> sample by sample,
        # a fixed b > 1 -> b samples per run.
        model_batch = in_desc["shape"][0] if in_desc["shape"] else None
        chunk = model_batch if model_batch else 1
        if n % chunk:
            raise AgentFailure(
                "bad_request", f"batch of {n} is not a multiple of the model batch {chunk}"
            )
        # Other inputs (if any) get fixed random data, like in bench.
        rng = np.random.default_rng(0)
        extra = [random_input(rng, d) for d in model.inputs[1:]]
        outputs = []
        for i in range(0, n, chunk):
            sample = quantize(x[i : i + chunk], in_desc)
            y = dequantize(model.run([sample] + extra)[0], out_desc)
            y = np.ascontiguousarray(y, dtype="<f4")
            self.eval_hash.update(y.tobytes())
            rows = y.reshape(chunk, -1) if y.size else y.reshape(chunk, 0)
            if labels is not None:
                predicted = rows.argmax(axis=1)
                for j in range(chunk):
                    if int(predicted[j]) == labels[i + j]:
                        self.eval_correct += 1
                self.eval_labelled += chunk
            self.eval_count += chunk
            outputs.append(y)
        result: dict[str, Any] = {
            "count": self.eval_count,
            "correct": self.eval_correct,
            "top1": (self.eval_correct / self.eval_labelled) if self.eval_labelled else None,
            "outputs_sha256": self.eval_hash.hexdigest(),
        }
        if req.get("return_outputs"):
            result["outputs"] = encode_array(np.concatenate(outputs, axis=0))
        return result

    def op_bye(self, req: dict[str, Any]) -> dict[str, Any]:
        self.done = True  # main() exits after this reply is written
        return {}

    # dispatch ----------------------------------------------------------------------

    def handle(self, line: str) -> dict[str, Any]:
        try:
            req = json.loads(line)
        except (ValueError, RecursionError) as e:  # RecursionError: "[[[[..." thousands deep
            return _error(None, "bad_request", f"request is not valid JSON: {e}")
        if not isinstance(req, dict):
            return _error(None, "bad_request", "request must be a JSON object")
        rid = req.get("id")
        op = req.get("op")
        if not isinstance(op, str):
            return _error(rid, "bad_request", "request has no 'op' string")
        handler = getattr(self, "op_" + op, None)
        if handler is None:
            return _error(rid, "unknown_op", f"unknown op {op!r}")
        try:
            return {"id": rid, "ok": True, "result": handler(req)}
        except AgentFailure as e:
            return _error(rid, e.kind, e.message)
        except MemoryError:
            return _error(rid, "out_of_memory", f"out of memory during {op}")
        except Exception as e:
            log(f"op {op} failed:\n{traceback.format_exc()}")
            return _error(rid, "runtime_error", f"{type(e).__name__}: {e}")


def _error(rid: Any, kind: str, message: str) -> dict[str, Any]:
    return {"id": rid, "ok": False, "error": {"kind": kind, "message": message}}


def _protocol_stream() -> Any:
    """Keep fd 1 for replies only: native runtime code that prints to stdout would
    corrupt the JSON-lines stream, so fd 1 is pointed at stderr and replies go to a
    private duplicate of the original stdout."""
    try:
        fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        return os.fdopen(fd, "w", encoding="utf-8")
    except OSError:
        return sys.stdout


# Child processes (power sensor tools) to stop if the host goes away mid-request.
_CHILDREN: list[Any] = []


def _request_lines(stdin: Any) -> Any:
    """Request lines, read by a thread so that the host going away is noticed at once,
    even in the middle of a 30-second bench: a controller that was killed must not
    leave an agent measuring for nobody (and holding the device) behind it."""
    import queue

    lines: Any = queue.Queue()

    def pump() -> None:
        # os.read on the descriptor, not the buffered stdin: a daemon thread blocked
        # inside a buffered read holds its lock and aborts the interpreter's exit.
        fd = stdin.fileno()
        parts: list[bytes] = []  # the line so far: eval requests can be megabytes
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            *complete, rest = chunk.split(b"\n")
            for piece in complete:
                parts.append(piece)
                lines.put(b"".join(parts) + b"\n")
                parts = []
            if rest:
                parts.append(rest)
        if parts:
            lines.put(b"".join(parts))
        # EOF: the host closed us or died (its end of the pipe or SSH channel went).
        # Between requests the main loop exits cleanly; mid-request nobody waits for
        # the reply, so stop now, with the sensor tools.
        lines.put(None)
        if busy.is_set():
            for child in _CHILDREN:
                try:
                    child.kill()
                except OSError:
                    pass
            os._exit(0)

    busy = threading.Event()
    threading.Thread(target=pump, name="stdin", daemon=True).start()
    while True:
        raw = lines.get()
        if raw is None:
            return
        busy.set()
        yield raw
        busy.clear()


def main() -> int:
    out = _protocol_stream()
    agent = Agent()
    log(f"agent {AGENT_VERSION} ready (pid {os.getpid()}, python {platform.python_version()})")
    for raw in _request_lines(sys.stdin.buffer):
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        reply = agent.handle(line)
        try:
            text = json.dumps(reply, separators=(",", ":"))
        except (TypeError, ValueError) as e:  # a result that JSON cannot carry is our bug
            text = json.dumps(_error(reply.get("id"), "runtime_error", f"unencodable reply: {e}"))
        out.write(text + "\n")
        out.flush()
        if agent.done:
            return 0
    return 0  # EOF: the host went away or closed us


if __name__ == "__main__":
    sys.exit(main())
