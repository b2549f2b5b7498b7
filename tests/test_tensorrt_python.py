"""The agent's ``tensorrt`` runtime (a serialized engine run with the TensorRT Python API),
driven through the raw protocol and AgentClient.

There is no GPU or TensorRT here: the agent runs with tests/fake_tensorrt on its
PYTHONPATH, a stand-in ``tensorrt`` module with NVIDIA's name-based API that computes a
known linear layer, and the agent then keeps I/O in host numpy memory (it does so only
for a module declaring ``EDGEBENCH_FAKE``). So these tests check the agent's use of the
documented API, shapes, dtypes, bench and eval; the real TensorRT + torch CUDA path is
not exercised.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devices.local import LocalTransport
from devices.transport import DeviceConfig, sha256_file
from runners.agent_client import AgentClient
from tests.rawagent import RawAgent

FAKE_DIR = Path(__file__).resolve().parent / "fake_tensorrt"
FAKE_VERSION = "10.0.0+edgebench.fake"
FAST_BENCH = {
    "warmup_runs": 3,
    "warmup_min_s": 0.01,
    "min_runs": 5,
    "min_duration_s": 0.02,
    "repetitions": 2,
}
FEATURES, CLASSES = 6, 4  # input (batch, 1, 2, 3) -> logits (batch, 4)


class Engine:
    def __init__(self, path: Path, weight: np.ndarray, bias: np.ndarray) -> None:
        self.path = path
        self.sha256 = sha256_file(path)
        self.weight = weight
        self.bias = bias

    def reference(self, x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1) @ self.weight + self.bias).astype(np.float32)

    def load_fields(self, **overrides: Any) -> dict[str, Any]:
        fields = {"path": str(self.path), "sha256": self.sha256, "runtime": "tensorrt"}
        fields.update(overrides)
        return fields


def write_engine(path: Path, input_spec: dict[str, Any], seed: int = 0) -> Engine:
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((FEATURES, CLASSES)).astype(np.float32)
    bias = rng.standard_normal(CLASSES).astype(np.float32)
    spec = {
        "format": "edgebench-fake-trt-engine/1",
        "input": {"name": "input", **input_spec},
        "weight": weight.tolist(),
        "bias": bias.tolist(),
    }
    path.write_text(json.dumps(spec))
    return Engine(path, weight, bias)


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Engine]:
    root = tmp_path_factory.mktemp("trt_engines")
    return {
        "static1": write_engine(root / "static1.engine", {"shape": [1, 1, 2, 3]}),
        "static4": write_engine(root / "static4.engine", {"shape": [4, 1, 2, 3]}, seed=1),
        "dynamic": write_engine(
            root / "dynamic.engine",
            {"shape": [-1, 1, 2, 3], "min": [1, 1, 2, 3], "max": [8, 1, 2, 3]},
            seed=2,
        ),
        # A profile that does not admit batch 1, the shape the agent binds at load.
        "min2": write_engine(
            root / "min2.engine", {"shape": [-1, 1, 2, 3], "min": [2, 1, 2, 3], "max": [8, 1, 2, 3]}
        ),
    }


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents started from here on import the stand-in as ``tensorrt``."""
    monkeypatch.setenv("PYTHONPATH", str(FAKE_DIR))
    monkeypatch.delenv("EDGEBENCH_FAKE_TRT_POSE_AS_REAL", raising=False)


def start_agent(tmp_path: Path) -> Iterator[RawAgent]:
    agent = RawAgent(tmp_path)
    yield agent
    agent.proc.terminate()


@pytest.fixture
def raw_agent(fake_trt: None, tmp_path: Path) -> Iterator[RawAgent]:
    yield from start_agent(tmp_path)


def error_kind(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    assert reply["error"]["message"]
    return reply["error"]["kind"]


# --------------------------------------------------------------------------- tests


def test_load_describe_and_bench(raw_agent: RawAgent, engines: dict[str, Engine]) -> None:
    info = raw_agent.ok("load", **engines["static1"].load_fields(threads=2))
    assert info["runtime"] == "tensorrt"
    assert info["runtime_version"] == FAKE_VERSION
    assert info["inputs"] == [{"name": "input", "shape": [1, 1, 2, 3], "dtype": "float32"}]
    assert info["outputs"] == [
        {"name": "logits", "shape": [1, CLASSES], "dtype": "float32"},
        {"name": "label", "shape": [1], "dtype": "int32"},
    ]
    assert info["device"] == "cuda"
    # The stand-in is never mistaken for the real thing in a result.
    assert info["io_memory"] == "host_numpy_test_only"
    assert info["sha256"] == engines["static1"].sha256
    assert info["threads"] == 2  # echoed; a GPU engine does not use them
    assert info["init_s"] > 0 and info["rss_after_load_bytes"] > 0

    bench = raw_agent.ok("bench", **FAST_BENCH)
    assert len(bench["windows"]) == FAST_BENCH["repetitions"]
    for window in bench["windows"]:
        assert len(window["samples_s"]) >= FAST_BENCH["min_runs"]
        assert all(s > 0 for s in window["samples_s"])
        assert window["duration_s"] >= FAST_BENCH["min_duration_s"]
    assert bench["first_inference_s"] > 0
    assert bench["warmup"]["count"] >= FAST_BENCH["warmup_runs"]

    # A dynamic batch dimension is described as null and bound as 1 for bench.
    info = raw_agent.ok("load", **engines["dynamic"].load_fields())
    assert info["inputs"][0]["shape"] == [None, 1, 2, 3]
    assert info["outputs"][0]["shape"] == [None, CLASSES]
    assert raw_agent.ok("bench", **FAST_BENCH)["windows"]


@pytest.mark.parametrize("which", ["static1", "static4", "dynamic"])
def test_eval_matches_numpy_reference(
    fake_trt: None, engines: dict[str, Engine], tmp_path: Path, which: str
) -> None:
    engine = engines[which]
    x = np.random.default_rng(7).standard_normal((12, 1, 2, 3)).astype(np.float32)
    expected = engine.reference(x)
    predicted = expected.argmax(axis=1)
    labels = predicted.copy()
    labels[::3] = (labels[::3] + 1) % CLASSES  # every third label wrong: top-1 is 2/3
    transport = LocalTransport(DeviceConfig("t", "local"), tmp_path)
    with AgentClient.start(transport, timeout=60) as client:
        remote = transport.push(engine.path, engine.sha256)
        info = client.load(remote, engine.sha256, "tensorrt")
        assert info["runtime"] == "tensorrt"
        # batch_size 8 splits 12 samples 8 + 4: both multiples of the fixed batch 4.
        result = client.evaluate(x, labels, batch_size=8, return_outputs=True)
    assert result["outputs"].dtype == np.float32
    np.testing.assert_allclose(result["outputs"], expected, rtol=1e-6, atol=1e-6)
    assert result["count"] == len(x)
    assert result["correct"] == 8
    assert result["top1"] == pytest.approx(8 / 12)
    digest = hashlib.sha256(np.ascontiguousarray(result["outputs"], dtype="<f4").tobytes())
    assert result["outputs_sha256"] == digest.hexdigest()


def test_dynamic_rows_rebind_buffers_between_evals(raw_agent: RawAgent, tmp_path: Path) -> None:
    """A dynamic non-batch dimension: each new shape re-binds the input and outputs."""
    from runners.agent_client import decode_array, encode_array

    rng = np.random.default_rng(3)
    weight = rng.standard_normal((FEATURES, CLASSES)).astype(np.float32)
    bias = rng.standard_normal(CLASSES).astype(np.float32)
    path = tmp_path / "rows.engine"
    spec = {
        "format": "edgebench-fake-trt-engine/1",
        "rows": True,
        "input": {"name": "tokens", "shape": [1, -1, FEATURES], "max": [1, 16, FEATURES]},
        "weight": weight.tolist(),
        "bias": bias.tolist(),
    }
    path.write_text(json.dumps(spec))
    info = raw_agent.ok("load", path=str(path), sha256=sha256_file(path), runtime="tensorrt")
    assert info["inputs"][0]["shape"] == [1, None, FEATURES]
    assert info["outputs"][0]["shape"] == [1, None, CLASSES]
    assert raw_agent.ok("bench", **FAST_BENCH)["windows"]  # rows bound as 1
    for rows in (5, 2, 5):
        x = rng.standard_normal((3, rows, FEATURES)).astype(np.float32)
        result = raw_agent.ok("eval", inputs=encode_array(x), return_outputs=True, reset=True)
        got = decode_array(result["outputs"])
        np.testing.assert_allclose(got, x @ weight + bias, rtol=1e-6, atol=1e-6)
    too_many = np.zeros((1, 17, FEATURES), np.float32)
    reply = raw_agent.call("eval", inputs=encode_array(too_many))
    assert error_kind(reply) == "bad_request"
    assert "[1, 1, 6] to [1, 16, 6]" in reply["error"]["message"]


def test_load_errors_are_structured(
    raw_agent: RawAgent, engines: dict[str, Engine], tmp_path: Path
) -> None:
    engine = engines["static1"]
    wrong = "0" * 64
    mismatch = raw_agent.call("load", **engine.load_fields(sha256=wrong))
    assert error_kind(mismatch) == "hash_mismatch"
    assert engine.sha256 in mismatch["error"]["message"]
    absent = raw_agent.call("load", **engine.load_fields(path=str(tmp_path / "no.engine")))
    assert error_kind(absent) == "missing_file"
    assert error_kind(raw_agent.call("load", **engine.load_fields(device="cpu"))) == "bad_request"
    garbage = tmp_path / "garbage.engine"
    garbage.write_bytes(b"\x00 not an engine")
    bad = raw_agent.call(
        "load", **engine.load_fields(path=str(garbage), sha256=sha256_file(garbage))
    )
    assert error_kind(bad) == "load_failed"
    assert "deserialize" in bad["error"]["message"]
    assert error_kind(raw_agent.call("bench", **FAST_BENCH)) == "not_loaded"
    min2 = raw_agent.call("load", **engines["min2"].load_fields())
    assert error_kind(min2) == "load_failed"
    assert "profile 0 allows [2, 1, 2, 3] to [8, 1, 2, 3]" in min2["error"]["message"]

    # Still alive; device "cuda" is accepted (the engine's only device).
    info = raw_agent.ok("load", **engine.load_fields(device="cuda"))
    assert info["device"] == "cuda"


def test_eval_refuses_a_shape_the_engine_cannot_take(
    raw_agent: RawAgent, engines: dict[str, Engine]
) -> None:
    from runners.agent_client import encode_array

    raw_agent.ok("load", **engines["static1"].load_fields())
    x = np.zeros((2, 1, 3, 2), dtype=np.float32)  # 6 values, wrong layout
    reply = raw_agent.call("eval", inputs=encode_array(x))
    assert error_kind(reply) == "bad_request"
    assert "refused shape" in reply["error"]["message"]
    ok = raw_agent.ok("eval", inputs=encode_array(np.zeros((2, 1, 2, 3), np.float32)))
    assert ok["count"] == 2


def test_without_tensorrt_is_missing_runtime(
    monkeypatch: pytest.MonkeyPatch, engines: dict[str, Engine], tmp_path: Path
) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("a tensorrt module is installed here")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    for agent in start_agent(tmp_path):
        reply = agent.call("load", **engines["static1"].load_fields())
        assert error_kind(reply) == "missing_runtime"
        assert "tensorrt" in reply["error"]["message"]
        assert agent.ok("hello")["agent_version"]  # and the agent carries on


def test_real_path_needs_torch_with_cuda(
    monkeypatch: pytest.MonkeyPatch, engines: dict[str, Engine], tmp_path: Path
) -> None:
    """A tensorrt that is not the stand-in takes the board path: torch CUDA memory."""
    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("torch has CUDA here; this checks the refusal without it")
    except ImportError:
        pass
    monkeypatch.setenv("PYTHONPATH", str(FAKE_DIR))
    monkeypatch.setenv("EDGEBENCH_FAKE_TRT_POSE_AS_REAL", "1")
    for agent in start_agent(tmp_path):
        reply = agent.call("load", **engines["static1"].load_fields())
        assert error_kind(reply) == "missing_runtime"
        message = reply["error"]["message"]
        assert "torch" in message and "CUDA" in message
        assert "not importable: No module named 'tensorrt'" not in message
