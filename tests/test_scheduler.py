"""The scheduler on in-memory devices: retries, a device dying mid-run, quarantine,
resume and Ctrl-C, in milliseconds (the real-peer versions are in test_cli.py,
test_ssh_run.py and test_power_e2e.py).

Devices are ``memory`` transports (devices/memory.py); the runtime ``scripted`` is
served by a runner that plays a per-device script of outcomes instead of
measuring, so every path through the scheduler can be forced.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from rich.console import Console

from devices.errors import AgentError, TransportError
from devices.memory import MemoryDevice, attach, detach
from devices.transport import Transport
from harness import scheduler
from harness.artifacts import Artifact, Variant
from harness.store import Store
from harness.workspace import Workspace
from runners.base import Job, Runner, register_runner
from runners.records import JobMeasurement, Memory, Provenance
from suites.runtimes import RuntimeSettings, runtime
from suites.schema import Suite


@runtime("scripted", formats=("onnx",), runner="scripted")
class ScriptedSettings(RuntimeSettings):
    runtime: Literal["scripted"]


# device name -> outcomes still to play, one per measure() call: "ok", "transport"
# (the connection fails), "agent" (the device answers with an error), "die" (the
# device vanishes for good), "block" (hang until killed, as a run does under Ctrl-C).
SCRIPTS: dict[str, list[str]] = {}
MEASURED: list[str] = []  # job keys measured successfully, in order
STARTED = threading.Event()


@register_runner("scripted")
class ScriptedRunner(Runner):
    serves = Transport  # the in-memory transport is no shell host

    def __init__(self, transport: Any) -> None:
        super().__init__(transport)
        self._killed = threading.Event()

    def probe(self) -> dict[str, Any]:
        return {"hostname": self.device}

    def measure(self, job: Job) -> JobMeasurement:
        # A real push through the memory transport: fails like a board once it is down.
        self.transport.push(job.model.path, job.model.sha256)
        self.facts = {"hostname": self.device}
        script = SCRIPTS.get(self.device) or ["ok"]
        outcome = script.pop(0) if len(script) > 1 else script[0]
        if outcome == "die":
            self.transport.far.alive = False
            outcome = "transport"
        if outcome == "transport":
            raise TransportError("connection reset", device=self.device)
        if outcome == "agent":
            raise AgentError("load_failed", "model does not load", device=self.device)
        if outcome == "bug":
            raise KeyError("accuracy dataset 'digitz'")  # not a DeviceError: a mistake or a bug
        if outcome == "block":
            STARTED.set()
            self._killed.wait(10)
            raise TransportError("killed", device=self.device)
        MEASURED.append(job.key)
        base = 0.001 * (1 + job.id)
        return JobMeasurement(
            runner=self.name,
            provenance=Provenance(runner=self.name, model_sha256=job.model.sha256),
            windows=[[base * (1 + i / 100) for i in range(101)] for _ in range(3)],
            init_s=0.01,
            memory=Memory(peak_rss_bytes=1e6),
        )

    def kill(self) -> None:
        self._killed.set()


def _suite(variants: int, retries: int, backoff: float = 0.0) -> Suite:
    return Suite.model_validate(
        {
            "name": "mem",
            "models": [{"name": "m", "file": "m.onnx"}],
            "variants": [{"name": f"v{i}", "recipe": ["export_onnx"]} for i in range(variants)],
            "settings": [{"runtime": "scripted", "threads": [1, 2]}],
            "retries": retries,
            "retry_backoff_s": backoff,
        }
    )


class Lab:
    """A store, a workspace and in-memory devices for one test."""

    def __init__(
        self,
        tmp: Path,
        devices: list[str],
        *,
        variants: int = 3,
        retries: int = 1,
        backoff: float = 0.0,
    ):
        self.ws = Workspace(home=tmp / "home", db_url=f"sqlite:///{tmp / 'results.db'}").ensure()
        self.store = Store(self.ws.db_url)
        self.suite = _suite(variants, retries, backoff)
        model = tmp / "m.onnx"
        model.write_bytes(b"not really onnx")
        artifact = Artifact("ab" * 32, model, "onnx", model.stat().st_size)
        self.variants = [
            Variant("m", v.name, "onnx", artifact, ["export_onnx"], None, {})
            for v in self.suite.variants
        ]
        self.far: dict[str, MemoryDevice] = {}
        for name in devices:
            self.store.add_device({"name": name, "transport": "memory", "address": name})
            self.far[name] = attach(name, MemoryDevice())
        self.rows = [self.store.get_device(n) for n in devices]
        self.run_id = scheduler.new_run(
            self.ws, self.store, self.suite, tmp / "suite.yaml", self.variants, self.rows
        )

    def execute(self) -> str:
        ctx = scheduler.RunContext(
            ws=self.ws,
            store=self.store,
            suite=self.suite,
            run_id=self.run_id,
            variants={(v.model, v.name): v for v in self.variants},
        )
        return scheduler.execute(ctx, self.rows, Console(quiet=True))

    def jobs(self, device: str | None = None) -> list[dict[str, Any]]:
        return [j for j in self.store.jobs_for_run(self.run_id) if device in (None, j["device"])]


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    SCRIPTS.clear()
    MEASURED.clear()
    STARTED.clear()
    yield
    for name in ("a", "b"):
        detach(name)


def test_every_job_finishes_with_its_samples_and_statistics(tmp_path: Path) -> None:
    lab = Lab(tmp_path, ["a", "b"])
    assert lab.execute() == "finished"
    jobs = lab.jobs()
    assert len(jobs) == 12 and {j["status"] for j in jobs} == {"done"}
    job = jobs[0]
    windows = lab.store.job_samples(job["id"])
    assert [len(w) for w in windows] == [101, 101, 101]
    p50 = lab.store.job_metrics(job["id"])["latency_p50"].value
    assert p50 == sorted(windows[0])[50]  # nearest-rank median of 101 samples
    record = lab.store.job_measurement(job)
    assert record is not None and record.runner == "scripted" and record.init_s == 0.01
    assert lab.far["a"].pushes == 1  # one content-addressed file, pushed once per device


def test_a_failed_attempt_is_retried_and_counted(tmp_path: Path) -> None:
    SCRIPTS["a"] = ["transport", "ok"]
    lab = Lab(tmp_path, ["a"], variants=1)
    assert lab.execute() == "finished"
    first, second = lab.jobs()
    assert first["status"] == "done" and first["attempts"] == 2
    assert second["status"] == "done" and second["attempts"] == 1


def test_retries_back_off_exponentially(tmp_path: Path) -> None:
    SCRIPTS["a"] = ["transport", "transport", "ok"]
    lab = Lab(tmp_path, ["a"], variants=1, retries=2, backoff=0.2)
    started = time.monotonic()
    assert lab.execute() == "finished"
    # Waits of 0.2 s then 0.4 s before the second and third attempts.
    assert time.monotonic() - started >= 0.6
    assert lab.jobs()[0]["attempts"] == 3


def test_an_error_the_device_reports_fails_only_that_job(tmp_path: Path) -> None:
    SCRIPTS["a"] = ["agent", "agent", "ok"]  # retries=1: two attempts, both refused
    lab = Lab(tmp_path, ["a"], variants=2)
    assert lab.execute() == "finished"
    statuses = [j["status"] for j in lab.jobs()]
    assert statuses == ["failed", "done", "done", "done"]
    error = lab.jobs()[0]["error"]
    assert error["type"] == "AgentError" and error["kind"] == "load_failed"


def test_an_unforeseen_error_fails_the_job_with_its_cause_never_leaves_it_pending(
    tmp_path: Path,
) -> None:
    SCRIPTS["a"] = ["bug", "ok"]
    lab = Lab(tmp_path, ["a"], variants=1)
    lab.execute()
    first, second = lab.jobs()
    assert first["status"] == "failed" and first["attempts"] == 1  # no retry of a bug
    assert first["error"]["type"] == "KeyError" and "digitz" in first["error"]["message"]
    assert second["status"] == "done"  # the device's other jobs went on
    assert not lab.store.jobs_for_run(lab.run_id, status="pending")


def test_a_device_dying_mid_run_is_quarantined_while_the_others_finish(tmp_path: Path) -> None:
    SCRIPTS["a"] = ["ok", "die"]
    lab = Lab(tmp_path, ["a", "b"], variants=4)  # 8 jobs per device
    assert lab.execute() == "finished"
    a = lab.jobs("a")
    assert [j["status"] for j in a] == ["done"] + ["failed"] * 7
    # The first QUARANTINE_AFTER failures were tried (twice each: retries=1); the rest
    # were failed at once, with the reason, without another attempt.
    tried = a[1 : 1 + scheduler.QUARANTINE_AFTER]
    assert all(j["attempts"] == 2 and j["error"]["type"] == "TransportError" for j in tried)
    skipped = a[1 + scheduler.QUARANTINE_AFTER :]
    assert all(j["attempts"] == 0 and "quarantined" in j["error"]["message"] for j in skipped)
    assert {j["status"] for j in lab.jobs("b")} == {"done"}


def test_resume_finishes_exactly_the_jobs_that_were_not_done(tmp_path: Path) -> None:
    SCRIPTS["a"] = ["ok", "die"]
    lab = Lab(tmp_path, ["a"], variants=3)
    lab.execute()
    done_before = [j["key"] for j in lab.jobs() if j["status"] == "done"]
    lab.far["a"].alive = True  # the board is back
    SCRIPTS["a"] = ["ok"]
    MEASURED.clear()
    assert lab.store.reset_failed_jobs(lab.run_id) == 5
    assert lab.execute() == "finished"
    assert {j["status"] for j in lab.jobs()} == {"done"}
    assert sorted(MEASURED) == sorted(j["key"] for j in lab.jobs() if j["key"] not in done_before)


def test_a_transport_that_cannot_be_built_fails_its_jobs_with_the_reason(tmp_path: Path) -> None:
    lab = Lab(tmp_path, ["a"], variants=1)
    detach("a")  # nothing attached at the address: the connection cannot be made
    lab.store.add_device(
        {"name": "a", "transport": "memory", "address": "a", "options": {"conect_timeout": 3}},
        replace=True,
    )
    lab.rows = [lab.store.get_device("a")]
    assert lab.execute() == "failed"
    errors = {j["error"]["message"] for j in lab.jobs()}
    assert len(errors) == 1 and "conect_timeout" in errors.pop()


def test_ctrl_c_keeps_finished_jobs_and_leaves_the_one_in_flight_pending(tmp_path: Path) -> None:
    SCRIPTS["a"] = ["ok", "block"]
    lab = Lab(tmp_path, ["a"], variants=2)

    def interrupt() -> None:
        STARTED.wait(5)
        _thread.interrupt_main()  # what Ctrl-C does to the controller

    threading.Thread(target=interrupt, daemon=True).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        lab.execute()
    assert time.monotonic() - start < 5  # the blocked job was killed, not waited out
    statuses = [j["status"] for j in lab.jobs()]
    assert statuses == ["done", "pending", "pending", "pending"]
    assert lab.store.get_run(lab.run_id)["status"] == "interrupted"
