"""The ``torch`` runtime end to end: the export_torchscript recipe step builds a
TorchScript archive of the digits CNN, and the runner agent loads, benchmarks and
evaluates it (raw JSON lines and through AgentClient over the local transport)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from devices.errors import AgentError
from devices.local import LocalTransport
from devices.transport import DeviceConfig, sha256_file
from runners.agent_client import AGENT_PATH, AgentClient
from suites.datasets import load_dataset
from suites.schema import VariantSpec
from tests.rawagent import RawAgent

FAST_BENCH = {
    "warmup_runs": 3,
    "warmup_min_s": 0.01,
    "min_runs": 5,
    "min_duration_s": 0.02,
    "repetitions": 2,
}
N_SAMPLES = 24


@dataclass
class Exported:
    module: Any  # the base torch module, the host-side reference
    path: Path
    sha256: str
    meta: dict[str, Any]

    def load_fields(self, **overrides: Any) -> dict[str, Any]:
        fields = {
            "path": str(self.path),
            "sha256": self.sha256,
            "runtime": "torch",
            "threads": 1,
            "device": "cpu",
            "input_shapes": self.meta["input_shapes"],
            "input_dtypes": self.meta["input_dtypes"],
        }
        fields.update(overrides)
        return fields


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    pytest.importorskip("torch")
    from suites.recipes import BUILDERS, run_chain

    base = BUILDERS["digits_cnn"]({"seed": 0, "epochs": 2})
    stage = run_chain(
        base, VariantSpec(name="ts", recipe=["export_torchscript"]), tmp_path_factory.mktemp("ts")
    )
    assert stage.path is not None
    return Exported(base.module, stage.path, sha256_file(stage.path), stage.meta)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset("digits")
    return data.test_x[:N_SAMPLES], data.test_y[:N_SAMPLES]


@pytest.fixture
def raw_agent(tmp_path: Path) -> Iterator[RawAgent]:
    agent = RawAgent(tmp_path)
    yield agent
    agent.proc.terminate()


def error_kind(reply: dict[str, Any]) -> str:
    assert reply["ok"] is False, reply
    assert reply["error"]["message"]
    return reply["error"]["kind"]


# --------------------------------------------------------------------------- the step


# torch >= 2.10 flags torch.jit.load as deprecated; the test loads the archive on purpose.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_torchscript_step(exported: Exported, tmp_path: Path) -> None:
    import torch

    from suites.recipes import check_chain

    assert exported.path.name == "model.pt"
    assert exported.meta["techniques"][-1] == "export TorchScript"
    ts = exported.meta["torchscript"]
    assert ts["method"] == "trace" and ts["frozen"] is True
    assert ts["max_abs_diff"] <= 1e-5
    assert exported.meta["input_shapes"] == [[1, 1, 8, 8]]
    assert exported.meta["input_dtypes"] == ["float32"]
    assert check_chain("torch", VariantSpec(name="ts", recipe=["export_torchscript"])) == (
        "torchscript"
    )

    # The archive stands alone: no Python model code is needed to run it.
    x = torch.from_numpy(load_dataset("digits").test_x[:5].copy())
    loaded = torch.jit.load(str(exported.path), map_location="cpu")
    with torch.inference_mode():
        got = torch.cat([loaded(x[i : i + 1]) for i in range(len(x))])
        want = exported.module(x)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5)


def test_export_torchscript_rejects_bad_params(tmp_path: Path) -> None:
    from suites.recipes import Stage, run_chain

    torch = pytest.importorskip("torch")
    base = Stage(
        format="torch",
        module=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval(),
        example_input=np.zeros((1, 1, 2, 2), dtype=np.float32),
    )
    # Bad params are refused when the variant is made (the suite file is loaded).
    for params in ({"method": "compile"}, {"frezee": False}):
        with pytest.raises(ValidationError, match="method|frezee"):
            VariantSpec(name="ts", recipe=[{"export_torchscript": params}])
    # script + no freeze is a valid choice.
    variant = VariantSpec(
        name="ts", recipe=[{"export_torchscript": {"method": "script", "freeze": False}}]
    )
    stage = run_chain(base, variant, tmp_path)
    assert stage.format == "torchscript"
    assert stage.meta["torchscript"]["method"] == "script"
    assert stage.meta["torchscript"]["frozen"] is False


# --------------------------------------------------------------------------- the agent


def test_client_load_bench_eval_matches_host(
    exported: Exported, digits: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    import torch

    transport = LocalTransport(DeviceConfig("t", "local"), tmp_path)
    with AgentClient.start(transport, timeout=60) as client:
        assert isinstance(client.facts.get("torch_cuda"), bool)
        assert client.facts["runtimes"]["torch"]
        remote = transport.push(exported.path, exported.sha256)
        info = client.request("load", **exported.load_fields(path=remote))
        assert info["runtime"] == "torch"
        assert info["runtime_version"] == torch.__version__
        assert info["device"] == "cpu" and info["torch_threads"] == 1
        assert info["inputs"] == [{"name": "input", "shape": [1, 1, 8, 8], "dtype": "float32"}]
        assert info["outputs"] == [{"name": "output", "shape": [1, 10], "dtype": "float32"}]
        assert info["init_s"] > 0 and info["rss_after_load_bytes"] > 0

        bench = client.bench(timeout=60, **FAST_BENCH)
        assert len(bench["windows"]) == FAST_BENCH["repetitions"]
        for window in bench["windows"]:
            assert len(window["samples_s"]) >= FAST_BENCH["min_runs"]
            assert all(s > 0 for s in window["samples_s"])
        assert bench["first_inference_s"] > 0

        x, y = digits
        with torch.inference_mode():
            expected = exported.module(torch.from_numpy(x.copy())).numpy()
        host_top1 = float((expected.argmax(axis=1) == y).mean())
        result = client.evaluate(x, y, batch_size=10, return_outputs=True)
        assert result["outputs"].dtype == np.float32
        np.testing.assert_allclose(result["outputs"], expected, rtol=0, atol=1e-5)
        assert result["count"] == len(x)
        assert result["top1"] == host_top1
        assert host_top1 > 0.5  # two epochs are enough to beat chance by far

        # A request the agent refuses up front is structured and leaves the model loaded.
        with pytest.raises(AgentError) as err:
            client.request("load", **exported.load_fields(path=remote, input_shapes=None))
        assert err.value.kind == "bad_request"
        assert "input_shapes" in str(err.value)
        again = client.evaluate(x, y, batch_size=N_SAMPLES)
        assert again["outputs_sha256"] == result["outputs_sha256"]


def test_raw_load_errors(raw_agent: RawAgent, exported: Exported, tmp_path: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        cuda = raw_agent.call("load", **exported.load_fields(device="cuda"))
        assert error_kind(cuda) == "missing_runtime"
        assert "cuda" in cuda["error"]["message"].lower()

    fields = exported.load_fields()
    del fields["input_shapes"]
    assert error_kind(raw_agent.call("load", **fields)) == "bad_request"
    fields = exported.load_fields()
    del fields["input_dtypes"]
    assert error_kind(raw_agent.call("load", **fields)) == "bad_request"
    for bad in (
        {"input_shapes": [[1, 1, 8, 0]]},
        {"input_shapes": [[1, 1, 8, 8]], "input_dtypes": ["float32", "float32"]},
        {"input_dtypes": ["complex64"]},
        {"device": "tpu"},
        # The same archive for an ONNX session cannot be cuda: that is the providers' job.
        {"runtime": "onnxruntime", "device": "cuda"},
    ):
        assert error_kind(raw_agent.call("load", **exported.load_fields(**bad))) == "bad_request"
    # Two inputs for a one-input forward(): named in the message.
    two = raw_agent.call(
        "load",
        **exported.load_fields(input_shapes=[[1, 1, 8, 8]] * 2, input_dtypes=["float32"] * 2),
    )
    assert error_kind(two) == "bad_request" and "forward()" in two["error"]["message"]
    # Shapes the model cannot take: the probe run fails, as a load failure.
    wrong = raw_agent.call("load", **exported.load_fields(input_shapes=[[1, 3, 8, 8]]))
    assert error_kind(wrong) == "load_failed"
    assert error_kind(raw_agent.call("bench")) == "not_loaded"
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a TorchScript archive")
    bad_file = raw_agent.call(
        "load", **exported.load_fields(path=str(garbage), sha256=sha256_file(garbage))
    )
    assert error_kind(bad_file) == "load_failed"

    # Still alive; a good load works, null threads and device included.
    ok = raw_agent.call("load", **exported.load_fields(threads=None, device=None))
    assert ok["ok"] is True, ok
    assert ok["result"]["device"] == "cpu" and ok["result"]["threads"] is None
    bench = raw_agent.call("bench", **FAST_BENCH)
    assert bench["ok"] is True, bench


def test_hello_reports_torch_cuda_without_importing_torch() -> None:
    import torch

    script = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('agent', {str(AGENT_PATH)!r})\n"
        "mod = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(mod)\n"
        "facts = mod.Agent().op_hello({})['facts']\n"
        "print(json.dumps([facts.get('torch_cuda'), 'torch' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    torch_cuda, imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert imported is False
    assert torch_cuda is (torch.version.cuda is not None or torch.version.hip is not None)


TORCH_SUITE = """\
name: torch-cpu
models:
  - name: digits_cnn
    builder: digits_cnn
    params: {seed: 0, epochs: 15}
variants:
  - name: fp32-torchscript
    recipe: [export_torchscript]
  - name: fp32-onnx
    recipe: [export_onnx]
settings:
  - {runtime: torch, device: cpu, threads: [1]}
  - {runtime: onnxruntime, threads: [1]}
measure: {warmup_runs: 3, warmup_min_s: 0.0, min_runs: 20, min_duration_s: 0.05, repetitions: 2}
accuracy: {dataset: digits, split: test}
"""


@pytest.mark.slow
def test_torch_runtime_in_a_suite_matches_onnx_accuracy(eb: Any, tmp_path: Path) -> None:
    import json

    suite = tmp_path / "torch.yaml"
    suite.write_text(TORCH_SUITE)
    eb("device", "add", "local")
    eb("run", str(suite), "--no-report")
    runs = json.loads(eb("runs", "list", "--json").stdout)
    assert (runs[0]["jobs"], runs[0]["done"]) == (2, 2)  # each variant only on its runtime
    import sqlite3

    db = eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        acc = dict(
            conn.execute(
                "SELECT j.runtime, m.value FROM metrics m JOIN jobs j ON j.id = m.job_id"
                " WHERE m.name = 'accuracy_top1'"
            ).fetchall()
        )
    assert acc["torch"] == acc["onnxruntime"] > 0.9  # same weights, same predictions
