"""`edgebench` end to end on the local device, invoked as a subprocess like a user would."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import EDGEBENCH, Runner, write_suite

pytestmark = pytest.mark.slow


def _db_path(eb: Runner) -> str:
    return eb.env["EDGEBENCH_DB"].removeprefix("sqlite:///")  # type: ignore[attr-defined]


def _query(eb: Runner, sql: str, *args: object) -> list[tuple]:
    with sqlite3.connect(_db_path(eb)) as conn:
        return conn.execute(sql, args).fetchall()


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_device_lifecycle(eb: Runner) -> None:
    eb("device", "add", "bench1", "--transport", "local", "--tag", "site=desk", "--tag", "os=linux")
    listed = json.loads(eb("device", "list", "--json").stdout)
    assert [d["name"] for d in listed] == ["bench1"]
    assert listed[0]["tags"] == {"site": "desk", "os": "linux"} and listed[0]["facts"] is None

    eb("device", "check", "bench1")
    shown = json.loads(eb("device", "show", "bench1", "--json").stdout)
    facts = shown["facts"]
    assert facts["arch"] == os.uname().machine
    assert facts["cpu_cores"] == os.cpu_count()
    assert facts["memory_total_bytes"] > 0
    assert "onnxruntime" in facts["runtimes"] and "ai_edge_litert" in facts["runtimes"]
    assert shown["checked_at"]

    dup = eb("device", "add", "bench1", check=False)
    assert dup.returncode == 2 and "already exists" in _one_error_line(dup)
    eb("device", "remove", "bench1")
    gone = eb("device", "remove", "bench1", check=False)
    assert gone.returncode == 2 and "no device 'bench1'" in _one_error_line(gone)
    bad = eb("device", "add", "x", "--transport", "carrier-pigeon", check=False)
    assert bad.returncode == 2 and "unknown transport 'carrier-pigeon'" in _one_error_line(bad)


def test_lab_import_export_roundtrip(eb: Runner, tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(
        "version: 1\ndevices:\n"
        "  - name: desk\n    transport: local\n    tags: {site: a}\n"
        "  - name: rack\n    transport: local\n    options: {python: python3}\n"
    )
    eb("lab", "import", str(lab))
    out = tmp_path / "exported.yaml"
    eb("lab", "export", str(out))
    eb("device", "remove", "desk")
    eb("device", "remove", "rack")
    eb("lab", "import", str(out))
    names = {d["name"]: d for d in json.loads(eb("device", "list", "--json").stdout)}
    assert names["desk"]["tags"] == {"site": "a"}
    assert names["rack"]["options"] == {"python": "python3"}

    lab.write_text("version: 1\ndevices:\n  - name: x\n    transport: smoke-signals\n")
    bad = eb("lab", "import", str(lab), check=False)
    assert bad.returncode == 2
    line = _one_error_line(bad)
    assert line.startswith(f"edgebench: error: {lab}:")
    assert "devices.0.transport: unknown transport" in line


def test_bad_suite_gets_one_line_and_exit_2(eb: Runner, fast_suite: Path) -> None:
    fast_suite.write_text(fast_suite.read_text().replace("repetitions: 3", "repetitions: many"))
    proc = eb("run", str(fast_suite), check=False)
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert line.startswith(f"edgebench: error: {fast_suite}:")
    assert "measure.repetitions" in line


def test_run_report_and_runs_list(eb: Runner, fast_suite: Path, tmp_path: Path) -> None:
    eb("device", "add", "local", "--transport", "local")
    proc = eb("run", str(fast_suite), "--device", "local")
    assert "report:" in proc.stdout

    runs = json.loads(eb("runs", "list", "--json").stdout)
    assert len(runs) == 1 and runs[0]["status"] == "finished"
    run_id = runs[0]["id"]
    # 2 onnx variants x 2 thread counts + 2 tflite variants x 1
    assert (runs[0]["jobs"], runs[0]["done"], runs[0]["failed"]) == (6, 6, 0)

    # Every raw sample is stored: at least min_runs per repetition, 3 repetitions.
    per_job = _query(eb, "SELECT job_id, repetition, n FROM samples")
    assert len(per_job) == 6 * 3 and all(n >= 20 for _, _, n in per_job)

    acc = dict(
        _query(
            eb,
            "SELECT j.variant || ' ' || j.setting, m.value FROM metrics m JOIN jobs j"
            " ON j.id = m.job_id WHERE m.name = 'accuracy_top1'",
        )
    )
    assert len(acc) == 6
    fp32 = [v for k, v in acc.items() if k.startswith("fp32-onnx")]
    int8 = [v for k, v in acc.items() if k.startswith("int8-onnx")]
    assert min(fp32) > 0.9  # digits CNN: ~97% on the test split
    assert min(int8) >= 0.97 * max(fp32)  # static int8 keeps the accuracy

    # The agent's timing floor is stored beside each job's latencies, and is below them.
    floors = _query(
        eb,
        "SELECT f.value, p.value FROM metrics f JOIN metrics p ON p.job_id = f.job_id"
        " WHERE f.name = 'timer_floor' AND p.name = 'latency_p50'",
    )
    assert len(floors) == 6 and all(0 < floor < p50 for floor, p50 in floors)

    (prov,) = _query(eb, "SELECT provenance FROM jobs LIMIT 1")
    prov = json.loads(prov[0])
    assert len(prov["model_sha256"]) == 64 and prov["runtime_version"]
    assert prov["percentiles"] == "nearest-rank"

    out = tmp_path / "rep"
    eb("report", run_id[:10], "-o", str(out))
    html = (out / "index.html").read_text()
    for variant in ("fp32-onnx", "int8-onnx", "fp32-tflite", "int8dr-tflite"):
        assert variant in html
    assert "data:image/svg+xml;base64," in html and run_id in html
    assert "per sample (timing a no-op call)" in html


def test_litert_xnnpack_on_and_off_are_separate_jobs(eb: Runner, tmp_path: Path) -> None:
    suite = write_suite(
        tmp_path / "xnnpack.yaml",
        settings="  - {runtime: litert, xnnpack: true}\n  - {runtime: litert, xnnpack: false}\n",
        measure="{warmup_runs: 1, min_runs: 5, min_duration_s: 0.0, repetitions: 1}",
    )
    eb("device", "add", "local")
    eb("run", str(suite), "--no-report")
    rows = _query(eb, "SELECT variant, setting, status, result FROM jobs")
    assert len(rows) == 4  # 2 tflite variants x xnnpack on/off
    seen = set()
    for variant, setting, status, result in rows:
        setting, load = json.loads(setting), json.loads(result)["details"]["load"]
        assert status == "done" and load["xnnpack"] is setting["xnnpack"]
        # Off: every op on the built-in kernels. On: the delegate took nodes over.
        assert (load["delegate_nodes"] > 0) is setting["xnnpack"]
        seen.add((variant, setting["xnnpack"]))
    assert seen == {(v, x) for v in ("fp32-tflite", "int8dr-tflite") for x in (True, False)}


def test_cached_build_takes_this_suites_names(eb: Runner, fast_suite: Path) -> None:
    """The build cache is keyed by what makes the file, not by names: a renamed variant
    (or another suite with the same chain) reuses the file under its own name."""
    eb("variants", str(fast_suite))  # builds (or finds) int8-onnx
    renamed = fast_suite.with_name("renamed.yaml")
    renamed.write_text(
        fast_suite.read_text().replace(
            "  - name: int8-onnx\n",
            "  - name: candidate\n    description: the int8 model under review\n",
        )
    )
    proc = eb("variants", str(renamed), "--json")
    assert "variant digits_cnn/candidate: cached" in proc.stderr
    rows = {r["variant"]: r for r in json.loads(proc.stdout)}
    assert "int8-onnx" not in rows and rows["candidate"]["recipe"][-1] == "onnx_int8_static"
    eb("device", "add", "local")
    eb("run", str(renamed), "--device", "local", "--no-report")
    variants = {v for (v,) in _query(eb, "SELECT DISTINCT variant FROM jobs")}
    assert variants == {"fp32-onnx", "candidate", "fp32-tflite", "int8dr-tflite"}
    out = Path(eb.env["EDGEBENCH_HOME"]) / "renamed-report"  # type: ignore[attr-defined]
    eb("report", "latest", "-o", str(out))
    assert "the int8 model under review" in (out / "index.html").read_text()


def test_infer_matches_host_reference(eb: Runner, tmp_path: Path) -> None:
    import onnxruntime as ort

    from suites.datasets import load_dataset

    eb("device", "add", "local")
    variants = json.loads(eb("variants", "digits", "--json").stdout)
    fp32 = next(v for v in variants if v["variant"] == "fp32-onnx")
    model = next(
        (
            Path(eb.env["EDGEBENCH_HOME"])
            / "artifacts"
            / fp32["sha256"][:2]  # type: ignore[attr-defined]
            / fp32["sha256"]
        ).glob("*.onnx")
    )
    x = load_dataset("digits").test_x[:17]
    np.save(tmp_path / "x.npy", x)
    eb(
        "infer",
        str(model),
        "--device",
        "local",
        "--input",
        str(tmp_path / "x.npy"),
        "-o",
        str(tmp_path / "y.npy"),
    )
    y = np.load(tmp_path / "y.npy")
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    reference = np.concatenate([session.run(None, {"input": x[i : i + 1]})[0] for i in range(17)])
    assert y.shape == (17, 10)
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)

    bad = eb(
        "infer",
        str(tmp_path / "x.npy"),
        "--device",
        "local",
        "--input",
        str(tmp_path / "x.npy"),
        check=False,
    )
    assert bad.returncode == 2 and "must be .onnx or .tflite" in _one_error_line(bad)


def _wait_for_done_jobs(eb: Runner, proc: subprocess.Popen, at_least: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            done = _query(eb, "SELECT COUNT(*) FROM jobs WHERE status = 'done'")[0][0]
        except sqlite3.OperationalError:
            done = 0  # database not created yet
        if done >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError("run made no progress")


@pytest.mark.parametrize("how", ["sigkill", "ctrl-c"])
def test_interrupted_run_resumes_without_repeating_jobs(
    eb: Runner, fast_suite: Path, how: str
) -> None:
    # Longer windows so that the interruption lands in the middle of the run.
    fast_suite.write_text(
        fast_suite.read_text().replace("min_duration_s: 0.02", "min_duration_s: 0.15")
    )
    eb("variants", str(fast_suite))  # build first, so the run itself starts at once
    eb("device", "add", "local")
    # A shell that started this test run in the background ignores SIGINT, and children
    # inherit an ignored signal; a user at a terminal has the default. A signal this
    # process handles is reset to the default in the child, so handle it meanwhile
    # (no preexec_fn: forking a process with JAX's threads in it is unsafe).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [EDGEBENCH, "run", str(fast_suite), "--no-report"],
            env=eb.env,  # type: ignore[attr-defined]
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    _wait_for_done_jobs(eb, proc, at_least=2)
    if how == "sigkill":
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    else:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert "--resume" in err
    ((run_id, status),) = _query(eb, "SELECT id, status FROM runs")
    assert status == ("running" if how == "sigkill" else "interrupted")
    done_before = {k for (k,) in _query(eb, "SELECT key FROM jobs WHERE status = 'done'")}
    assert 2 <= len(done_before) < 6
    samples_before = _query(eb, "SELECT SUM(n) FROM samples")[0][0]

    eb("run", str(fast_suite), "--resume", run_id[:12], "--no-report")

    jobs = _query(eb, "SELECT key, status, attempts FROM jobs WHERE run_id = ?", run_id)
    assert len(jobs) == 6 and len({k for k, _, _ in jobs}) == 6
    assert all(status == "done" for _, status, _ in jobs)
    # Jobs finished before the interruption were not run again.
    assert all(attempts == 1 for key, _, attempts in jobs if key in done_before)
    # No job has samples twice: per job, stored samples == the n it reports.
    rows = _query(
        eb,
        "SELECT m.job_id, m.value, (SELECT SUM(s.n) FROM samples s"
        " WHERE s.job_id = m.job_id) FROM metrics m WHERE m.name = 'latency_n'",
    )
    assert len(rows) == 6 and all(int(n) == count for _, n, count in rows)
    assert _query(eb, "SELECT SUM(n) FROM samples")[0][0] > samples_before
    assert _query(eb, "SELECT status FROM runs")[0][0] == "finished"


def test_run_on_a_shared_postgresql_results_database(
    eb: Runner, fast_suite: Path, postgres_url: str, tmp_path: Path
) -> None:
    """A lab's shared database: the same run, stored in a real PostgreSQL server."""
    from tests.conftest import fresh_postgres_database

    url = fresh_postgres_database(postgres_url)
    eb.env["EDGEBENCH_DB"] = url  # type: ignore[attr-defined]
    eb("device", "add", "local")
    eb("run", str(fast_suite), "--no-report")
    runs = json.loads(eb("--db", url, "runs", "list", "--json").stdout)
    assert (runs[0]["status"], runs[0]["jobs"], runs[0]["done"]) == ("finished", 6, 6)
    eb("report", runs[0]["id"], "-o", str(tmp_path / "rep"))
    assert "int8-onnx" in (tmp_path / "rep" / "index.html").read_text()

    import sqlalchemy as sa

    from harness.store import _driver_url

    engine = sa.create_engine(_driver_url(url))
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT SUM(n) FROM samples")).scalar()
        reported = conn.execute(
            sa.text("SELECT SUM(value) FROM metrics WHERE name = 'latency_n'")
        ).scalar()
    engine.dispose()
    assert stored == reported >= 6 * 3 * 20  # every raw sample is there
