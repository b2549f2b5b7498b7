"""The runner agent and its host client, against real onnxruntime and LiteRT models.

Part (a) drives ``edgebench_agent.py`` as a bare subprocess with raw JSON lines, the way
a compatible agent written from PROTOCOL.md would be tested. Part (b) goes through
``AgentClient`` over the local transport and checks numerics against host references.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib.util
import os
import signal
import sys
import textwrap
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices.errors import AgentError, TransportError, TransportTimeout
from devices.local import LocalTransport
from devices.transport import DeviceConfig, sha256_file
from runners import agent_client
from runners.agent_client import AGENT_PATH, AgentClient
from tests.rawagent import RawAgent

# Tiny timing parameters: these tests check the protocol, not the numbers.
FAST_BENCH = {
    "warmup_runs": 3,
    "warmup_min_s": 0.01,
    "min_runs": 5,
    "min_duration_s": 0.02,
    "repetitions": 2,
}


# --------------------------------------------------------------------------- fixtures


class Models:
    def __init__(self, root: Path) -> None:
        self.onnx = root / "tiny.onnx"
        self.tflite = root / "tiny.tflite"
        self.onnx_sha = ""
        self.tflite_sha = ""
        self.torch_model: Any = None

    def path_and_sha(self, runtime: str) -> tuple[Path, str]:
        if runtime == "onnxruntime":
            return self.onnx, self.onnx_sha
        return self.tflite, self.tflite_sha


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    out = Models(tmp_path_factory.mktemp("agent_models"))
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 10),
    ).eval()
    x = torch.randn(1, 1, 8, 8)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated upstream; it is what the brief asks for.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            m,
            (x,),
            str(out.onnx),
            input_names=["input"],
            output_names=["logits"],
            dynamo=False,
            opset_version=17,
        )
        litert_torch.convert(m, (x,)).export(str(out.tflite))
    out.onnx_sha = sha256_file(out.onnx)
    out.tflite_sha = sha256_file(out.tflite)
    out.torch_model = m
    return out


@pytest.fixture(scope="session")
def samples() -> np.ndarray:
    return np.random.default_rng(42).standard_normal((12, 1, 8, 8)).astype(np.float32)


def reference_outputs(models: Models, runtime: str, x: np.ndarray) -> np.ndarray:
    """Host-side truth: onnxruntime in-process for ONNX, torch for the LiteRT export."""
    if runtime == "onnxruntime":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(models.onnx), providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    import torch

    with torch.no_grad():
        return models.torch_model(torch.from_numpy(x)).numpy()


@pytest.fixture
def raw_agent(tmp_path: Path) -> Iterator[RawAgent]:
    agent = RawAgent(tmp_path)
    yield agent
    agent.proc.terminate()


@pytest.fixture
def transport(tmp_path: Path) -> LocalTransport:
    return LocalTransport(DeviceConfig("t", "local"), tmp_path)


@pytest.fixture
def client(transport: LocalTransport) -> Iterator[AgentClient]:
    c = AgentClient.start(transport, timeout=60)
    yield c
    c.close()


def push_model(transport: LocalTransport, models: Models, runtime: str) -> tuple[str, str]:
    path, sha = models.path_and_sha(runtime)
    return transport.push(path, sha), sha


def error_kind(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    assert set(reply["error"]) == {"kind", "message"}
    assert reply["error"]["message"]
    return reply["error"]["kind"]


# --------------------------------------------------------------------------- the file


def test_agent_imports_only_stdlib_at_module_level() -> None:
    source = AGENT_PATH.read_text()
    # Boards run old Pythons: the syntax must parse as 3.8.
    tree = ast.parse(source, feature_version=(3, 8))

    def module_level_imports(body: list[ast.stmt]) -> Iterator[str]:
        for node in body:
            if isinstance(node, ast.Import):
                yield from (alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, "relative import in the agent file"
                yield (node.module or "").split(".")[0]
            elif isinstance(node, ast.If | ast.Try | ast.With):
                # Imports guarded at module level still run at import time.
                for field in ("body", "orelse", "finalbody", "handlers"):
                    for child in getattr(node, field, []):
                        yield from module_level_imports(
                            child.body if isinstance(child, ast.ExceptHandler) else [child]
                        )

    names = set(module_level_imports(tree.body))
    assert names, "found no imports at all: the walker is broken"
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names
    assert "AGENT_VERSION = " in source


def test_agent_quantization_helpers() -> None:
    # No int8 model is built here (that needs calibration); the arithmetic is checked
    # directly on the agent's own helpers.
    spec = importlib.util.spec_from_file_location("edgebench_agent_under_test", AGENT_PATH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    desc = {"dtype": "int8", "quant": (0.5, -3)}
    x = np.array([[-100.0, -1.0, 0.0, 0.26, 2.0, 100.0]], dtype=np.float32)
    q = mod.quantize(x, desc)
    assert q.dtype == np.int8
    assert q.tolist() == [[-128, -5, -3, -2, 1, 127]]
    back = mod.dequantize(q, desc)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, [[-62.5, -1.0, 0.0, 0.5, 2.0, 65.0]])
    # Without quantization parameters it is a plain cast.
    assert mod.quantize(x, {"dtype": "float32", "quant": None}).dtype == np.float32
    rng = np.random.default_rng(0)
    u8 = mod.random_input(rng, {"shape": [None, 3], "dtype": "uint8"})
    assert u8.shape == (1, 3) and u8.dtype == np.uint8
    f = mod.random_input(rng, {"shape": [2, 2], "dtype": "float32"})
    assert f.dtype == np.float32 and ((f >= 0) & (f < 1)).all()


# --------------------------------------------------------------------------- (a) raw protocol


def test_hello_facts(raw_agent: RawAgent) -> None:
    reply = raw_agent.call("hello")
    assert reply["ok"] is True
    result = reply["result"]
    assert result["agent_version"] == "2"
    assert result["protocol"] == 1
    assert isinstance(result["pid"], int)
    facts = result["facts"]
    for key in (
        "os",
        "os_release",
        "kernel",
        "arch",
        "cpu_model",
        "cpu_cores",
        "memory_total_bytes",
        "python",
        "python_executable",
        "hostname",
        "runtimes",
    ):
        assert key in facts, key
    assert facts["os"] == "Linux"
    assert facts["cpu_cores"] >= 1
    assert facts["memory_total_bytes"] > 0
    assert facts["python"].count(".") == 2
    assert facts["runtimes"]["onnxruntime"]
    assert facts["runtimes"]["numpy"] == np.__version__
    assert "onnxruntime_providers" not in facts  # only known after a load


def test_errors_are_structured_and_agent_survives(
    raw_agent: RawAgent, models: Models, tmp_path: Path
) -> None:
    bad = raw_agent.send_line("{not json")
    assert bad["id"] is None and error_kind(bad) == "bad_request"
    assert error_kind(raw_agent.send_line("[1, 2]")) == "bad_request"
    assert error_kind(raw_agent.call("frobnicate")) == "unknown_op"
    assert error_kind(raw_agent.call("bench")) == "not_loaded"
    assert error_kind(raw_agent.call("eval", inputs=None)) == "not_loaded"

    missing = raw_agent.call(
        "load", path=str(tmp_path / "nope.onnx"), sha256="0" * 64, runtime="onnxruntime"
    )
    assert error_kind(missing) == "missing_file"

    wrong = "f" * 64
    mismatch = raw_agent.call("load", path=str(models.onnx), sha256=wrong, runtime="onnxruntime")
    assert error_kind(mismatch) == "hash_mismatch"
    message = mismatch["error"]["message"]
    assert str(models.onnx) in message and wrong in message and models.onnx_sha in message

    bad_runtime = raw_agent.call("load", path=str(models.onnx), sha256=models.onnx_sha, runtime="x")
    assert error_kind(bad_runtime) == "bad_request"

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a model")
    failed = raw_agent.call(
        "load", path=str(garbage), sha256=sha256_file(garbage), runtime="onnxruntime"
    )
    assert error_kind(failed) == "load_failed"

    # Still alive and answering in order.
    assert raw_agent.call("hello")["ok"] is True


@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_load_and_bench_raw(raw_agent: RawAgent, models: Models, runtime: str) -> None:
    path, sha = models.path_and_sha(runtime)
    loaded = raw_agent.call("load", path=str(path), sha256=sha, runtime=runtime, threads=1)
    assert loaded["ok"] is True, loaded
    info = loaded["result"]
    assert info["runtime"] == runtime and info["runtime_version"]
    assert info["init_s"] > 0
    assert info["rss_after_load_bytes"] > 0
    assert info["inputs"] == [
        {"name": info["inputs"][0]["name"], "shape": [1, 1, 8, 8], "dtype": "float32"}
    ]
    assert info["outputs"][0]["shape"] == [1, 10]
    if runtime == "onnxruntime":
        assert info["inputs"][0]["name"] == "input"
        assert info["providers"] == ["CPUExecutionProvider"]
        assert "CPUExecutionProvider" in info["onnxruntime_providers"]

    bench = raw_agent.call("bench", **FAST_BENCH)
    assert bench["ok"] is True, bench
    r = bench["result"]
    assert r["timer"] == "perf_counter_ns"
    assert r["first_inference_s"] > 0
    # Timing a call that does nothing costs something, but less than running the model.
    samples = sorted(s for w in r["windows"] for s in w["samples_s"])
    assert 0 < r["timer_floor_s"] < samples[len(samples) // 2]
    assert r["warmup"]["count"] >= FAST_BENCH["warmup_runs"]
    assert r["warmup"]["time_s"] >= FAST_BENCH["warmup_min_s"]
    assert len(r["windows"]) == FAST_BENCH["repetitions"]
    for window in r["windows"]:
        assert len(window["samples_s"]) >= FAST_BENCH["min_runs"]
        assert window["duration_s"] >= FAST_BENCH["min_duration_s"]
        assert all(s > 0 for s in window["samples_s"])
        # Samples are timed inside the window, so they cannot add up to more than it.
        assert sum(window["samples_s"]) <= window["duration_s"]
    assert r["peak_rss_bytes"] > 0
    assert r["rss_after_load_bytes"] == info["rss_after_load_bytes"]
    assert r["vmhwm_reset"] is True  # we own the process, so clear_refs is writable


def test_bench_max_runs_caps_windows(raw_agent: RawAgent, models: Models) -> None:
    raw_agent.call("load", path=str(models.onnx), sha256=models.onnx_sha, runtime="onnxruntime")
    reply = raw_agent.call(
        "bench",
        warmup_runs=0,
        warmup_min_s=0,
        min_runs=1000,
        min_duration_s=60,
        repetitions=1,
        max_runs=7,
    )
    assert reply["ok"] is True, reply
    assert [len(w["samples_s"]) for w in reply["result"]["windows"]] == [7]
    assert error_kind(raw_agent.call("bench", min_runs=-1)) == "bad_request"


def test_raw_eval_and_reset(raw_agent: RawAgent, models: Models, samples: np.ndarray) -> None:
    raw_agent.call("load", path=str(models.onnx), sha256=models.onnx_sha, runtime="onnxruntime")
    x = samples[:3]
    arr = {
        "dtype": "float32",
        "shape": list(x.shape),
        "data_b64": base64.b64encode(x.astype("<f4").tobytes()).decode("ascii"),
    }
    first = raw_agent.call("eval", inputs=arr, labels=[0, 1, 2], reset=True, return_outputs=True)
    assert first["ok"] is True, first
    out = first["result"]["outputs"]
    assert out["dtype"] == "float32" and out["shape"] == [3, 10]
    y = np.frombuffer(base64.b64decode(out["data_b64"]), dtype="<f4").reshape(3, 10)
    assert first["result"]["outputs_sha256"] == hashlib.sha256(y.tobytes()).hexdigest()
    assert first["result"]["count"] == 3

    second = raw_agent.call("eval", inputs=arr, labels=None, reset=False, return_outputs=False)
    assert second["result"]["count"] == 6
    assert second["result"]["correct"] == first["result"]["correct"]  # no labels: not scored
    assert "outputs" not in second["result"]
    again = raw_agent.call("eval", inputs=arr, labels=None, reset=True)
    assert again["result"]["count"] == 3 and again["result"]["top1"] is None

    short = dict(arr, data_b64=base64.b64encode(b"\0" * 8).decode())
    assert error_kind(raw_agent.call("eval", inputs=short)) == "bad_request"


def test_bye_and_eof_exit_cleanly(tmp_path: Path) -> None:
    agent = RawAgent(tmp_path)
    bye = agent.call("bye")
    assert bye["ok"] is True
    assert agent.proc.wait(10) == 0

    agent = RawAgent(tmp_path)
    agent.call("hello")
    agent.proc._proc.stdin.close()  # EOF
    assert agent.proc.wait(10) == 0


# --------------------------------------------------------------------------- (b) client


def test_client_start_pushes_and_says_hello(transport: LocalTransport, client: AgentClient) -> None:
    assert client.hello["protocol"] == 1
    assert client.facts["os"] == "Linux"
    pushed = Path(transport.workdir) / "artifacts" / sha256_file(AGENT_PATH) / "edgebench_agent.py"
    assert pushed.read_bytes() == AGENT_PATH.read_bytes()


@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_client_eval_matches_reference(
    transport: LocalTransport,
    client: AgentClient,
    models: Models,
    samples: np.ndarray,
    runtime: str,
) -> None:
    remote, sha = push_model(transport, models, runtime)
    info = client.load(remote, sha, runtime, threads=1)
    assert info["runtime"] == runtime

    expected = reference_outputs(models, runtime, samples)
    labels = expected.argmax(axis=1)
    whole = client.evaluate(samples, labels, batch_size=64, return_outputs=True)
    np.testing.assert_allclose(whole["outputs"], expected, rtol=1e-5, atol=1e-5)
    assert whole["outputs"].dtype == np.float32
    assert whole["count"] == len(samples)
    assert whole["correct"] == len(samples)
    assert whole["top1"] == 1.0

    # Totals restart on each evaluate() call, so a rerun gives the same hash ...
    rerun = client.evaluate(samples, labels, batch_size=64)
    assert rerun["outputs_sha256"] == whole["outputs_sha256"]
    assert "outputs" not in rerun
    # ... and batching changes how the samples travel, not the totals.
    batched = client.evaluate(samples, labels, batch_size=5, return_outputs=True)
    for key in ("count", "correct", "top1", "outputs_sha256"):
        assert batched[key] == whole[key], key
    np.testing.assert_array_equal(batched["outputs"], whole["outputs"])

    unlabelled = client.evaluate(samples[:4], None, batch_size=3)
    assert unlabelled["count"] == 4 and unlabelled["top1"] is None


def test_client_eval_hash_is_deterministic_across_agents(
    transport: LocalTransport, models: Models, samples: np.ndarray
) -> None:
    hashes = []
    for _ in range(2):
        with AgentClient.start(transport) as c:
            remote, sha = push_model(transport, models, "onnxruntime")
            c.load(remote, sha, "onnxruntime")
            hashes.append(c.evaluate(samples, batch_size=4)["outputs_sha256"])
    assert hashes[0] == hashes[1]


@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_client_bench(
    transport: LocalTransport, client: AgentClient, models: Models, runtime: str
) -> None:
    remote, sha = push_model(transport, models, runtime)
    client.load(remote, sha, runtime, threads=1)
    r = client.bench(timeout=60, **FAST_BENCH)
    assert len(r["windows"]) == FAST_BENCH["repetitions"]
    assert all(len(w["samples_s"]) >= FAST_BENCH["min_runs"] for w in r["windows"])


def test_litert_xnnpack_switch(
    transport: LocalTransport, client: AgentClient, models: Models, samples: np.ndarray
) -> None:
    """XNNPACK off leaves every op on the built-in kernels; on, the delegate takes
    nodes over; the outputs agree either way."""
    remote, sha = push_model(transport, models, "litert")
    outputs = {}
    for xnnpack in (True, False, None):
        info = client.load(remote, sha, "litert", threads=1, xnnpack=xnnpack)
        assert info["xnnpack"] is xnnpack
        if xnnpack is False:
            assert info["delegate_nodes"] == 0
        else:  # the default applies XNNPACK, like an explicit true
            assert info["delegate_nodes"] >= 1
        outputs[xnnpack] = client.evaluate(samples, return_outputs=True)["outputs"]
    np.testing.assert_allclose(outputs[True], outputs[False], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(outputs[True], outputs[None])

    remote, sha = push_model(transport, models, "onnxruntime")
    with pytest.raises(AgentError, match="litert only") as err:
        client.load(remote, sha, "onnxruntime", xnnpack=False)
    assert err.value.kind == "bad_request"


FALLBACK_ORT = """
__version__ = "1.0.0+edgebench.fake"


def get_available_providers():
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class SessionOptions:
    intra_op_num_threads = 0
    inter_op_num_threads = 0


class InferenceSession:
    # As onnxruntime does when the CUDA provider fails to initialise: it warns and
    # keeps only the CPU provider.
    def __init__(self, path, sess_options=None, providers=None):
        self.providers = [p for p in providers if p == "CPUExecutionProvider"]

    def get_providers(self):
        return self.providers

    def get_inputs(self):
        return []

    def get_outputs(self):
        return []
"""


def test_onnxruntime_silent_cpu_fallback_is_refused(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, models: Models, tmp_path: Path
) -> None:
    fake = tmp_path / "fake_ort" / "onnxruntime"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FALLBACK_ORT)
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))  # shadows the real onnxruntime
    agent = RawAgent(tmp_path)
    request.addfinalizer(agent.proc.terminate)
    fields = {"path": str(models.onnx), "sha256": sha256_file(models.onnx)}
    reply = agent.call(
        "load",
        runtime="onnxruntime",
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        **fields,
    )
    assert reply["ok"] is False and reply["error"]["kind"] == "load_failed"
    assert "could not initialise CUDAExecutionProvider" in reply["error"]["message"]
    # A provider the build does not offer at all is the request's fault.
    reply = agent.call(
        "load", runtime="onnxruntime", providers=["TensorrtExecutionProvider"], **fields
    )
    assert reply["error"]["kind"] == "bad_request"
    # Asking for what the session keeps loads.
    assert agent.ok("load", runtime="onnxruntime", **fields)["providers"] == [
        "CPUExecutionProvider"
    ]


def test_client_bad_load_raises_agent_error(
    transport: LocalTransport, client: AgentClient, models: Models, tmp_path: Path
) -> None:
    remote, sha = push_model(transport, models, "onnxruntime")
    with pytest.raises(AgentError) as err:
        client.load(remote, "0" * 64, "onnxruntime")
    assert err.value.kind == "hash_mismatch"
    assert err.value.device == "t"
    with pytest.raises(AgentError) as err:
        client.load(str(tmp_path / "absent.onnx"), sha, "onnxruntime")
    assert err.value.kind == "missing_file"
    with pytest.raises(AgentError) as err:
        client.bench(timeout=10)
    assert err.value.kind == "not_loaded"
    # Structured errors leave the agent usable.
    assert client.load(remote, sha, "onnxruntime")["runtime"] == "onnxruntime"


def test_killed_agent_gives_transport_error_not_hang(client: AgentClient) -> None:
    os.kill(client.hello["pid"], signal.SIGKILL)
    started = time.monotonic()
    with pytest.raises(TransportError) as err:
        client.request("hello", timeout=30)
    assert not isinstance(err.value, TransportTimeout)
    assert time.monotonic() - started < 10
    # Dead for good: later requests fail at once.
    with pytest.raises(TransportError):
        client.request("hello", timeout=30)
    client.close()
    client.close()  # idempotent


def test_timeout_terminates_agent(
    transport: LocalTransport, client: AgentClient, models: Models
) -> None:
    remote, sha = push_model(transport, models, "onnxruntime")
    client.load(remote, sha, "onnxruntime")
    with pytest.raises(TransportTimeout):
        client.bench(timeout=0.5, min_duration_s=30, repetitions=1, max_runs=10**9)
    with pytest.raises(TransportError, match="not running"):
        client.request("hello")
    # The process really is gone, not left measuring in the background.
    with pytest.raises(ProcessLookupError):
        os.kill(client.hello["pid"], 0)


FAKE_AGENT = """
import json, sys
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "hello":
        print(json.dumps({"id": req["id"], "ok": True, "result": {"protocol": 1, "facts": {}}}))
    elif req["op"] == "wrong_id":
        print(json.dumps({"id": req["id"] + 100, "ok": True, "result": {}}))
    else:
        print("Traceback: something went badly wrong " + "x" * 1000)
    sys.stdout.flush()
"""


@pytest.mark.parametrize(
    ("op", "pattern"), [("wrong_id", "protocol out of step"), ("noise", "non-JSON line")]
)
def test_client_rejects_out_of_step_and_garbage(
    transport: LocalTransport,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    op: str,
    pattern: str,
) -> None:
    # A stand-in agent that misbehaves on purpose; the real one never does this.
    fake = tmp_path / "fake_agent.py"
    fake.write_text(textwrap.dedent(FAKE_AGENT))
    monkeypatch.setattr(agent_client, "AGENT_PATH", fake)
    with AgentClient.start(transport, timeout=20) as c:
        with pytest.raises(TransportError, match=pattern) as err:
            c.request(op)
        assert len(str(err.value)) < 600  # the offending line is quoted, truncated


# --------------------------------------------------------------------------- power sampling


def test_bench_streams_power_readings_with_window_times(
    client: AgentClient, transport: LocalTransport, models: Models, tmp_path: Path
) -> None:
    """A stream sampler (stand-in for tegrastats: a real process printing lines) is
    stamped on the windows' clock, with an idle period before them."""
    remote, sha = push_model(transport, models, "onnxruntime")
    client.load(remote, sha, "onnxruntime", 1)
    script = "while true; do echo 'VDD_IN 5000mW/5000mW'; sleep 0.02; done"
    res = client.bench(
        timeout=60,
        **FAST_BENCH,
        power={"mode": "stream", "argv": ["sh", "-c", script], "idle_s": 0.2},
    )
    power = res["power"]
    idle_t0, idle_t1 = power["idle"]
    assert idle_t1 - idle_t0 >= 0.2
    times = [t for t, _ in power["readings"]]
    assert times == sorted(times) and len(times) >= 10
    assert all(line == "VDD_IN 5000mW/5000mW" for _, line in power["readings"])
    first, last = res["windows"][0], res["windows"][-1]
    assert idle_t1 <= first["t0_s"] < first["t1_s"] <= last["t1_s"]
    # Readings bracket the idle period and the windows: the agent waits for the sensor's
    # first line before the idle clock starts and for one line after the last window.
    assert times[0] <= idle_t0 and times[-1] >= last["t1_s"]


def test_bench_polls_sysfs_style_files(
    client: AgentClient, transport: LocalTransport, models: Models, tmp_path: Path
) -> None:
    rail = tmp_path / "in1_input"
    rail.write_text("5080\n")
    remote, sha = push_model(transport, models, "onnxruntime")
    client.load(remote, sha, "onnxruntime", 1)
    res = client.bench(
        timeout=60,
        **FAST_BENCH,
        power={
            "mode": "poll_files",
            "files": {"in1": str(rail), "gone": str(tmp_path / "x")},
            "interval_ms": 20,
            "idle_s": 0.1,
        },
    )
    readings = res["power"]["readings"]
    assert len(readings) >= 5
    assert readings[0][1] == "in1=5080;gone="
    # Even windows shorter than the poll interval are bracketed by readings.
    assert readings[0][0] <= res["power"]["idle"][0]
    assert readings[-1][0] >= res["windows"][-1]["t1_s"]


def test_missing_sensor_tool_is_a_structured_error(
    client: AgentClient, transport: LocalTransport, models: Models
) -> None:
    remote, sha = push_model(transport, models, "onnxruntime")
    client.load(remote, sha, "onnxruntime", 1)
    with pytest.raises(AgentError) as info:
        client.bench(
            timeout=60, **FAST_BENCH, power={"mode": "stream", "argv": ["/nonexistent/tegrastats"]}
        )
    assert info.value.kind == "missing_sensor"


# --------------------------------------------------------------------------- oldest Python

# JetPack 5 boards (Ubuntu 20.04) run Python 3.8 and Pis often have tflite-runtime rather
# than ai-edge-litert: `make test` builds .venv-agent38 (numpy, onnxruntime,
# tflite-runtime, pinned) where a python3.8 is found and names it here.
PY38 = os.environ.get("EDGEBENCH_AGENT_PY38")


@pytest.mark.skipif(not PY38, reason="no Python 3.8 agent environment (EDGEBENCH_AGENT_PY38)")
def test_agent_under_python38_with_tflite_runtime(
    tmp_path: Path, models: Models, samples: np.ndarray
) -> None:
    transport = LocalTransport(DeviceConfig("old", "local", options={"python": PY38}), tmp_path)
    with AgentClient.start(transport, timeout=60) as c:
        assert c.facts["python"].startswith("3.8."), c.facts["python"]
        runtimes = c.facts["runtimes"]
        assert runtimes.get("onnxruntime") and runtimes.get("tflite_runtime"), runtimes
        for runtime in ("onnxruntime", "litert"):
            remote, sha = push_model(transport, models, runtime)
            info = c.load(remote, sha, runtime, threads=1)
            if runtime == "litert":
                assert info["runtime_module"] == "tflite_runtime"
            out = c.evaluate(samples, return_outputs=True)["outputs"]
            expected = reference_outputs(models, runtime, samples)
            np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
            r = c.bench(timeout=60, **FAST_BENCH)
            assert all(len(w["samples_s"]) >= FAST_BENCH["min_runs"] for w in r["windows"])
        # tflite-runtime's interpreter switches XNNPACK the same way.
        info = c.load(remote, sha, "litert", threads=1, xnnpack=False)
        assert info["delegate_nodes"] in (0, None)
        # Power sampling threads and subprocesses work there too.
        script = "while true; do echo 'VDD_IN 5000mW/5000mW'; sleep 0.02; done"
        res = c.bench(
            timeout=60, **FAST_BENCH, power={"mode": "stream", "argv": ["sh", "-c", script]}
        )
        assert res["power"]["readings"]


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("runtime", ["onnxruntime", "litert"])
def test_windows_time_the_inference_alone_with_io_beside(
    raw_agent: RawAgent, models: Models, runtime: str
) -> None:
    path, sha = models.path_and_sha(runtime)
    raw_agent.ok("load", path=str(path), sha256=sha, runtime=runtime, threads=1)
    r = raw_agent.ok("bench", **FAST_BENCH)
    # What each figure times is said, and the two regions differ on these runtimes.
    assert r["timed_region"] and r["io_region"] and r["timed_region"] != r["io_region"]
    assert ("invoke" if runtime == "litert" else "iobinding") in r["timed_region"]
    io = r["with_io"]["samples_s"]
    assert len(io) >= FAST_BENCH["min_runs"] and all(s > 0 for s in io)
    # Without the with-I/O window, nothing of it in the reply.
    r = raw_agent.ok("bench", **FAST_BENCH, io_window=False)
    assert r["with_io"] is None and r["io_region"] is None


def test_invoke_only_gives_the_same_outputs_as_run(models: Models, samples: np.ndarray) -> None:
    # The bound-inputs path must run the same inference, not a stale or empty one.
    spec = importlib.util.spec_from_file_location("agent_under_test", AGENT_PATH)
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    x = samples[:1]
    for model in (
        agent.OnnxModel(str(models.onnx), 1, None),
        agent.LiteRTModel(str(models.tflite), 1),
    ):
        expected = model.run([x])[0]
        model.bind([x])
        model.invoke()
        if isinstance(model, agent.OnnxModel):
            got = model._binding.copy_outputs_to_cpu()[0]
        else:
            got = model.interp.get_tensor(model.outputs[0]["index"])
        np.testing.assert_array_equal(got, expected)


def test_adaptive_window_stops_once_the_median_ci_is_narrow(
    raw_agent: RawAgent, models: Models
) -> None:
    from harness.stats import median_ci

    raw_agent.ok("load", path=str(models.tflite), sha256=models.tflite_sha, runtime="litert")
    fields = {**FAST_BENCH, "min_runs": 50, "repetitions": 1, "io_window": False}
    # A reachable target: the window stops early, and its exact CI is about as narrow.
    r = raw_agent.ok("bench", **fields, target_rel_ci=0.05, max_window_s=5)
    window = r["windows"][0]
    assert r["stop_rule"] == "adaptive"
    assert window["duration_s"] < 5
    low, high = median_ci(window["samples_s"])
    median = sorted(window["samples_s"])[len(window["samples_s"]) // 2]
    assert (high - low) / median <= 0.05 * 1.2
    # A window that cannot get there (min_runs beyond reach) ends at the time cap.
    r = raw_agent.ok(
        "bench",
        **{**fields, "min_runs": 10**9, "max_runs": 10**9},
        target_rel_ci=0.05,
        max_window_s=0.3,
    )
    assert 0.3 <= r["windows"][0]["duration_s"] < 1.5
    for bad in (0, 1, -0.1, "0.01", True):
        assert error_kind(raw_agent.call("bench", **fields, target_rel_ci=bad)) == "bad_request"


def test_agent_ci_width_agrees_with_the_exact_binomial_interval() -> None:
    from harness.stats import median_ci

    spec = importlib.util.spec_from_file_location("agent_under_test", AGENT_PATH)
    agent = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(agent)
    rng = np.random.default_rng(3)
    for n in (40, 100, 1000, 10000):
        xs = [int(v) for v in rng.lognormal(10, 0.2, n)]
        low, high = median_ci(xs)
        exact = (high - low) / sorted(xs)[(n + 1) // 2 - 1]
        assert agent.median_ci_rel_width(xs) == pytest.approx(exact, rel=0.15)
    assert agent.median_ci_rel_width([5, 5, 5]) == float("inf")  # too few for a 95% CI


def test_load_pins_the_agent_to_the_cpus_asked(raw_agent: RawAgent, models: Models) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    one = allowed[-1]
    info = raw_agent.ok(
        "load", path=str(models.tflite), sha256=models.tflite_sha, runtime="litert", cpus=[one]
    )
    assert info["cpus"] == [one]
    r = raw_agent.ok("bench", **FAST_BENCH)
    assert r["windows"][0]["samples_s"]
    for bad in ([], ["0"], [-1], "0", [True]):
        reply = raw_agent.call(
            "load", path=str(models.tflite), sha256=models.tflite_sha, runtime="litert", cpus=bad
        )
        assert error_kind(reply) == "bad_request"
    reply = raw_agent.call(
        "load", path=str(models.tflite), sha256=models.tflite_sha, runtime="litert", cpus=[4095]
    )
    assert error_kind(reply) == "bad_request" and "4095" in reply["error"]["message"]


def test_agent_stops_mid_bench_when_the_host_goes_away(raw_agent: RawAgent, models: Models) -> None:
    # A killed controller closes the agent's stdin (its end of the pipe or SSH channel):
    # the agent must not go on measuring for nobody through a 30-second window.
    raw_agent.ok("load", path=str(models.tflite), sha256=models.tflite_sha, runtime="litert")
    raw_agent.proc.write_line(
        '{"id": 9, "op": "bench", "min_duration_s": 30, "repetitions": 1, "max_runs": 1000000000}'
    )
    time.sleep(0.5)
    assert raw_agent.proc.wait(0) is None  # measuring
    raw_agent.proc._proc.stdin.close()
    started = time.monotonic()
    assert raw_agent.proc.wait(2.0) == 0
    assert time.monotonic() - started < 1.0
